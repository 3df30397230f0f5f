"""The worker daemon's loop: it identifies itself, pings the server, settles
what an earlier process of this worker left behind, then polls: it acts on
kill requests every poll_interval while scripts run, while a thread of
its own claims due runs (waiting on the server where the server can), each
executed by a RunHandler (run.py) in a thread of its own, until it is asked
to stop.

A pure HTTP client of the server: it imports nothing of the server side,
only the standard library, requests, and the shared signing module.
"""

import collections
import logging
import math
import signal
import sys
import threading
import time

from . import executor, protocol
from .client import (
    ApiClient,
    ApiError,
    RetryAborted,
    TransientError,
    backoff_delay,
    response_json,
)
from .config import config_from_command_line, security_warnings, worker_version
from .logbuffer import append_within
from .run import (
    LOG_UPDATE_INTERVAL_SECONDS,
    RESTARTED_NOTE,
    RunHandler,
    RunLogWriter,
    release_run,
    return_run,
)

log = logging.getLogger("jobrunner.worker")

# How long a busy worker gathers free slots before it claims runs for them.
CLAIM_GATHER_SECONDS = 0.02
# How long a handler waits for the claimer to take its return along.
RETURN_HANDOVER_SECONDS = 0.25
# How many of its latest runs a worker remembers as its own.
RECENT_RUNS_KEPT = 4096


def configure_logging(level_name):
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level_name.upper()),
        format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s",
    )


class ReturnSlip:
    """A run's return handed to the claimer, and the server's answer to it."""

    def __init__(self, body):
        self.body = body
        self.result = None
        self.done = threading.Event()

    def settle(self, result):
        if not self.done.is_set():
            self.result = result
            self.done.set()


def settle_slips(slips, answers):
    """Give each slip the server's answer for its run (trusting nothing of
    the answer's shape: a slip without a usable answer gets None)."""
    by_uri = {}
    for answer in answers if isinstance(answers, list) else []:
        if (isinstance(answer, dict) and isinstance(answer.get("resource_uri"), str)
                and isinstance(answer.get("status"), int) and not isinstance(answer["status"], bool)):
            by_uri[answer["resource_uri"]] = answer
    for slip in slips:
        slip.settle(by_uri.get(slip.body["run"]))


class Heartbeat(threading.Thread):
    """Pings every ping_interval on its own thread: a worker that is still
    settling an earlier start's runs, or cannot report one run, stays known
    as alive and keeps its other runs."""

    def __init__(self, worker_daemon):
        super().__init__(name="heartbeat", daemon=True)
        self.worker_daemon = worker_daemon
        self._stop_requested = threading.Event()

    def run(self):
        daemon = self.worker_daemon
        failures = 0
        interval = None
        while not self._stop_requested.is_set():
            ok, transient = daemon._step(daemon.ping)
            if ok:
                # Answered pings carry the worker object: the server's
                # interval may have changed.
                if daemon.ping_interval != interval:
                    interval = daemon.ping_interval
                    log.info("pinging every %g s (the ini says %g s, the server expects %s s)",
                             interval, daemon.config.ping_interval,
                             daemon.server_ping_interval or "no value")
                # The server may have given up on a run still running here.
                transient = daemon._step(daemon.check_started_runs)[1]
            if transient:
                delay = min(daemon.ping_interval, backoff_delay(failures))
                failures += 1
            else:
                delay = daemon.ping_interval
                failures = 0
            if self._stop_requested.wait(delay):
                return

    def stop(self):
        self._stop_requested.set()
        self.join()


class Claimer(threading.Thread):
    """Lists and claims due runs while this worker has free slots, on a
    thread of its own: a list the server holds open (`wait`) delays
    neither the kill requests nor the heartbeat, and a stop does not wait
    for it to come back (the thread dies with the process)."""

    def __init__(self, worker_daemon):
        super().__init__(name="claimer", daemon=True)
        self.worker_daemon = worker_daemon

    def run(self):
        daemon = self.worker_daemon
        failures = 0
        while not daemon.stop_event.is_set():
            if daemon.active_run_count and daemon.fast_path.claim_due:
                # Busy: let a few more slots come free, and claim them in one
                # request instead of one request a slot.
                daemon.gather_returns(CLAIM_GATHER_SECONDS)
            daemon.slot_freed.clear()
            (_ok, transient), again = daemon._step_with_result(daemon.claim_runs)
            if transient:
                delay = max(daemon.config.poll_interval, backoff_delay(failures))
                failures += 1
            else:
                failures = 0
                # The server waited for runs, or runs came: list again now.
                delay = 0 if again else daemon.config.poll_interval
            if delay:
                daemon.slot_freed.wait(delay)


