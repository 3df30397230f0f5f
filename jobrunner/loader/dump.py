"""Everything the loader reads, written in the same format: loading a dump
changes nothing, and loading it into an empty database recreates the set-up
with each job's next recurring run. Users are dumped without passwords;
workers with their secrets but without their runtime state (last ping,
version), which an old dump would otherwise set back."""
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..models import Group, Job, JobTemplate, Project, Run, User, Worker, WorkerPool
from ..values import address_list


def _time_text(value):
    if value.second or value.microsecond:
        return value.isoformat()
    return value.isoformat(timespec="minutes")


def dump(dbsession):
    """Everything ``load`` reads, in the same format (users without passwords)."""
    groups = dbsession.scalars(select(Group).order_by(Group.name)).all()
    users = dbsession.scalars(
        select(User).order_by(User.username).options(selectinload(User.groups))
    ).all()
    workers = dbsession.scalars(select(Worker).order_by(Worker.api_key)).all()
    pools = dbsession.scalars(
        select(WorkerPool).order_by(WorkerPool.title).options(selectinload(WorkerPool.workers))
    ).all()
    projects = dbsession.scalars(
        select(Project).order_by(Project.title).options(
            selectinload(Project.groups), selectinload(Project.auth_groups),
            selectinload(Project.worker_pools))
    ).all()
    templates = dbsession.execute(
        select(JobTemplate, Project.title).join(JobTemplate.project)
        .order_by(Project.title, JobTemplate.title)
    ).all()
    jobs = dbsession.execute(
        select(Job, JobTemplate.title, Project.title)
        .join(Job.job_template).join(JobTemplate.project)
        .order_by(Project.title, JobTemplate.title, Job.title)
        .options(selectinload(Job.worker_pool), selectinload(Job.parent),
                 selectinload(Job.reschedule_excludes))
    ).all()
    # The next recurring run of each job, so that loading the dump into an
    # empty database carries the schedules over.
    pending = {}
    for job_id, schedule_dts in dbsession.execute(
        select(Run.job_id, Run.schedule_dts)
        .where(Run.return_dts.is_(None), Run.is_manual.is_(False))
        .order_by(Run.schedule_dts.desc())
    ):
        pending[job_id] = schedule_dts

    def names(groups_):
        return sorted(group.name for group in groups_)

    return {
        "groups": [group.name for group in groups],
        "users": [
            {"username": user.username, "email": user.email, "is_admin": user.is_admin,
             "is_active": user.is_active, "groups": names(user.groups)}
            for user in users
        ],
        "workers": [
            {"title": worker.title, "description": worker.description,
             "api_key": worker.api_key, "secret": worker.secret,
             "enqueue_is_enabled": worker.enqueue_is_enabled,
             "concurrent_jobs": worker.concurrent_jobs}
            for worker in workers
        ],
        "worker_pools": [
            {"title": pool.title, "description": pool.description,
             "workers": sorted(worker.api_key for worker in pool.workers),
             "notification_addresses": address_list(pool.notification_addresses),
             "enqueue_is_enabled": pool.enqueue_is_enabled}
            for pool in pools
        ],
        "projects": [
            {"title": project.title, "description": project.description,
             "groups": names(project.groups), "auth_groups": names(project.auth_groups),
             "worker_pools": sorted(pool.title for pool in project.worker_pools),
             "notification_addresses": address_list(project.notification_addresses),
             "enqueue_is_enabled": project.enqueue_is_enabled}
            for project in projects
        ],
        "job_templates": [
            {"project": project_title, "title": template.title,
             "description": template.description, "body": template.body,
             "notification_addresses": address_list(template.notification_addresses),
             "enqueue_is_enabled": template.enqueue_is_enabled}
            for template, project_title in templates
        ],
        "jobs": [_dump_job(job, template_title, project_title, pending.get(job.id))
                 for job, template_title, project_title in jobs],
    }


def _dump_job(job, template_title, project_title, schedule_dts):
    entry = {
        "project": project_title,
        "job_template": template_title,
        "title": job.title,
        "description": job.description,
        "worker_pool": job.worker_pool.title,
        "parent": job.parent.title if job.parent is not None else None,
        "script_content_partial": job.script_content_partial,
        "enqueue_is_enabled": job.enqueue_is_enabled,
        "reschedule_interval": job.reschedule_interval,
        "reschedule_interval_type": (job.reschedule_interval_type.value
                                     if job.reschedule_interval_type else None),
        "reschedule_excludes": [
            {"start_time": _time_text(exclude.start_time),
             "end_time": _time_text(exclude.end_time),
             "note": exclude.note}
            for exclude in job.reschedule_excludes
        ],
        "notification_addresses": address_list(job.notification_addresses),
        "run_on_all_workers": job.run_on_all_workers,
        "schedule_children_on_error": job.schedule_children_on_error,
        "disable_enqueue_after_fails": job.disable_enqueue_after_fails,
    }
    if schedule_dts is not None:
        entry["schedule_dts"] = schedule_dts
    return entry
