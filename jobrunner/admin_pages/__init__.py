"""Web administration (/admin/) and a job's whole history (/jobs/<id>/runs).

Server-rendered forms over the API's field definitions and write rules:
administrators manage users, groups, projects, pools, workers, templates and
jobs; the members of a project's admin groups manage that project's
templates and jobs.
"""
from ..contexts import JobFactory
from .managed import may_edit_job, may_use_admin
from .traversal import AdminRoot


def includeme(config):
    config.add_request_method(may_use_admin, "may_use_admin", reify=True)
    config.add_request_method(lambda request, job: may_edit_job(request, job), "may_edit_job")
    config.add_route("admin", "/admin/*traverse", factory=AdminRoot)
    # The job's page's tree: the job's reach decides who sees its history.
    config.add_route("job_runs", "/jobs/{id}/runs", factory=JobFactory, traverse="/{id}")
    config.scan(".views")
    config.scan(".errors")
    config.scan(".history")
