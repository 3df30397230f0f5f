"""Retention: the scheduler deletes completed runs older than
`jobrunner.retention_days` (with their logs and kill requests), but never a
job's newest `jobrunner.retention_keep_per_job` runs nor the runs of its
last completed schedule. Without `retention_days` everything is kept.

Deleting is done in batches of at most BATCH runs, each in a transaction of
its own, so neither workers nor pages wait long for a lock. The deleted runs
are counted by result in run_purge_tally, so the completed-runs counter of
the metrics never goes down. A loop iteration deletes at most
BATCHES_PER_ITERATION batches and the next iteration goes on where it
stopped; a pass over every job that finds nothing to delete is repeated
after PASS_INTERVAL only.
"""
import logging
import time
from datetime import timedelta

from sqlalchemy import and_, delete, func, or_, select, update

from ..models import Job, KillRequest, Run, RunLog, RunPurgeTally, utcnow

log = logging.getLogger(__name__)

BATCH = 1000
BATCHES_PER_ITERATION = 10
# Jobs with nothing to delete cost a query each; this bounds an iteration.
SECONDS_PER_ITERATION = 2.0
PASS_INTERVAL = timedelta(minutes=5)


def job_ids(dbsession, after_id):
    return list(dbsession.scalars(select(Job.id).where(Job.id > after_id).order_by(Job.id)))


def _kept_from(dbsession, job_id, keep):
    """(schedule_dts, id) of the oldest of the job's newest `keep` runs, or
    None when the job has no more than `keep` runs (nothing may go)."""
    row = dbsession.execute(
        select(Run.schedule_dts, Run.id)
        .where(Run.job_id == job_id)
        .order_by(Run.schedule_dts.desc(), Run.id.desc())
        .offset(keep - 1)
        .limit(1)
    ).first()
    return tuple(row) if row is not None else None


def _purgeable(dbsession, job_id, cutoff, keep):
    """WHERE clauses for the job's runs that may go, or None when none may."""
    job = dbsession.get(Job, job_id)
    if job is None:
        return None
    conditions = [Run.job_id == job_id, Run.return_dts.is_not(None), Run.return_dts < cutoff]
    if job.last_completed_schedule_id is not None:
        conditions.append(Run.schedule_id != job.last_completed_schedule_id)
    if keep > 0:
        kept_from = _kept_from(dbsession, job_id, keep)
        if kept_from is None:
            return None
        kept_dts, kept_id = kept_from
        conditions.append(
            or_(Run.schedule_dts < kept_dts, and_(Run.schedule_dts == kept_dts, Run.id < kept_id))
        )
    return conditions


def has_purgeable(dbsession, job_id, cutoff, keep):
    """Asked in a reading transaction first: a job with nothing to delete
    costs no write lock (on SQLite the only one there is)."""
    conditions = _purgeable(dbsession, job_id, cutoff, keep)
    return conditions is not None and dbsession.scalar(select(Run.id).where(*conditions).limit(1)) is not None


def purge_job_batch(dbsession, job_id, cutoff, keep, limit=BATCH):
    """Deletes up to `limit` purgeable runs of one job; returns how many."""
    conditions = _purgeable(dbsession, job_id, cutoff, keep)
    if conditions is None:
        return 0
    # SKIP LOCKED: two schedulers purging side by side take different rows,
    # and each counts only what it deletes.
    rows = dbsession.execute(
        select(Run.id, Run.return_success)
        .where(*conditions)
        .order_by(Run.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return 0
    ids = [row.id for row in rows]
    dbsession.execute(delete(KillRequest).where(KillRequest.run_id.in_(ids)))
    dbsession.execute(delete(RunLog).where(RunLog.run_id.in_(ids)))
    dbsession.execute(delete(Run).where(Run.id.in_(ids)).execution_options(synchronize_session=False))
    succeeded = sum(1 for row in rows if row.return_success)
    _tally(dbsession, "success", succeeded)
    _tally(dbsession, "failure", len(rows) - succeeded)
    return len(rows)


def _tally(dbsession, result, count):
    if not count:
        return
    updated = dbsession.execute(
        update(RunPurgeTally)
        .where(RunPurgeTally.result == result)
        .values(count=RunPurgeTally.count + count)
    )
    if updated.rowcount == 0:
        dbsession.add(RunPurgeTally(result=result, count=count))
        dbsession.flush()


def purged_counts(dbsession):
    """{"success": n, "failure": n}: completed runs that retention deleted."""
    counts = {"success": 0, "failure": 0}
    for result, count in dbsession.execute(select(RunPurgeTally.result, RunPurgeTally.count)):
        counts[result] = int(count)
    return counts


def purge_old_runs(dbsession, settings, now):
    """The whole duty in the caller's transaction (`settings` is a
    jobrunner.settings.Settings). Returns the runs deleted."""
    days, keep = settings.retention_days, settings.retention_keep_per_job
    if days is None:
        return 0
    cutoff = now - timedelta(days=days)
    deleted = 0
    for job_id in job_ids(dbsession, 0):
        while True:
            count = purge_job_batch(dbsession, job_id, cutoff, keep)
            deleted += count
            if count < BATCH:
                break
    return deleted


class Retention:
    """The duty as the scheduler loop runs it: a few batches per iteration,
    each in a transaction of its own, resuming where the last one stopped."""

    def __init__(self, settings):
        self.days, self.keep = settings.retention_days, settings.retention_keep_per_job
        self.after_job_id = 0
        self.pass_found = 0
        self.next_pass = None

    def run(self, in_transaction, stop_event=None):
        """Returns the number of runs deleted in this iteration."""
        if self.days is None:
            return 0
        now = utcnow()
        if self.after_job_id == 0 and self.next_pass is not None and now < self.next_pass:
            return 0
        cutoff = now - timedelta(days=self.days)
        deadline = time.monotonic() + SECONDS_PER_ITERATION
        deleted = 0
        batches = 0
        while batches < BATCHES_PER_ITERATION and time.monotonic() < deadline:
            if stop_event is not None and stop_event.is_set():
                return deleted
            jobs = in_transaction(lambda s: job_ids(s, self.after_job_id), write=False)
            if not jobs:
                # A pass over every job has ended.
                self.after_job_id = 0
                if self.pass_found:
                    log.info("retention: deleted %d old runs", self.pass_found)
                self.pass_found = 0
                self.next_pass = now + PASS_INTERVAL
                return deleted
            for job_id in jobs:
                if not in_transaction(lambda s: has_purgeable(s, job_id, cutoff, self.keep), write=False):
                    self.after_job_id = job_id
                    if time.monotonic() >= deadline:
                        return deleted
                    continue
                count = in_transaction(lambda s: purge_job_batch(s, job_id, cutoff, self.keep))
                batches += 1 if count else 0
                deleted += count
                self.pass_found += count
                if batches >= BATCHES_PER_ITERATION or time.monotonic() >= deadline:
                    if count < BATCH:
                        self.after_job_id = job_id
                    return deleted
                if count >= BATCH:
                    break  # a full batch: this job again
                self.after_job_id = job_id  # done with this job in this pass
        return deleted


def count_by_result(dbsession):
    """Completed runs in the table, by result."""
    rows = dbsession.execute(
        select(Run.return_success, func.count())
        .where(Run.return_dts.is_not(None))
        .group_by(Run.return_success)
    ).all()
    counts = {"success": 0, "failure": 0}
    for success, count in rows:
        counts["success" if success else "failure"] += count
    return counts
