"""The long-poll `wait` on a worker's enqueueable list.

`GET /api/v1/run/?state=enqueueable&wait=<seconds>` answers at once when
the list has runs. When it is empty, the request waits, holding no database
connection, until a run may have become enqueueable for the caller, or the
next run pending for it falls due, or `wait` runs out; then it lists again.

What wakes it (scheduling/wakeups.py marks the transactions that matter):

* on PostgreSQL, a `NOTIFY` from any process, heard by one listening
  connection and thread per server process;
* on SQLite, a commit by any connection, seen by one thread per server
  process that reads `PRAGMA data_version` every SQLITE_WATCH_SECONDS;
* in either, a commit of this process, at once.

Each waiting request holds a waitress thread, so at most
`jobrunner.api.max_waiting` wait at once per process; beyond that a `wait`
is answered at once, like a list without it. A request whose client went
away while it waited (a worker stopped or restarted) ends without looking
again: a waiting claim must not take runs for a process that is gone.
"""
import collections
import logging
import math
import sqlite3
import threading
import time
import urllib.parse

from ..models import commit_midway, utcnow
from ..scheduling.enqueueable import next_due_dts
from ..scheduling.wakeups import CHANNEL, LOCAL
from .errors import APIError

log = logging.getLogger(__name__)

WAIT_PARAM = "wait"
MAX_WAIT_SECONDS = 30.0
# How often SQLite's watcher reads PRAGMA data_version (a few microseconds
# each): a run committed by another process is seen within this.
SQLITE_WATCH_SECONDS = 0.02
# A waiter's own re-check while no watcher runs (PostgreSQL's listener
# (re)connecting, SQLite's watcher reopening the file).
RECHECK_SECONDS = 0.2
# Past a run's due time when the waiter looks: clocks tick in steps.
DUE_MARGIN_SECONDS = 0.005
RECONNECT_SECONDS = 0.5
MAX_RECONNECT_SECONDS = 10.0
REGISTRY_KEY = "jobrunner.waiters"


def requested_wait(params, enqueueable):
    """The seconds of `wait` in the query, or None; a 400 naming `wait` for
    anything but 0 < wait <= 30 on the enqueueable list."""
    raw = params.get(WAIT_PARAM)
    if raw is None:
        return None
    if not enqueueable:
        raise APIError(400, "wait is only for state=enqueueable.",
                       {WAIT_PARAM: "wait is only for state=enqueueable."})
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds <= MAX_WAIT_SECONDS):
        message = f"wait takes seconds, more than 0 and at most {MAX_WAIT_SECONDS:g}."
        raise APIError(400, message, {WAIT_PARAM: message})
    return seconds


class Waiters:
    """The waiting requests of one server process: their count and the one
    watcher thread that wakes them."""

    def __init__(self, engine, max_waiting):
        self.engine = engine
        self.max_waiting = max_waiting
        self.count = 0
        # How many requests of each worker (by id) wait now.
        self.of_worker = collections.Counter()
        self._lock = threading.Lock()
        self._watcher = None

    def enter(self, worker_id):
        """A place to wait, or False when max_waiting wait already."""
        with self._lock:
            if self.count >= self.max_waiting:
                return False
            self.count += 1
            self.of_worker[worker_id] += 1
            if self._watcher is None:
                self._watcher = start_watcher(self.engine)
            return True

    def leave(self, worker_id):
        with self._lock:
            self.count -= 1
            self.of_worker[worker_id] -= 1
            if not self.of_worker[worker_id]:
                del self.of_worker[worker_id]

    @property
    def watched(self):
        """Whether commits of other processes wake the waiters now."""
        return self._watcher is not None and self._watcher.watching.is_set()


def start_watcher(engine):
    url = engine.url
    if url.get_backend_name() == "postgresql":
        watcher = PostgresListener(url)
    elif url.database not in (None, "", ":memory:"):
        watcher = SqliteWatcher(url.database)
    else:
        return None  # one in-memory database: only this process writes
    watcher.start()
    return watcher


