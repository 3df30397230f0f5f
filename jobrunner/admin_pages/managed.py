"""Who may use the admin pages, and on which projects.

Administrators (`is_admin`) manage everything. The members of a project's
admin groups (`auth_groups`) manage that project's job templates and jobs,
and nothing else. Which projects those are is reach's to say
(jobrunner.security.reach.managed_project_ids); these are its answers for a
request.
"""
from sqlalchemy import select

from ..models import Job, JobTemplate, Project
from ..security.reach import managed_project_ids as managed_ids_of


def managed_project_ids(request):
    """A SELECT of the ids of the projects the caller manages; None: all."""
    return managed_ids_of(request.identity)


def may_use_admin(request):
    """True for an administrator and for a member of any project's admin groups."""
    identity = request.identity
    if identity is None or identity.user is None:
        return False
    if identity.is_admin:
        return True
    return request.dbsession.scalar(managed_project_ids(request).limit(1)) is not None


def managed_projects(request):
    query = select(Project).order_by(Project.title, Project.id)
    ids = managed_project_ids(request)
    if ids is not None:
        query = query.where(Project.id.in_(ids))
    return request.dbsession.scalars(query).all()


def in_managed_projects(request, query, model):
    """Narrows a query of templates or jobs to the caller's projects."""
    ids = managed_project_ids(request)
    if ids is None:
        return query
    if model is JobTemplate:
        return query.where(JobTemplate.project_id.in_(ids))
    return query.where(
        Job.job_template_id.in_(select(JobTemplate.id).where(JobTemplate.project_id.in_(ids)))
    )


def may_edit_job(request, job):
    """Whether the caller may open the job's admin form ("Edit" on its page)."""
    if not request.may_use_admin:
        return False
    ids = managed_project_ids(request)
    if ids is None:
        return True
    return job.job_template.project_id in set(request.dbsession.scalars(ids))
