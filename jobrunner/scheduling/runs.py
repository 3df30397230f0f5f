"""Claiming, resetting and returning runs (SPEC section 5).

Plain functions over a SQLAlchemy session: the views are thin wrappers and the
scheduler daemon calls the same code.
"""
from datetime import timedelta

from sqlalchemy import select, update

from ..models import Job, Run, RunLog, utcnow
from .enqueueable import enqueueable_run_ids


class RunConflict(Exception):
    """The run's state does not allow what was asked (HTTP 409)."""


# A schedule further away than this is a typing error, not a plan; and the
# reschedule arithmetic stays far from the year 9999.
SCHEDULE_REACH = timedelta(days=100 * 366)


class InvalidSchedule(ValueError):
    """A schedule_dts outside the range a run may have (HTTP 400)."""


def check_schedule_dts(schedule_dts, now=None):
    now = now or utcnow()
    if not now - SCHEDULE_REACH <= schedule_dts <= now + SCHEDULE_REACH:
        raise InvalidSchedule("A run's schedule must lie within 100 years of now.")


def lock_job(dbsession, job_id):
    """Serialises claims and returns of one job's runs (no-op on SQLite,
    whose writers are serialised by BEGIN IMMEDIATE already)."""
    dbsession.execute(select(Job.id).where(Job.id == job_id).with_for_update())


def claim_run(dbsession, run, worker, enqueue_dts):
    """One conditional UPDATE: the run becomes the worker's only if it is
    still unclaimed and enqueueable for it. Raises RunConflict otherwise."""
    lock_job(dbsession, run.job_id)
    now = utcnow()
    result = dbsession.execute(
        update(Run)
        .where(Run.id == run.id, Run.id.in_(enqueueable_run_ids(worker, now)))
        .values(enqueue_dts=enqueue_dts, worker_id=worker.id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise RunConflict("The run is no longer enqueueable for this worker.")
    # Reloaded on next use: the API's answer reloads the run anyway.
    dbsession.expire(run)


def reset_claim(dbsession, run, release_worker):
    """Back to scheduled; with release_worker any worker of the pool may take it.

    Only a run that has not started: a started run's script may be running,
    and releasing it would let a second worker run it too (a started run is
    returned, as failed if need be, never put back)."""
    values = {"enqueue_dts": None, "start_dts": None, "pid": None}
    if release_worker:
        values["worker_id"] = None
    result = dbsession.execute(
        update(Run)
        .where(Run.id == run.id, Run.return_dts.is_(None), Run.start_dts.is_(None))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise RunConflict("Only a run that has not started can be released.")
    dbsession.expire(run)


def mark_returned(dbsession, run, return_dts, return_success, worker_id=None):
    """Sets the return once; a second return is a RunConflict and changes
    nothing, so no result is ever counted twice."""
    # Siblings of a schedule return one after the other, so exactly one of
    # them sees the schedule complete and schedules the children.
    lock_job(dbsession, run.job_id)
    conditions = [Run.id == run.id, Run.return_dts.is_(None)]
    if worker_id is not None:
        conditions.append(Run.worker_id == worker_id)
    result = dbsession.execute(
        update(Run)
        .where(*conditions)
        .values(return_dts=return_dts, return_success=bool(return_success))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise RunConflict("The run has returned already.")
    dbsession.refresh(run)


def append_log(dbsession, run, text):
    """Adds a line to a run's log (used when the server ends a run itself)."""
    log = dbsession.scalar(select(RunLog).where(RunLog.run_id == run.id))
    if log is None:
        dbsession.add(RunLog(run_id=run.id, content=text))
    else:
        separator = "" if not log.content or log.content.endswith("\n") else "\n"
        log.content = f"{log.content}{separator}{text}"
    dbsession.flush()


def create_run(dbsession, job, schedule_dts, is_manual, schedule_children=True, worker_id=None,
               schedule_id=None):
    run = Run(
        job_id=job.id,
        schedule_dts=schedule_dts,
        is_manual=is_manual,
        schedule_children=schedule_children,
        worker_id=worker_id,
        schedule_id=schedule_id,
    )
    dbsession.add(run)
    dbsession.flush()
    if run.schedule_id is None:
        run.schedule_id = run.id
        dbsession.flush()
    return run