class WorkerDaemon:
    """The worker's main loop.

    ``run()`` blocks until a stop is requested (``request_stop()``, or
    SIGTERM/SIGINT once ``install_signal_handlers()`` was called) and every
    running run has been reported; it returns the exit status.
    """

    def __init__(
        self,
        config,
        client=None,
        log_update_interval=LOG_UPDATE_INTERVAL_SECONDS,
        kill_grace_seconds=executor.KILL_GRACE_SECONDS,
    ):
        self.config = config
        self.client = client or ApiClient(
            config.api_base_url, config.api_key, config.secret, ca_bundle=config.ca_bundle
        )
        self.log_update_interval = log_update_interval
        self.kill_grace_seconds = kill_grace_seconds
        self.version = worker_version()
        self.worker = None
        # Set by the first SIGTERM/SIGINT: claim nothing more, finish, exit.
        self.stop_event = threading.Event()
        # Set by a second signal: stop retrying, kill the scripts, exit now.
        self.force_event = threading.Event()
        self._wake = threading.Event()
        # Set when a run ends (or on stop): the claimer has room again.
        self.slot_freed = threading.Event()
        # Held while the claimer claims and starts runs, so a stop that
        # finds no run running sees none appear after it.
        self.claiming = threading.Lock()
        self.fast_path = protocol.FastPath(config.poll_wait)
        self._handlers = {}
        self._kill_requests_taken = set()
        # Marked executed here, but perhaps still in a listing fetched just
        # before that was stored: acting on it again would move its
        # execute_dts past the run's return.
        self._kill_requests_done = set()
        self._lock = threading.Lock()
        # Whether a claim's answer was lost (runs may be ours unknown), the
        # runs this process took most recently, and those an earlier process
        # left (settled by recover()): none of these is adopted.
        self._claims_unconfirmed = False
        # Returns handed to the claimer, and whether its request waits on
        # the server (then nothing is handed to it).
        self._outbox = []
        self._claimer_waits = False
        self._recent_runs = collections.OrderedDict()
        self._leftovers = set()
        # Whether kill requests must be listed with no script running (at
        # start, and once after a run ended).
        self._kills_to_settle = True

    # Control

    def request_stop(self):
        self.stop_event.set()
        self._wake.set()
        self.slot_freed.set()

    def request_force_stop(self):
        self.force_event.set()
        self.request_stop()

    def install_signal_handlers(self):
        def handle(signum, _frame):
            if self.stop_event.is_set():
                log.warning("%s again: killing running scripts and exiting",
                            signal.Signals(signum).name)
                self.request_force_stop()
            else:
                log.info("%s: claiming nothing more; waiting for %d running run(s)",
                         signal.Signals(signum).name, self.active_run_count)
                self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    @property
    def active_run_count(self):
        with self._lock:
            return len(self._handlers)

    @property
    def server_ping_interval(self):
        """The interval the server expects (from the worker object), or None."""
        value = (self.worker or {}).get("ping_interval")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return value if math.isfinite(value) and value > 0 else None

    @property
    def ping_interval(self):
        """The ini's interval, or the server's when that is shorter: a worker
        whose ini is out of date is not called unresponsive."""
        server = self.server_ping_interval
        return self.config.ping_interval if server is None else min(self.config.ping_interval, server)

    def run_finished(self, handler):
        with self._lock:
            self._handlers.pop(handler.run_uri, None)
        self._kills_to_settle = True
        self._wake.set()
        self.slot_freed.set()

    # Main loop

    def run(self):
        try:
            self.worker = self.fetch_own_worker()
        except RetryAborted:
            return 0
        except ApiError as error:
            log.error("cannot identify this worker to the server: %s", error)
            return 1
        log.info(
            "worker %s (%s) version %s, %d concurrent jobs",
            self.worker.get("title") or self.config.api_key,
            self.worker["resource_uri"], self.version, self.config.concurrent_jobs,
        )
        # The heartbeat runs on its own: settling an earlier start's runs may
        # retry for long, and the worker must stay known as alive meanwhile.
        heartbeat = Heartbeat(self)
        heartbeat.start()
        try:
            try:
                self.recover()
            except RetryAborted:
                return 0
            except ApiError as error:
                log.error("settling runs left by an earlier start failed: %s", error)
            return self._loop()
        finally:
            heartbeat.stop()

    def _loop(self):
        Claimer(self).start()
        failures = 0
        last_listing = None
        delay = 0.0
        while True:
            self._wake.clear()
            if self.force_event.is_set():
                self._kill_all_scripts()
                return 1
            if self.stop_event.is_set() and self._idle():
                log.info("stopped")
                return 0
            # Kill requests every poll_interval while scripts run. Only a
            # started run can be asked to be killed, so with none running
            # the one listing left to do is the one after the last run
            # ended (a request made just before its return) or, at start,
            # for runs of an earlier process: idle workers list nothing.
            # A run that starts or ends wakes the loop, which looks at the
            # pace again (and whether a stopping worker is done): a listing
            # per run would cost the server as much as the run.
            if failures == 0:
                delay = self.config.poll_interval
            if not (self.active_run_count or self._kills_to_settle):
                self._wake.wait()
                continue
            next_listing = 0.0 if last_listing is None else last_listing + delay
            if time.monotonic() < next_listing:
                self._wake.wait(next_listing - time.monotonic())
                continue
            last_listing = time.monotonic()
            # Cleared first: a run that ends during the listing sets it again.
            self._kills_to_settle = False
            if self._step(self.process_kill_requests)[1]:
                self._kills_to_settle = True
                delay = max(self.config.poll_interval, backoff_delay(failures))
                failures += 1
            else:
                failures = 0

    def _idle(self):
        """No run here, and none being claimed (after a stop, none comes)."""
        with self.claiming:
            return self.active_run_count == 0

    def _step(self, action):
        """Run one duty of the loop; returns (succeeded, failed transiently)."""
        return self._step_with_result(action)[0]

    def _step_with_result(self, action):
        """As _step, with what the action returned (None when it failed)."""
        try:
            return (True, False), action()
        except TransientError as error:
            log.warning("server unavailable: %s", error)
            return (False, True), None
        except RetryAborted:
            return (False, False), None
        except ApiError as error:
            log.error("%s", error)
            return (False, False), None

    def _kill_all_scripts(self):
        with self._lock:
            handlers = list(self._handlers.values())
        for handler in handlers:
            if handler.pid is not None:
                executor.signal_process_group(handler.pid, signal.SIGKILL)

    # Duties

    def fetch_own_worker(self):
        body = self.client.get_json(protocol.WORKERS, abort=self.stop_event)
        objects = body.get("objects") if isinstance(body, dict) and "objects" in body else [body]
        for worker in objects:
            if worker and worker.get("api_key", self.config.api_key) == self.config.api_key:
                return worker
        raise ApiError("GET", protocol.WORKERS, 200, "own worker object not in the answer")

    def ping(self, retry=False):
        response = self.client.request(
            "PATCH",
            self.worker["resource_uri"],
            data=protocol.ping_body(self.client.now_iso(), self.version, self.config.concurrent_jobs),
            retry=retry,
            abort=self.stop_event,
        )
        body = response_json(response, "PATCH", self.worker["resource_uri"], protocol.UPDATED)
        if isinstance(body, dict):
            # The worker's URI stays the one it started with.
            self.worker = {**body, "resource_uri": self.worker["resource_uri"]}

    def check_started_runs(self):
        """Kills the scripts of runs the server no longer counts as this
        worker's started runs (the scheduler failed them, say, while this
        worker could not ping): a silent script reports nothing that the
        server could refuse.

        Only runs whose start the server confirmed before the list was asked
        for are judged: a run claimed or started meanwhile is not in it yet."""
        with self._lock:
            running = [h for h in self._handlers.values()
                       if h.start_confirmed_at is not None and not h.script_done]
        if not running:
            return
        asked_at = time.monotonic()
        started = self.client.list_all(
            protocol.RUNS, protocol.own_runs("started", self.config.api_key), retry=False)
        listed = {run.get("resource_uri") for run in started}
        for handler in running:
            if handler.start_confirmed_at < asked_at and handler.run_uri not in listed:
                handler.fence("the server no longer lists it as this worker's started run")

    def recover(self):
        """Settle what an earlier process of this worker left behind.

        The runs are listed first, before this process claims anything (so
        none of its own claims is taken for a leftover); settling them goes
        on in a thread of its own, so a run whose report the server keeps
        refusing holds up neither the heartbeat nor new runs."""
        key = self.config.api_key
        abort = self.stop_event
        in_queue = list(self.client.list_all(
            protocol.RUNS, protocol.own_runs("in_queue", key), abort=abort))
        started = list(self.client.list_all(
            protocol.RUNS, protocol.own_runs("started", key), abort=abort))
        with self._lock:
            self._leftovers = {run.get("resource_uri") for run in in_queue + started}
        if not (in_queue or started):
            return None
        thread = threading.Thread(target=self._settle_leftovers, args=(in_queue, started),
                                  name="recovery", daemon=True)
        thread.start()
        return thread

    def _settle_leftovers(self, in_queue, started):
        abort = self.stop_event
        try:
            for run in in_queue:
                if release_run(self.client, run["resource_uri"], abort=abort):
                    log.info("run %s was in queue here; put back", run["resource_uri"])
            for run in started:
                self._return_interrupted_run(run)
        except RetryAborted:
            pass
        except (ApiError, KeyError, TypeError) as error:
            log.error("settling runs left by an earlier start failed: %s", error)

    def _return_interrupted_run(self, run):
        abort = self.stop_event
        run_log_uri = run.get("run_log")
        existing = ""
        try:
            if run_log_uri:
                existing = (self.client.get_json(run_log_uri, abort=abort) or {}).get(
                    "content") or ""
            writer = RunLogWriter(self.client, run, run_log_uri, abort)
            writer.write(append_within(existing, RESTARTED_NOTE, self.config.max_log_bytes))
        except ApiError as error:
            log.error("run %s: restart note not stored: %s", run["resource_uri"], error)
        return_run(self.client, run["resource_uri"], False, abort=abort)

    def claim_runs(self):
        """Claim due runs and start them; True when the server may be asked
        again at once (runs came, or the server waited for them)."""
        if self.fast_path.claim_due:
            again = self._claim_due()
            if again is not None:
                return again
        free = self.config.concurrent_jobs - self.active_run_count
        if free <= 0:
            return False
        return self._list_and_claim(free)

    def _claim_due(self):
        """The fast path: one request returns the runs whose handlers handed
        their return over, and claims and starts runs for the free slots
        (waiting for them where the server can, when it returns nothing).
        None when the server does not have it: the caller lists and claims
        the original way."""
        fast_path = self.fast_path
        if self._claims_unconfirmed:
            self._adopt_unconfirmed_claims()
        with self._lock:
            slips, self._outbox = self._outbox, []
            # A run handed over is still counted until its handler ends.
            free = self.config.concurrent_jobs - len(self._handlers) + len(slips)
            wait = fast_path.list_wait if not slips else None
            self._claimer_waits = wait is not None
        if self.stop_event.is_set():
            free = 0
        if free <= 0 and not slips:
            with self._lock:
                self._claimer_waits = False
            return False
        asked = time.monotonic()
        try:
            try:
                response = self.client.send_once(
                    "POST", protocol.RUN_CLAIM,
                    data=protocol.claim_due_body(max(free, 0), wait, [s.body for s in slips]),
                    timeout=fast_path.list_timeout(self.client.timeout) if wait else None,
                )
            except TransientError:
                # The server may have claimed and started runs for us even so.
                self._claims_unconfirmed = True
                raise
            finally:
                with self._lock:
                    self._claimer_waits = False
            if fast_path.claim_due_refused(response):
                log.info("the server does not claim several runs at once (%s); listing and "
                         "claiming one by one", response.status_code)
                return None
            page = response_json(response, "POST", protocol.RUN_CLAIM)
            if not isinstance(page, dict):
                page = {}
            settle_slips(slips, page.get("returns"))
        finally:
            # Whatever was not answered is returned by its handler itself.
            for slip in slips:
                slip.settle(None)
        objects = page.get("objects")
        objects = (objects if isinstance(objects, list) else [])[:max(free, 0)]
        with self.claiming:
            for run in objects:
                if not isinstance(run, dict) or not isinstance(run.get("resource_uri"), str):
                    log.warning("skipping a claimed entry without resource_uri: %r", run)
                    continue
                started = run.get("start_dts") is not None
                if self.stop_event.is_set() and not started:
                    # Claimed while the request waited, after the stop.
                    try:
                        release_run(self.client, run["resource_uri"], abort=self.force_event)
                    except (ApiError, RetryAborted) as error:
                        log.error("run %s: claim not released: %s", run["resource_uri"], error)
                    continue
                log.info("claimed run %s", run["resource_uri"])
                # A run the claim started runs, a stop meanwhile included:
                # it can no longer go back to the queue.
                self._start(run, started=started)
        return bool(objects) or bool(slips) or (
            wait is not None and time.monotonic() - asked >= wait / 2)

    def gather_returns(self, seconds):
        """Wait up to `seconds` for more runs to hand their return over,
        and no longer once every running run has."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set():
            with self._lock:
                if len(self._outbox) >= len(self._handlers):
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.slot_freed.clear()
            with self._lock:
                if len(self._outbox) >= len(self._handlers):
                    return
            self.slot_freed.wait(remaining)

    def return_with_claim(self, run_uri, body):
        """Hand a run's return (`body`, as its PATCH would carry it) to the
        claimer, to travel with its next claim: the server's answer for it
        (a dict with its `status`), or None when it was not sent that way
        (the claimer was waiting on the server, or did not take it in time,
        or the answer was lost); the handler then returns the run itself."""
        if not self.fast_path.claim_due or self.stop_event.is_set():
            return None
        slip = ReturnSlip({"run": run_uri, **body})
        with self._lock:
            if self._claimer_waits:
                return None
            self._outbox.append(slip)
        self.slot_freed.set()
        if not slip.done.wait(RETURN_HANDOVER_SECONDS):
            with self._lock:
                if slip in self._outbox:
                    self._outbox.remove(slip)
                    return None
            # Taken: its request is on the way.
            slip.done.wait()
        return slip.result

    def _adopt_unconfirmed_claims(self):
        """After a claim whose answer was lost: the runs the server lists as
        this worker's started runs that this process does not know are the
        ones that claim started. They run here now (their job fetched as in
        the original steps); nothing of them is lost or run twice. The ones
        it only claimed (found while it waited) go back to the queue."""
        with self._lock:
            known = set(self._handlers) | set(self._recent_runs) | self._leftovers
        key = self.config.api_key
        started = self.client.list_all(protocol.RUNS, protocol.own_runs("started", key), retry=False)
        in_queue = self.client.list_all(protocol.RUNS, protocol.own_runs("in_queue", key),
                                        retry=False)
        for run in in_queue:
            uri = run.get("resource_uri") if isinstance(run, dict) else None
            if isinstance(uri, str) and uri not in known:
                log.warning("run %s was claimed for this worker by a request whose answer "
                            "was lost; giving it back", uri)
                release_run(self.client, uri, abort=self.force_event)
        with self.claiming:
            with self._lock:
                known |= set(self._handlers) | set(self._recent_runs)
            for run in started:
                if not isinstance(run, dict) or run.get("resource_uri") in known:
                    continue
                if not isinstance(run.get("resource_uri"), str):
                    continue
                log.warning("run %s was claimed for this worker by a request whose answer "
                            "was lost; running it now", run["resource_uri"])
                self._start(run, started=True)
        self._claims_unconfirmed = False

    def _list_and_claim(self, free):
        """The original steps: list the enqueueable runs, claim each."""
        fast_path = self.fast_path
        wait = fast_path.list_wait
        asked = time.monotonic()
        response = self.client.request(
            "GET", protocol.RUNS, protocol.enqueueable_runs(free, wait), retry=False,
            timeout=fast_path.list_timeout(self.client.timeout),
        )
        if fast_path.wait_refused(response):
            log.info("the server does not wait on lists; listing every %g s",
                     self.config.poll_interval)
            return True
        page = response_json(response, "GET", protocol.RUNS)
        objects = page.get("objects") if isinstance(page, dict) else None
        objects = (objects if isinstance(objects, list) else [])[:free]
        with self.claiming:
            for run in objects:
                if self.stop_event.is_set():
                    return False
                if not isinstance(run, dict) or not isinstance(run.get("resource_uri"), str):
                    log.warning("skipping an enqueueable entry without resource_uri: %r", run)
                    continue
                try:
                    claimed = self.claim(run)
                except ApiError as error:
                    # One bad entry (a URL elsewhere, say) spoils no other claim.
                    log.warning("not claiming %r: %s", run.get("resource_uri"), error)
                    continue
                if claimed is not None:
                    self._start(claimed)
        # An empty answer long before the wait ran out: the server did not
        # wait (too many waiting); poll instead of asking again at once.
        return bool(objects) or (wait is not None and time.monotonic() - asked >= wait / 2)

    def claim(self, run):
        """Claim a run; returns the run object if it is ours now, else None."""
        run_uri = run["resource_uri"]
        data = protocol.claim_body(self.worker["resource_uri"], self.client.now_iso())
        answer_lost = False
        try:
            response = self.client.send_once("PATCH", run_uri, data=data)
        except TransientError as error:
            # The claim may have been made even though the answer was lost.
            log.warning("claim of %s unconfirmed: %s", run_uri, error)
            answer_lost = True
            response = self.client.request(
                "PATCH", run_uri, data=data, abort=self.stop_event
            )
        if response.status_code in protocol.CLAIMED:
            log.info("claimed run %s", run_uri)
            body = response_json(response, "PATCH", run_uri)
            # The run stays the one claimed, whatever URI the answer names.
            return {**run, **(body if isinstance(body, dict) else {}), "resource_uri": run_uri}
        if response.status_code == protocol.CONFLICT:
            if answer_lost:
                current = self.client.get_json(run_uri, abort=self.stop_event)
                if protocol.is_claimed_by(current, self.worker["resource_uri"], data["enqueue_dts"]):
                    log.info("claimed run %s", run_uri)
                    return current
            log.debug("run %s taken by another worker", run_uri)
            return None
        log.warning("claim of %s refused: %s %s", run_uri,
                    response.status_code, response.text[:300])
        return None

    def _start(self, run, started=False):
        handler = RunHandler(self, run, started=started)
        with self._lock:
            self._handlers[handler.run_uri] = handler
            self._recent_runs[handler.run_uri] = None
            while len(self._recent_runs) > RECENT_RUNS_KEPT:
                self._recent_runs.popitem(last=False)
        handler.start()
        # Kill requests are listed at the pace of a worker running scripts.
        self._wake.set()

    def process_kill_requests(self):
        kill_requests = self.client.list_all(
            protocol.KILL_REQUESTS, protocol.pending_kill_requests(self.config.api_key), retry=False
        )
        with self._lock:
            # Once its execution is stored, a kill request leaves the listing.
            self._kill_requests_done &= {k["resource_uri"] for k in kill_requests}
        for kill_request in kill_requests:
            uri = kill_request["resource_uri"]
            with self._lock:
                if uri in self._kill_requests_taken or uri in self._kill_requests_done:
                    continue
                handler = self._handlers.get(kill_request["run"])
            if kill_request.get("enqueue_dts") is None:
                response = self.client.request(
                    "PATCH", uri, data=protocol.kill_request_enqueued_body(self.client.now_iso()), retry=False
                )
                response_json(response, "PATCH", uri, protocol.UPDATED)
            if handler is not None and handler.request_kill(kill_request):
                with self._lock:
                    self._kill_requests_taken.add(uri)
                log.info("killing run %s on request", kill_request["run"])
            else:
                # Nothing of that run is running here any more.
                self.mark_kill_request_executed(kill_request, retry=False)

    def mark_kill_request_executed(self, kill_request, retry=True, abort=None, execute_dts=None):
        uri = kill_request["resource_uri"]
        answered = False
        try:
            response = self.client.request(
                "PATCH", uri, data=protocol.kill_request_executed_body(execute_dts or self.client.now_iso()),
                retry=retry, abort=abort,
            )
            answered = True
            if response.status_code not in protocol.UPDATED:
                log.error("kill request %s not marked executed: %s %s",
                          uri, response.status_code, response.text[:300])
        finally:
            with self._lock:
                self._kill_requests_taken.discard(uri)
                if answered:
                    self._kill_requests_done.add(uri)


def main(argv=None):
    config = config_from_command_line(argv)
    configure_logging(config.log_level)
    for warning in security_warnings(config):
        log.warning("%s", warning)
    daemon = WorkerDaemon(config)
    daemon.install_signal_handlers()
    return daemon.run()


if __name__ == "__main__":
    sys.exit(main())
