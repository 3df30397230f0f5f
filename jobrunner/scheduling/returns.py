"""What a run's return sets in motion, in the same transaction as the return
itself: a retry while the run has attempts left; else the job's failure
count (and its switch-off after too many failures), the error mail, the
children once the whole schedule has returned, and the job's next
schedule.

Retries: a failed run with attempts left (``attempt <= job.retries``) does
not count as a failure yet: no failure count, no mail, no children, no next
schedule. The next attempt is made instead: the same job, schedule,
``is_manual`` and ``schedule_children``, the same worker when the job runs
on all workers (else any worker of the pool), due ``retry_delay *
2^(attempt - 1)`` seconds after the return. A run killed on request (by a
user, or replaced by a newer run) is never retried."""
from datetime import timedelta

from sqlalchemy import select

from ..models import Job, Run, RunLog, utcnow
from . import notify
from .kills import killed_run_ids
from .next_run import next_run_at_return
from .runs import append_log, create_run

DEFAULT_RETRY_DELAY = 60


def process_return(dbsession, run, context, killed=None):
    """What a return sets in motion; `killed` when the caller knows
    whether the run was killed (None: looked up)."""
    job = dbsession.get(Job, run.job_id)
    now = utcnow()
    if killed is None:
        killed = was_killed(dbsession, run)
    if killed:
        note_replacement(dbsession, run, job)
    if not run.return_success and not killed and retry(dbsession, run, job):
        return
    if run.return_success:
        job.fail_times = 0
        notify.run_succeeded(dbsession, context, run)
    else:
        job.fail_times = (job.fail_times or 0) + 1
        log_text = dbsession.scalar(select(RunLog.content).where(RunLog.run_id == run.id))
        notify.run_failed(dbsession, context, run, log_text, killed=killed)
        if (
            job.disable_enqueue_after_fails is not None
            and job.fail_times > job.disable_enqueue_after_fails
        ):
            job.enqueue_is_enabled = False
    job.last_completed_schedule_id = run.schedule_id
    dbsession.flush()
    schedule_children(dbsession, run, job, now)
    next_run_at_return(dbsession, job, context, now)


def was_killed(dbsession, run):
    """The run's worker acted on a kill request for it."""
    return run.id in killed_run_ids(dbsession, [run.id])


REPLACED_MARK = "[jobrunner scheduler] replaced by run"


def replaced_line(due_run_id):
    return f"{REPLACED_MARK} {due_run_id}, which is due; the run is killed.\n"


def note_replacement(dbsession, run, job):
    """A killed run of a job with the replace policy, with a run of another
    schedule due, was replaced: its final log says so (the worker's last
    log write may have come after the scheduler's note)."""
    if job.concurrency_policy != "replace":
        return
    due_id = dbsession.scalar(
        select(Run.id).where(
            Run.job_id == job.id, Run.schedule_id != run.schedule_id,
            Run.enqueue_dts.is_(None), Run.return_dts.is_(None),
            Run.schedule_dts <= (run.return_dts or utcnow()),
        ).order_by(Run.schedule_dts, Run.id).limit(1))
    content = dbsession.scalar(select(RunLog.content).where(RunLog.run_id == run.id)) or ""
    if due_id is not None and REPLACED_MARK not in content:
        append_log(dbsession, run, replaced_line(due_id))


def retry(dbsession, run, job):
    """The next attempt of a failed run that has attempts left, or None."""
    attempt = run.attempt or 1
    if attempt > (job.retries or 0):
        return None
    delay = (job.retry_delay or DEFAULT_RETRY_DELAY) * 2 ** (attempt - 1)
    returned = run.return_dts or utcnow()
    following = create_run(
        dbsession, job, returned + timedelta(seconds=delay),
        is_manual=run.is_manual,
        schedule_children=run.schedule_children,
        worker_id=run.worker_id if job.run_on_all_workers else None,
        schedule_id=run.schedule_id,
    )
    following.attempt = attempt + 1
    dbsession.flush()
    return following


def schedule_children(dbsession, run, job, now):
    """Once every run of the schedule has returned: each enabled child, now."""
    # A job without children has nothing to schedule (the common case: the
    # siblings need not be read).
    if not run.schedule_children or not job.children:
        return
    siblings = dbsession.execute(
        select(Run.worker_id, Run.attempt, Run.return_dts, Run.return_success).where(
            Run.job_id == job.id, Run.schedule_id == run.schedule_id
        )
    ).all()
    if any(return_dts is None for _, _, return_dts, _ in siblings):
        return
    # The schedule's outcome is that of its last attempts: an attempt that
    # failed and was retried does not count (the runs of a run-on-all-workers
    # schedule are retried each on its own worker).
    retried = {(worker_id if job.run_on_all_workers else None, attempt - 1)
               for worker_id, attempt, _, _ in siblings if (attempt or 1) > 1}
    all_succeeded = all(
        success for worker_id, attempt, _, success in siblings
        if (worker_id if job.run_on_all_workers else None, attempt or 1) not in retried
    )
    if not (all_succeeded or job.schedule_children_on_error):
        return
    for child in job.children:
        if child.enqueue_is_enabled:
            create_run(dbsession, child, now, is_manual=False)
