"""What a run's return sets in motion, in the same transaction as the return
itself: the job's failure count (and its switch-off after too many failures),
the error mail, the children once the whole schedule has returned, and the
job's next schedule."""
from sqlalchemy import func, select

from ..jobs import has_pending_run
from ..models import IntervalType, Job, Run, RunLog, utcnow
from . import mail
from .kills import killed_run_ids
from .reschedule import RescheduleError, next_schedule
from .runs import create_run


def process_return(dbsession, run, context, killed=False):
    job = dbsession.get(Job, run.job_id)
    now = utcnow()
    if run.return_success:
        job.fail_times = 0
    else:
        job.fail_times = (job.fail_times or 0) + 1
        log_text = dbsession.scalar(select(RunLog.content).where(RunLog.run_id == run.id))
        mail.send_run_error(context, run, log_text, killed=killed or was_killed(dbsession, run))
        if (
            job.disable_enqueue_after_fails is not None
            and job.fail_times > job.disable_enqueue_after_fails
        ):
            job.enqueue_is_enabled = False
    job.last_completed_schedule_id = run.schedule_id
    dbsession.flush()
    schedule_children(dbsession, run, job, now)
    reschedule(dbsession, job, context, now)


def was_killed(dbsession, run):
    """The run's worker acted on a kill request for it."""
    return run.id in killed_run_ids(dbsession, [run.id])


def schedule_children(dbsession, run, job, now):
    """Once every run of the schedule has returned: each enabled child, now."""
    if not run.schedule_children:
        return
    siblings = dbsession.execute(
        select(Run.return_dts, Run.return_success).where(
            Run.job_id == job.id, Run.schedule_id == run.schedule_id
        )
    ).all()
    if any(return_dts is None for return_dts, _ in siblings):
        return
    all_succeeded = all(success for _, success in siblings)
    if not (all_succeeded or job.schedule_children_on_error):
        return
    for child in job.children:
        if child.enqueue_is_enabled:
            create_run(dbsession, child, now, is_manual=False)


def reschedule(dbsession, job, context, now):
    if not job.reschedule_interval or not job.reschedule_interval_type:
        return None
    # One schedule at a time: a pending run is the job's next schedule.
    if has_pending_run(dbsession, job.id):
        return None
    # Manual runs never shift the recurring schedule.
    last = dbsession.scalar(
        select(func.max(Run.schedule_dts)).where(Run.job_id == job.id, Run.is_manual.is_(False))
    )
    if last is None:
        last = now
    interval_type = job.reschedule_interval_type
    if isinstance(interval_type, IntervalType):
        interval_type = interval_type.value
    excludes = [(e.start_time, e.end_time) for e in job.reschedule_excludes]
    try:
        when = next_schedule(last, job.reschedule_interval, interval_type, excludes, context.tz, now)
    except RescheduleError as exc:
        mail.send_reschedule_error(context, job, str(exc))
        return None
    except (OverflowError, ValueError) as exc:
        # An interval stored before intervals were bounded: past the year
        # 9999 there is no next schedule; the return itself still counts.
        mail.send_reschedule_error(context, job, f"the next schedule is out of range ({exc})")
        return None
    return create_run(dbsession, job, when, is_manual=False)
