"""A job's next scheduled run, in one place: the first run of a job that
has a schedule, the next run when a run returns (a job that forbids
overlap) or when it starts (a job that allows or replaces overlapping runs).

The times come from jobrunner.scheduling.schedule, in the job's time zone
(else the default zone); the rules about when a run is made are these:

* First run: a job with a schedule and no run still pending gets one, at
  the ``first_run_at`` it was given, else at the next cron time, else now
  for an interval. The REST API, the set-up loader and the admin forms all
  call ``ensure_first_run`` after they save a job.
* Forbid (the default): the next run is made when a run returns and no
  other run of the job is pending.
* Allow and replace: the next run is made as soon as a run starts, unless
  a run of the job is still waiting to be claimed; a return makes one only
  when none is waiting.
* Manual runs never shift the recurring schedule: times follow the last
  non-manual run's ``schedule_dts``.
"""
from sqlalchemy import select

from ..domain_errors import InvalidFields
from ..jobs import has_pending_run
from ..models import Run, utcnow
from . import notify
from .schedule import RescheduleError, Schedule, first_time, next_time, recurs
from .runs import create_run

OVERLAPPING_POLICIES = ("allow", "replace")


def ensure_first_run(dbsession, job, default_timezone, first_run_at=None, now=None,
                     move_waiting=False):
    """Gives a job that has a schedule and no pending run its first run.
    With ``move_waiting`` (a person saving the admin form with a "first run
    at"), the job's waiting recurring run moves to ``first_run_at`` instead;
    a set-up file loaded again never moves it, so loading stays idempotent.

    Returns the run made, or None. Raises InvalidFields when no time
    escapes the job's excludes."""
    schedule = Schedule.of_job(job)
    if first_run_at is not None and move_waiting:
        waiting = dbsession.scalar(
            select(Run).where(Run.job_id == job.id, Run.is_manual.is_(False),
                              Run.enqueue_dts.is_(None), Run.return_dts.is_(None))
            .order_by(Run.schedule_dts, Run.id).limit(1)
        )
        if waiting is not None:
            waiting.schedule_dts = first_run_at
            return waiting
    if not schedule.is_recurring:
        return None
    now = now or utcnow()
    if has_pending_run(dbsession, job.id):
        return None
    if first_run_at is None:
        try:
            first_run_at = first_time(schedule, now, default_timezone)
        except RescheduleError as exc:
            field = "cron_expression" if schedule.is_cron else "reschedule_excludes"
            raise InvalidFields({field: f"no first run: {exc}"}) from None
    return create_run(dbsession, job, first_run_at, is_manual=False)


def _last_two_schedules(dbsession, job_id):
    """The latest non-manual schedule_dts of the job and the one before it."""
    rows = list(dbsession.scalars(
        select(Run.schedule_dts).where(Run.job_id == job_id, Run.is_manual.is_(False))
        .group_by(Run.schedule_dts).order_by(Run.schedule_dts.desc()).limit(2)
    ))
    return (rows + [None, None])[:2]


def schedule_next(dbsession, job, context, now):
    """The job's next recurring run after its last non-manual one (now when
    it has none), by its misfire policy; mails the reschedule error when
    there is no next time. Returns the run or None."""
    schedule = Schedule.of_job(job)
    if not schedule.is_recurring:
        return None
    last, earlier = _last_two_schedules(dbsession, job.id)
    if last is None:
        last = now
    try:
        when = next_time(schedule, last, now, context.tz, earlier=earlier)
    except (RescheduleError, ValueError) as exc:
        notify.reschedule_failed(dbsession, context, job, str(exc))
        return None
    return create_run(dbsession, job, when, is_manual=False)


def next_run_at_return(dbsession, job, context, now):
    """After a return: forbid waits until no run of the job is pending;
    allow and replace until none is waiting to be claimed."""
    if not recurs(job.reschedule_interval, job.reschedule_interval_type, job.cron_expression):
        return None
    waiting_only = job.concurrency_policy in OVERLAPPING_POLICIES
    if has_pending_run(dbsession, job.id, waiting_only=waiting_only):
        return None
    return schedule_next(dbsession, job, context, now)


def next_run_at_start_for(concurrency_policy):
    """Whether a job of this policy may make its next run when a run starts."""
    return concurrency_policy in OVERLAPPING_POLICIES


def next_run_at_start(dbsession, job, context, now):
    """When a run starts: allow and replace schedule the next run at once."""
    if not next_run_at_start_for(job.concurrency_policy):
        return None
    if has_pending_run(dbsession, job.id, waiting_only=True):
        return None
    return schedule_next(dbsession, job, context, now)