class PostgresListener(threading.Thread):
    """`LISTEN` on a connection of its own (not the pool's), announcing each
    notification to this process's waiters; reconnects when it drops."""

    def __init__(self, url):
        super().__init__(name="jobrunner-listen", daemon=True)
        self.connect_args = {
            "host": url.host, "port": url.port, "user": url.username,
            "password": url.password, "dbname": url.database, **dict(url.query),
        }
        self.watching = threading.Event()

    def run(self):
        import psycopg

        args = {k: v for k, v in self.connect_args.items() if v is not None}
        failures = 0
        while True:
            try:
                with psycopg.connect(autocommit=True, **args) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.watching.set()
                    failures = 0
                    # Whatever was missed while not listening: look again.
                    LOCAL.announce()
                    for _notify in conn.notifies():
                        LOCAL.announce()
            except Exception as error:  # noqa: BLE001 - the thread must live on
                # Said once per outage; the waiters re-check meanwhile.
                (log.warning if failures == 0 else log.debug)(
                    "listening for enqueueable runs failed: %s", error)
                failures += 1
            self.watching.clear()
            time.sleep(min(MAX_RECONNECT_SECONDS, RECONNECT_SECONDS * 2 ** min(failures, 5)))


class SqliteWatcher(threading.Thread):
    """Reads `PRAGMA data_version`, which moves when another connection (of
    any process) committed, every SQLITE_WATCH_SECONDS; a move wakes the waiters."""

    def __init__(self, path):
        super().__init__(name="jobrunner-sqlite-watch", daemon=True)
        self.path = path
        self.watching = threading.Event()

    def run(self):
        while True:
            try:
                # mode=rw: a database that went away is not made anew here.
                conn = sqlite3.connect(f"file:{urllib.parse.quote(self.path)}?mode=rw", uri=True,
                                       isolation_level=None)
                try:
                    seen = conn.execute("PRAGMA data_version").fetchone()[0]
                    self.watching.set()
                    while True:
                        time.sleep(SQLITE_WATCH_SECONDS)
                        version = conn.execute("PRAGMA data_version").fetchone()[0]
                        if version != seen:
                            seen = version
                            LOCAL.announce()
                finally:
                    conn.close()
            except sqlite3.Error as error:
                log.warning("watching the SQLite database failed: %s", error)
            self.watching.clear()
            time.sleep(RECONNECT_SECONDS)


def _seconds_until_due(request):
    """Seconds until the caller's next pending run falls due, or None."""
    now = utcnow()
    due = request.dbsession.scalar(next_due_dts(request.identity.worker, now))
    if due is None:
        return None
    return max(0.0, (due - now).total_seconds()) + DUE_MARGIN_SECONDS


def client_gone(request):
    """Whether the client closed its connection while the request waited
    (waitress tells when `channel_request_lookahead` is above 0)."""
    disconnected = request.environ.get("waitress.client_disconnected")
    return disconnected is not None and disconnected()


def list_waiting(request, wait, list_page):
    """The enqueueable page (`list_page()` builds it), waited for up to
    `wait` seconds when it is empty."""
    waiters = request.registry[REGISTRY_KEY]
    deadline = time.monotonic() + wait
    # Taken before the first look: a commit between the look and the wait
    # still wakes this waiter.
    seen = LOCAL.generation
    page = list_page()
    worker_id = request.identity.worker.id
    if page["objects"] or not waiters.enter(worker_id):
        return page
    try:
        while True:
            due_in = _seconds_until_due(request)
            # The read so far ends (the session gives its connection back
            # to the pool; the identity's objects stay loaded, the session
            # does not expire them on commit).
            commit_midway(request)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return page
            falls_due = due_in is not None and due_in <= remaining
            timeout = min(remaining, due_in) if falls_due else remaining
            watched = waiters.watched
            if not watched:
                timeout = min(timeout, RECHECK_SECONDS)
            generation = LOCAL.wait(seen, timeout)
            if (generation == seen and watched and waiters.watched and not falls_due
                    and time.monotonic() >= deadline):
                # Watched all along, nothing announced and nothing fell due:
                # the empty page still holds (a listener that reconnects
                # announces, so a gap in watching is never silent).
                return page
            if client_gone(request):
                # Nobody reads the answer (a worker stopped or restarted):
                # a claim must not take runs for it now.
                return page
            seen = generation
            page = list_page()
            if page["objects"] or time.monotonic() >= deadline:
                return page
    finally:
        waiters.leave(worker_id)


def includeme(config):
    settings = config.registry.jobrunner_settings
    config.registry[REGISTRY_KEY] = Waiters(config.registry["dbengine"], settings.api_max_waiting)
