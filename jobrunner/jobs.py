"""The rules of a job, whoever writes it (the REST API, the set-up loader,
admin forms):

* its worker pool is one of its project's pools;
* its parent is a job of the same project, and following parents never
  comes back to the job (no cycles);
* a reschedule interval is greater than zero and needs an interval type;
  interval types are read in either case and stored upper-case;
* its title is unique within its template;
* it has a pending run while one of its runs has not returned.

Plain functions over a SQLAlchemy session; broken rules raise InvalidFields
naming each field, with messages that read on their own.
"""
from sqlalchemy import select

from .domain_errors import InvalidFields
from .scheduling.reschedule import validate_interval
from .models import IntervalType, Job, JobTemplate, Run

INTERVAL_TYPES = tuple(t.value for t in IntervalType)


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


def has_pending_run(dbsession, job_id):
    """One of the job's runs has not returned yet."""
    return (
        dbsession.scalar(
            select(Run.id).where(Run.job_id == job_id, Run.return_dts.is_(None)).limit(1)
        )
        is not None
    )
