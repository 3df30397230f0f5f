"""What a server process knows about the workers that sign its requests,
kept for a few seconds.

Every request of a worker needs its secret (to check the signature), its
switch (a disabled worker claims nothing) and the projects its pools serve
(its reach). They change rarely and a worker asks many times a second, so
each process keeps them, per API key, for `jobrunner.worker_cache_seconds`
(2 s by default, at most 10):

* a change made in this process (a worker's key, secret or switch, a pool's
  workers, a project's pools, any of them added or deleted) empties every
  process-local copy at the flush that writes it and again at its commit;
* a change made elsewhere (another server process, `jobrunner-admin`) is
  seen once the copy is older than the limit: a revoked key or a disabled
  worker works there for at most that long.

An unknown key is never kept, so made-up keys cannot fill the memory.
"""
import threading
import time
from dataclasses import dataclass

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from ..models import Project, Worker, WorkerPool
from ..models.tables import project_worker_pools, worker_pool_workers

# Bumped by every change that could alter what is kept; a copy made before
# the latest bump is not used.
_generation = 0
# Beyond this many keys the process forgets them all (there are not that
# many workers; it only bounds the memory).
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class SigningWorker:
    """The worker behind a valid signature, as the request knows it (not the
    ORM object: nothing of it is loaded per request)."""

    id: int
    api_key: str
    title: str
    enqueue_is_enabled: bool
    # The projects whose pools contain the worker: its reach.
    project_ids: frozenset


@dataclass(frozen=True)
class _Entry:
    worker: SigningWorker
    secret: str
    loaded: float
    generation: int


class WorkerCache:
    """One per application (its registry): API key -> (worker, secret)."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.entries = {}
        self.lock = threading.Lock()

    def get(self, session_factory, api_key):
        """(SigningWorker, secret), or None for an unknown key."""
        entry = self.entries.get(api_key)
        now = time.monotonic()
        if entry is not None and entry.generation == _generation and now - entry.loaded < self.seconds:
            return entry.worker, entry.secret
        # Read the generation before the database: a change committed while
        # we read makes this copy old at once.
        generation = _generation
        found = load_worker(session_factory, api_key)
        with self.lock:
            if found is None:
                self.entries.pop(api_key, None)
                return None
            if self.seconds > 0:
                if len(self.entries) >= MAX_ENTRIES:
                    self.entries.clear()
                self.entries[api_key] = _Entry(found[0], found[1], now, generation)
        return found


def load_worker(session_factory, api_key):
    """Two small statements in a short session of their own (before the
    request's transaction opens: on SQLite a writing request holds the
    write lock from its first statement)."""
    dbsession = session_factory()
    try:
        row = dbsession.execute(
            select(Worker.id, Worker.secret, Worker.title, Worker.enqueue_is_enabled)
            .where(Worker.api_key == api_key)
        ).first()
        if row is None:
            return None
        project_ids = dbsession.scalars(
            select(project_worker_pools.c.project_id)
            .join(worker_pool_workers,
                  worker_pool_workers.c.worker_pool_id == project_worker_pools.c.worker_pool_id)
            .where(worker_pool_workers.c.worker_id == row.id)
        ).all()
    finally:
        dbsession.close()
    worker = SigningWorker(row.id, api_key, row.title, bool(row.enqueue_is_enabled), frozenset(project_ids))
    return worker, row.secret


# --- what empties the copies ----------------------------------------------------

# The columns and collections that a copy holds or derives from.
WATCHED = {
    Worker: ("api_key", "secret", "enqueue_is_enabled", "title", "pools"),
    WorkerPool: ("workers", "projects"),
    Project: ("worker_pools",),
}
WATCHED_TABLES = {Worker.__table__.name, worker_pool_workers.name, project_worker_pools.name,
                  WorkerPool.__table__.name, Project.__table__.name}
_FLAG = "jobrunner.worker_cache_dirty"


def forget_all():
    global _generation
    _generation += 1


def _touches_workers(session):
    for obj in session.deleted:
        if type(obj) in WATCHED:
            return True
    for obj in session.new:
        if type(obj) in WATCHED:
            return True
    for obj in session.dirty:
        names = WATCHED.get(type(obj))
        if names:
            state = obj._sa_instance_state
            if any(state.attrs[name].history.has_changes() for name in names):
                return True
    return False


@event.listens_for(Session, "before_flush")
def _before_flush(session, flush_context, instances):
    if _touches_workers(session):
        session.info[_FLAG] = True
        forget_all()


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state):
    # A bulk UPDATE or DELETE (or INSERT) through the session, ORM or Core.
    if state.is_update or state.is_delete or state.is_insert:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in WATCHED_TABLES:
            state.session.info[_FLAG] = True
            forget_all()


@event.listens_for(Session, "after_commit")
def _after_commit(session):
    # Again at the commit: a request of this process may have read the old
    # rows between the flush and the commit.
    if session.info.pop(_FLAG, False):
        forget_all()


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session, previous_transaction):
    if session.info.pop(_FLAG, False):
        forget_all()
