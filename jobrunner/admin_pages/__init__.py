"""Web administration (/admin/) and a job's whole history (/jobs/<id>/runs).

Server-rendered forms over the API's field definitions and write rules:
administrators manage users, groups, projects, pools, workers, templates and
jobs; the members of a project's admin groups manage that project's
templates and jobs.
"""
from .reach import may_edit_job, may_use_admin
from .traversal import AdminRoot


def includeme(config):
    config.add_request_method(may_use_admin, "may_use_admin", reify=True)
    config.add_request_method(lambda request, job: may_edit_job(request, job), "may_edit_job")
    config.add_route("admin", "/admin/*traverse", factory=AdminRoot)
    config.add_route("job_runs", "/jobs/{id}/runs")
    config.scan(".views")
    config.scan(".errors")
    config.scan(".history")
