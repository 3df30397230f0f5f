"""The rules of a job, whoever writes it (the REST API, the set-up loader,
admin forms):

* its worker pool is one of its project's pools;
* its parent is a job of the same project, and following parents never
  comes back to the job (no cycles);
* a reschedule interval is greater than zero and needs an interval type;
  interval types are read in either case and stored upper-case;
* its title is unique within its template;
* it has a reschedule interval or a cron expression or neither, never both;
  the expression and the time zone (an IANA name) must be valid;
* its concurrency policy is forbid, allow or replace, its misfire policy
  skip or run_once; a timeout is more than zero seconds (or none); retries
  are 0 to 10; a retry delay is more than zero seconds;
* it has a pending run while one of its runs has not returned.

Plain functions over a SQLAlchemy session; broken rules raise InvalidFields
naming each field, with messages that read on their own.
"""
from sqlalchemy import select

from .domain_errors import InvalidFields
from .scheduling.reschedule import validate_interval
from .models import IntervalType, Job, JobTemplate, Run
from .scheduling.reschedule import MISFIRE_POLICIES
from .scheduling.schedule import Schedule, schedule_errors

INTERVAL_TYPES = tuple(t.value for t in IntervalType)
CONCURRENCY_POLICIES = ("forbid", "allow", "replace")
MAX_RETRIES = 10


def parse_interval_type(value):
    """An IntervalType from its name in any case (`day` or `DAY`), or None."""
    if value is None or isinstance(value, IntervalType):
        return value
    if isinstance(value, str) and value.strip().upper() in INTERVAL_TYPES:
        return IntervalType(value.strip().upper())
    raise ValueError(f"must be one of {', '.join(INTERVAL_TYPES)} or null, not {value!r}")


def check_job(dbsession, job, project):
    """Raises InvalidFields unless `job` (changed, not yet flushed, with its
    template, pool and parent set as objects) keeps the rules in `project`."""
    errors = {}
    pool = job.worker_pool
    if pool is not None and pool.id not in {p.id for p in project.worker_pools}:
        errors["worker_pool"] = f"worker_pool {pool.title!r} is not one of the project's pools"
    parent = job.parent
    if parent is not None:
        if parent.job_template.project_id != project.id:
            errors["parent"] = f"parent {parent.title!r} is a job of another project"
        else:
            cycle = parent_cycle(job)
            if cycle:
                errors["parent"] = f"parent: the chain {' -> '.join(cycle)} is a cycle"
    if job.reschedule_interval is not None:
        if job.reschedule_interval <= 0:
            errors["reschedule_interval"] = "reschedule_interval must be greater than zero"
        elif job.reschedule_interval_type is None:
            errors["reschedule_interval_type"] = (
                "reschedule_interval needs a reschedule_interval_type")
        else:
            try:
                # The calculator's bound: past it a return would need a date
                # after the year 9999.
                validate_interval(job.reschedule_interval, job.reschedule_interval_type)
            except ValueError as exc:
                errors["reschedule_interval"] = str(exc)
    if job.disable_enqueue_after_fails is not None and job.disable_enqueue_after_fails < 0:
        errors["disable_enqueue_after_fails"] = "disable_enqueue_after_fails may not be negative"
    for name, message in schedule_field_errors(job).items():
        errors.setdefault(name, message)
    template = job.job_template
    if template is not None and template.id is not None:
        duplicate = dbsession.scalar(
            select(Job.id).where(Job.job_template_id == template.id, Job.title == job.title,
                                 Job.id != (job.id or 0))
        )
        if duplicate is not None:
            errors["title"] = (f"title: the template {template.title!r} has a job titled "
                               f"{job.title!r} already")
    if errors:
        raise InvalidFields(errors)


def schedule_field_errors(job):
    """The schedule's fields (one schedule, a valid expression and zone) and
    the fields of overlap, timeout, retries and misfires."""
    errors = {}
    policy = job.concurrency_policy if job.concurrency_policy is not None else "forbid"
    if policy not in CONCURRENCY_POLICIES:
        errors["concurrency_policy"] = (
            f"concurrency_policy is one of {', '.join(CONCURRENCY_POLICIES)}, not {policy!r}")
    if job.misfire_policy is not None and job.misfire_policy not in MISFIRE_POLICIES:
        errors["misfire_policy"] = (
            f"misfire_policy is one of {', '.join(MISFIRE_POLICIES)}, not {job.misfire_policy!r}")
    if job.timeout is not None and not _whole(job.timeout, 1):
        errors["timeout"] = "timeout is a whole number of seconds greater than zero, or null"
    if job.retries is not None and not (_whole(job.retries, 0) and job.retries <= MAX_RETRIES):
        errors["retries"] = f"retries is a whole number from 0 to {MAX_RETRIES}"
    if job.retry_delay is not None and not _whole(job.retry_delay, 1):
        errors["retry_delay"] = "retry_delay is a whole number of seconds greater than zero"
    if job.cron_expression is not None and not str(job.cron_expression).strip():
        errors["cron_expression"] = "cron_expression may not be empty (null: none)"
    if "misfire_policy" in errors:
        return errors
    # An interval type without an interval means no interval (a null
    # interval is how a job stops recurring).
    interval_type = job.reschedule_interval_type if job.reschedule_interval is not None else None
    schedule = Schedule(
        interval=job.reschedule_interval,
        interval_type=getattr(interval_type, "value", interval_type),
        cron_expression=job.cron_expression or None,
        timezone=job.timezone,
        misfire_policy=job.misfire_policy or "skip",
    )
    for name, message in schedule_errors(schedule).items():
        errors.setdefault(name, f"{name}: {message}" if not message.startswith(name) else message)
    return errors


def _whole(value, minimum):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def parent_cycle(job):
    """The titles along the parents from `job` until one repeats, or [] when
    the chain ends. Walks the objects, so unflushed parents count too."""
    chain = [job.title]
    seen = {id(job)}
    current = job.parent
    while current is not None:
        chain.append(current.title)
        if id(current) in seen:
            return chain
        seen.add(id(current))
        current = current.parent
    return []


def jobs_off_project_pools(dbsession, project):
    """The project's jobs on a pool that is no longer one of its pools (a
    project may not drop a pool its jobs use), by title."""
    pool_ids = [pool.id for pool in project.worker_pools]
    return dbsession.scalars(
        select(Job).join(Job.job_template)
        .where(JobTemplate.project_id == project.id, Job.worker_pool_id.not_in(pool_ids))
        .order_by(Job.title)
    ).all()


def has_pending_run(dbsession, job_id, waiting_only=False):
    """One of the job's runs has not returned yet (with ``waiting_only``: and
    is not claimed either)."""
    query = select(Run.id).where(Run.job_id == job_id, Run.return_dts.is_(None))
    if waiting_only:
        query = query.where(Run.enqueue_dts.is_(None))
    return dbsession.scalar(query.limit(1)) is not None
