"""The scheduler's duties, as plain functions over a SQLAlchemy session:
expanding due runs of run-on-all-workers jobs into one run per enabled worker,
settling the runs of unresponsive workers, and mailing once per pool outage.

Every duty is idempotent and safe with several schedulers at once. A duty is
split in two functions: one lists the candidates, the other handles one
candidate after taking its rows. The loop (daemon.py) runs the listing and
then each candidate in a short transaction of its own; the `expand_*`,
`fail_*` and `alert_*` functions run the same steps in the caller's
transaction.

How two schedulers stay out of each other's way on PostgreSQL: a candidate's
job row (or pool row) is taken first with FOR UPDATE SKIP LOCKED, in the
same order as the API's claims and returns take them (job, then run), then
the run row with FOR UPDATE SKIP LOCKED, re-checking the candidate's
conditions. A row held by someone else is skipped and retried in the next
iteration; a row already handled no longer matches. On SQLite the loop's
transactions start with BEGIN IMMEDIATE, so writers are serialised.

`settings` below is a jobrunner.settings.Settings; `context` a mail context.
"""
import logging
from datetime import timedelta

from sqlalchemy import and_, exists, or_, select

from ..models import Job, Run, Worker, WorkerPool
from ..models.tables import worker_pool_workers
from . import mail
from .returns import process_return
from .runs import RunConflict, append_log, create_run, mark_returned, reset_claim

log = logging.getLogger(__name__)


def unresponsive_cutoff(settings, now):
    """Workers without a ping since this moment are unresponsive."""
    return now - timedelta(seconds=settings.unresponsive_limit)


# --- row taking ----------------------------------------------------------------


def take_job(dbsession, job_id):
    """Locks the job's row unless another transaction holds it (claims and
    returns of the API lock it too). SQLite ignores FOR UPDATE."""
    taken = dbsession.scalar(
        select(Job.id).where(Job.id == job_id).with_for_update(skip_locked=True)
    )
    return taken is not None


def is_unresponsive(cutoff):
    """SQL condition on Worker: enabled, and no ping since the cutoff."""
    return and_(
        Worker.enqueue_is_enabled.is_(True),
        or_(Worker.ping_response_dts.is_(None), Worker.ping_response_dts < cutoff),
    )


def is_responsive(cutoff):
    return and_(Worker.enqueue_is_enabled.is_(True), Worker.ping_response_dts >= cutoff)


# --- run-on-all-workers expansion ---------------------------------------


def _to_expand(now):
    return [
        Run.worker_id.is_(None),
        Run.enqueue_dts.is_(None),
        Run.return_dts.is_(None),
        Run.schedule_dts <= now,
        Job.run_on_all_workers.is_(True),
    ]


def runs_to_expand(dbsession, now):
    """(run id, job id) of the due, unexpanded runs of run-on-all-workers jobs."""
    query = (
        select(Run.id, Run.job_id)
        .join(Job, Job.id == Run.job_id)
        .where(*_to_expand(now))
        .order_by(Run.schedule_dts, Run.id)
    )
    return [tuple(row) for row in dbsession.execute(query)]


def expand_run(dbsession, run_id, job_id, now):
    """One run per enabled worker of the job's pool, in the original's
    schedule, then the original goes. Returns the runs created ([] when
    another scheduler has it or has done it already)."""
    if not take_job(dbsession, job_id):
        return []
    run = dbsession.scalar(
        select(Run)
        .join(Job, Job.id == Run.job_id)
        .where(Run.id == run_id, *_to_expand(now))
        .with_for_update(skip_locked=True, of=Run)
    )
    if run is None:
        return []
    job = dbsession.get(Job, job_id)
    workers = dbsession.scalars(
        select(Worker)
        .join(worker_pool_workers, worker_pool_workers.c.worker_id == Worker.id)
        .where(
            worker_pool_workers.c.worker_pool_id == job.worker_pool_id,
            Worker.enqueue_is_enabled.is_(True),
        )
        .order_by(Worker.id)
    ).all()
    if not workers:
        # Deleting the run would lose the schedule; it waits for a worker.
        log.debug("run %s of job %s waits: its pool has no enabled worker", run.id, job.id)
        return []
    schedule_id = run.schedule_id if run.schedule_id is not None else run.id
    created = [
        create_run(
            dbsession,
            job,
            run.schedule_dts,
            is_manual=run.is_manual,
            schedule_children=run.schedule_children,
            worker_id=worker.id,
            schedule_id=schedule_id,
        )
        for worker in workers
    ]
    dbsession.delete(run)
    dbsession.flush()
    log.info("expanded run %s of job %r into %d runs", run_id, job.title, len(created))
    return created


def expand_run_on_all_workers(dbsession, now):
    """Expands every due run in the caller's transaction. Returns the runs created."""
    created = []
    for run_id, job_id in runs_to_expand(dbsession, now):
        created.extend(expand_run(dbsession, run_id, job_id, now))
    return created


# --- runs of unresponsive workers ----------------------------------------


def _held_by_unresponsive(cutoff, now):
    return [
        Run.return_dts.is_(None),
        is_unresponsive(cutoff),
        or_(
            Run.enqueue_dts.is_not(None),
            # A due run pinned to the worker by a run-on-all-workers schedule
            # can run nowhere else; left alone it would hold back the
            # schedule's children and the job's next schedule for ever.
            and_(Job.run_on_all_workers.is_(True), Run.schedule_dts <= now),
        ),
    ]


