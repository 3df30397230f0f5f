"""Two duties of the scheduler about runs that must end: a run past its
job's timeout that its worker did not end (a hung or lost worker), and a
started run that a due run of a job with the ``replace`` policy replaces.
The loop runs them like the duties of duties.py: list the candidates, then
handle each in a short transaction after taking its job's row.

* Timeout: a started run whose ``start_dts + timeout`` lies more than
  ``ping_interval + ping_margin`` seconds in the past is returned as failed,
  ``timed_out`` true, with ``[timed out after N s]`` at the end of its log;
  its return is processed like any other (retries included).
* Replace: when a run of such a job (a manual one too) is due while a run
  of another schedule of the job is started, a kill request is made for the
  started run and its log says it was replaced; the due run becomes
  enqueueable once the old one has returned.
"""
import logging
from datetime import timedelta

from sqlalchemy import select

from ..models import Job, KillRequest, Run
from .duties import take_job
from .returns import process_return, replaced_line
from .runs import RunConflict, append_log, mark_returned, request_kill

log = logging.getLogger(__name__)


def timed_out_line(timeout):
    return f"[timed out after {timeout} s]"


# --- timeouts ------------------------------------------------------------------


def _timeout_slack(settings):
    return timedelta(seconds=settings.ping_interval + settings.ping_margin)


def _is_overdue(start_dts, timeout, now, settings):
    return start_dts + timedelta(seconds=timeout) < now - _timeout_slack(settings)


def overdue_runs(dbsession, now, settings):
    """(run id, job id) of started runs well past their job's timeout."""
    # Any timeout is at least a second: the database narrows the candidates,
    # each one's own timeout is checked here.
    rows = dbsession.execute(
        select(Run.id, Run.job_id, Run.start_dts, Job.timeout)
        .join(Job, Job.id == Run.job_id)
        .where(Run.return_dts.is_(None), Run.start_dts.is_not(None), Job.timeout.is_not(None),
               Run.start_dts < now - _timeout_slack(settings))
        .order_by(Run.id)
    )
    return [(run_id, job_id) for run_id, job_id, start_dts, timeout in rows
            if _is_overdue(start_dts, timeout, now, settings)]


def fail_overdue_run(dbsession, run_id, job_id, now, settings, context):
    """Returns the run as failed and timed out; "timed_out", or None when
    another scheduler or the worker got there first."""
    if not take_job(dbsession, job_id):
        return None
    run = dbsession.scalar(
        select(Run).where(Run.id == run_id, Run.return_dts.is_(None))
        .with_for_update(skip_locked=True))
    job = dbsession.get(Job, job_id)
    if run is None or run.start_dts is None or job.timeout is None:
        return None
    if not _is_overdue(run.start_dts, job.timeout, now, settings):
        return None
    try:
        mark_returned(dbsession, run, now, False)
    except RunConflict:
        return None
    run.timed_out = True
    append_log(dbsession, run, timed_out_line(job.timeout) + "\n")
    process_return(dbsession, run, context)
    log.warning("returned run %s of job %r as timed out", run.id, job.title)
    return "timed_out"


# --- replace -------------------------------------------------------------------


def runs_to_replace(dbsession, now):
    """(started run id, job id, due run id) for jobs with the replace policy."""
    due = Run.__table__.alias("due_run")
    started = Run.__table__.alias("started_run")
    rows = dbsession.execute(
        select(started.c.id, started.c.job_id, due.c.id)
        .join(Job, Job.id == started.c.job_id)
        .join(due, due.c.job_id == started.c.job_id)
        .where(
            Job.concurrency_policy == "replace",
            started.c.start_dts.is_not(None), started.c.return_dts.is_(None),
            due.c.schedule_id != started.c.schedule_id,
            due.c.enqueue_dts.is_(None), due.c.return_dts.is_(None), due.c.schedule_dts <= now,
            ~select(KillRequest.id).where(KillRequest.run_id == started.c.id).exists(),
        )
        .order_by(started.c.id, due.c.schedule_dts, due.c.id)
    )
    seen, result = set(), []
    for started_id, job_id, due_id in rows:
        if started_id not in seen:
            seen.add(started_id)
            result.append((started_id, job_id, due_id))
    return result


def replace_run(dbsession, started_id, job_id, due_id, now):
    """Asks for the started run to be killed; "replaced", or None."""
    if not take_job(dbsession, job_id):
        return None
    run = dbsession.get(Run, started_id)
    pending_kill = dbsession.scalar(select(KillRequest.id).where(KillRequest.run_id == started_id))
    if run is None or run.return_dts is not None or pending_kill is not None:
        return None
    try:
        request_kill(dbsession, run)
    except RunConflict:
        return None
    append_log(dbsession, run, replaced_line(due_id))
    log.info("run %s of job %s is replaced by run %s", started_id, job_id, due_id)
    return "replaced"
