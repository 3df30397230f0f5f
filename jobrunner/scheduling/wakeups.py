"""Telling waiting workers that a run may have become enqueueable.

One session hook, for every session of every process (web, scheduler,
`jobrunner-admin`): a transaction that creates a run, frees one (release,
reschedule, a return that lets another schedule of the job go), or switches
enqueueing on announces it when it commits. On PostgreSQL the announcement
is a `NOTIFY` sent inside that transaction, so it is delivered on commit and
to every server process listening (api/waiting.py); in the process that
commits, `LOCAL` is woken after the commit as well, which is all SQLite has
besides its re-check.

The hook errs on the side of waking: a waiter woken for nothing looks once
more and waits again. A claim, a start, a pid, a log or a ping wakes nobody.
"""
import threading

from sqlalchemy import event, inspect, text
from sqlalchemy.orm import Session

from ..models import Job, JobTemplate, Project, Run, Worker, WorkerPool

CHANNEL = "jobrunner_enqueueable"
WAKE_KEY = "jobrunner_wake_waiters"

# A change of one of these may make a run enqueueable for someone.
RUN_FIELDS = frozenset({"schedule_dts", "enqueue_dts", "return_dts", "worker_id", "is_manual"})
SWITCH_FIELDS = {
    Job: ("enqueue_is_enabled", "concurrency_policy", "worker_pool_id", "run_on_all_workers"),
    JobTemplate: ("enqueue_is_enabled",),
    Project: ("enqueue_is_enabled", "worker_pools"),
    WorkerPool: ("enqueue_is_enabled", "workers", "projects"),
    Worker: ("enqueue_is_enabled", "pools"),
}


class Signal:
    """A generation counter waiters block on: `wait(seen, timeout)` returns
    as soon as the generation moved past `seen` (or the time is up)."""

    def __init__(self):
        self._condition = threading.Condition()
        self.generation = 0

    def announce(self):
        with self._condition:
            self.generation += 1
            self._condition.notify_all()

    def wait(self, seen, timeout):
        """The current generation, after at most `timeout` seconds."""
        with self._condition:
            self._condition.wait_for(lambda: self.generation != seen, timeout)
            return self.generation


# This process's waiters: woken by its own commits and by its listener.
LOCAL = Signal()


def notify_waiters(connection):
    """For a writer outside a Session (a bulk load of runs on a bare
    connection): call it inside the transaction that makes the runs. SQLite
    needs nothing: its waiters see any commit."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


def _changed(obj, names):
    state = inspect(obj)
    return any(
        name in state.attrs and state.attrs[name].history.has_changes() for name in names
    )


def _run_may_be_free(run):
    if not _changed(run, RUN_FIELDS):
        return False
    # A claim (enqueue_dts set, nothing else of note) frees nothing.
    state = inspect(run)
    enqueue = state.attrs["enqueue_dts"].history
    claim_only = enqueue.has_changes() and run.enqueue_dts is not None and not _changed(
        run, RUN_FIELDS - {"enqueue_dts", "worker_id"}
    )
    return not claim_only


def _after_flush(session, _flush_context):
    if session.info.get(WAKE_KEY):
        return
    for obj in session.new:
        if isinstance(obj, Run):
            session.info[WAKE_KEY] = True
            return
    for obj in session.dirty:
        if isinstance(obj, Run):
            if _run_may_be_free(obj):
                session.info[WAKE_KEY] = True
                return
        elif type(obj) in SWITCH_FIELDS and _changed(obj, SWITCH_FIELDS[type(obj)]):
            session.info[WAKE_KEY] = True
            return


def _statement_frees_runs(statement):
    """An INSERT or UPDATE of runs run as a statement (the life cycle's
    conditional updates): a claim, a start or a pid does not wake."""
    table = getattr(statement, "table", None)
    if table is None or getattr(table, "name", None) != Run.__tablename__:
        return False
    if statement.is_insert:
        return True
    values = {
        getattr(column, "key", column): getattr(value, "value", value)
        for column, value in (getattr(statement, "_values", None) or {}).items()
    }
    if not values:
        return True  # values we cannot read: wake rather than miss one
    if "enqueue_dts" in values and values["enqueue_dts"] is not None:
        return bool(set(values) & (RUN_FIELDS - {"enqueue_dts", "worker_id"}))
    return bool(set(values) & RUN_FIELDS)


def _on_execute(orm_execute_state):
    session = orm_execute_state.session
    if session.info.get(WAKE_KEY):
        return
    if (orm_execute_state.is_insert or orm_execute_state.is_update) and _statement_frees_runs(
        orm_execute_state.statement
    ):
        session.info[WAKE_KEY] = True


def _before_commit(session):
    # The commit's own flush comes after this hook: flush first, so its
    # changes count too (as audit.py does).
    session.flush()
    if session.info.get(WAKE_KEY):
        notify_waiters(session.connection())


def _after_commit(session):
    if session.info.pop(WAKE_KEY, False):
        LOCAL.announce()


def _forget(session, previous_transaction):
    if not previous_transaction.nested:
        session.info.pop(WAKE_KEY, None)


event.listen(Session, "after_flush", _after_flush)
event.listen(Session, "do_orm_execute", _on_execute)
event.listen(Session, "before_commit", _before_commit)
event.listen(Session, "after_commit", _after_commit)
event.listen(Session, "after_soft_rollback", _forget)