def runs_of_unresponsive_workers(dbsession, now, settings):
    """(run id, job id) of the runs that unresponsive workers hold."""
    cutoff = unresponsive_cutoff(settings, now)
    query = (
        select(Run.id, Run.job_id)
        .join(Worker, Worker.id == Run.worker_id)
        .join(Job, Job.id == Run.job_id)
        .where(*_held_by_unresponsive(cutoff, now))
        .order_by(Run.id)
    )
    return [tuple(row) for row in dbsession.execute(query)]


def _local(context, dts):
    return dts.astimezone(context.tz).strftime("%Y-%m-%d %H:%M:%S %Z") if dts else "never"


def settle_run_of_unresponsive_worker(dbsession, run_id, job_id, now, settings, context):
    """A started run (or any run of a run-on-all-workers schedule) is returned
    as failed, with the reason in its log, and its return is processed like
    any other; a run that was only in queue is freed for the pool.
    Returns "failed", "freed" or None (another scheduler has it)."""
    if not take_job(dbsession, job_id):
        return None
    cutoff = unresponsive_cutoff(settings, now)
    run = dbsession.scalar(
        select(Run)
        .join(Worker, Worker.id == Run.worker_id)
        .join(Job, Job.id == Run.job_id)
        .where(Run.id == run_id, *_held_by_unresponsive(cutoff, now))
        .with_for_update(skip_locked=True, of=Run)
    )
    if run is None:
        return None
    job = dbsession.get(Job, job_id)
    worker = dbsession.get(Worker, run.worker_id)
    started = run.start_dts is not None
    if not started and not job.run_on_all_workers:
        # Back to its pool's queue, for any worker of the pool to claim.
        reset_claim(dbsession, run, release_worker=True)
        log.info("freed run %s of job %r: worker %r is unresponsive", run.id, job.title, worker.title)
        return "freed"
    try:
        mark_returned(dbsession, run, now, False)
    except RunConflict:
        return None
    append_log(
        dbsession,
        run,
        f"[jobrunner scheduler] {_local(context, now)}: the worker {worker.title!r} is "
        f"unresponsive (last ping: {_local(context, worker.ping_response_dts)}; allowed "
        f"{settings.unresponsive_limit:g} seconds without a ping). The run was returned as "
        f"failed{'' if started else ' before it started'}.\n",
    )
    process_return(dbsession, run, context)
    log.warning("returned run %s of job %r as failed: worker %r is unresponsive",
                run.id, job.title, worker.title)
    return "failed"


def fail_unresponsive_workers(dbsession, now, settings, context):
    """Settles every run of unresponsive workers in the caller's transaction. Returns {"failed": n, "freed": n}."""
    counts = {"failed": 0, "freed": 0}
    for run_id, job_id in runs_of_unresponsive_workers(dbsession, now, settings):
        outcome = settle_run_of_unresponsive_worker(dbsession, run_id, job_id, now, settings, context)
        if outcome:
            counts[outcome] += 1
    return counts


# --- pool alerts -----------------------------------------------------------


def _pool_workers(condition):
    return (
        exists()
        .where(
            worker_pool_workers.c.worker_pool_id == WorkerPool.id,
            worker_pool_workers.c.worker_id == Worker.id,
            condition,
        )
        .correlate(WorkerPool)
    )


def _pool_state_changes(cutoff):
    has_enabled = _pool_workers(Worker.enqueue_is_enabled.is_(True))
    has_responsive = _pool_workers(is_responsive(cutoff))
    return or_(
        and_(WorkerPool.unresponsive_since_dts.is_(None), has_enabled, ~has_responsive),
        and_(WorkerPool.unresponsive_since_dts.is_not(None), has_responsive),
    )


def pools_to_check(dbsession, now, settings):
    """Pools whose outage starts or ends now."""
    cutoff = unresponsive_cutoff(settings, now)
    return list(
        dbsession.scalars(
            select(WorkerPool.id).where(_pool_state_changes(cutoff)).order_by(WorkerPool.id)
        )
    )


def check_pool(dbsession, pool_id, now, settings, context):
    """Mails once per outage. Returns "alerted", "recovered" or None."""
    cutoff = unresponsive_cutoff(settings, now)
    pool = dbsession.scalar(
        select(WorkerPool)
        .where(WorkerPool.id == pool_id, _pool_state_changes(cutoff))
        .with_for_update(skip_locked=True)
    )
    if pool is None:
        return None
    if pool.unresponsive_since_dts is not None:
        pool.unresponsive_since_dts = None
        dbsession.flush()
        log.info("worker pool %r answers again", pool.title)
        return "recovered"
    workers = dbsession.scalars(
        select(Worker)
        .join(worker_pool_workers, worker_pool_workers.c.worker_id == Worker.id)
        .where(worker_pool_workers.c.worker_pool_id == pool.id, Worker.enqueue_is_enabled.is_(True))
        .order_by(Worker.id)
    ).all()
    pool.unresponsive_since_dts = now
    dbsession.flush()
    mail.send_pool_unresponsive(context, pool, workers)
    log.warning("worker pool %r is unresponsive", pool.title)
    return "alerted"


def alert_unresponsive_pools(dbsession, now, settings, context):
    """Checks every pool in the caller's transaction. Returns {"alerted": n, "recovered": n}."""
    counts = {"alerted": 0, "recovered": 0}
    for pool_id in pools_to_check(dbsession, now, settings):
        outcome = check_pool(dbsession, pool_id, now, settings, context)
        if outcome:
            counts[outcome] += 1
    return counts
