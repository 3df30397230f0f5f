"""/dashboard/overview.json: the runs of the dashboard's first page by
state, in one read (the REST list would need a request per state and one
more for the job titles), each run in its REST form."""
from pyramid.view import forbidden_view_config, view_config

from ..errors import json_error
from ..models import utcnow
from ..queries.overview import runs_overview
from ..queries.run_facts import add_run_facts
from ..root import object_id
from ..security.permissions import Permission
from .resources import RESOURCE_TYPES
from .serialize import serialize

RUN = RESOURCE_TYPES["run"]


@view_config(route_name="dashboard_overview", request_method="GET", renderer="json",
             permission=Permission.VIEW)
def overview_json(request):
    raw_project = request.GET.get("project", "")
    project_id = None
    if raw_project not in ("", "all"):
        project_id = object_id(raw_project)
        if project_id is None:
            message = "project takes a project id or 'all'."
            return json_error(request, 400, message, {"project": message})
    title = request.GET.get("title", "").strip()[:255] or None
    if title and "\x00" in title:
        # PostgreSQL refuses NUL in a string, and no title holds one.
        message = "title may not contain NUL characters."
        return json_error(request, 400, message, {"title": message})
    sections, jobs, workers = runs_overview(
        request.dbsession, request.identity, project_id, title, RUN.load_options()
    )
    request.response.headers["Cache-Control"] = "no-store"
    described = {}
    for state, section in sections.items():
        objects = [_describe(run, jobs, workers) for run in section["runs"]]
        add_run_facts(request.dbsession, objects)  # killed, job_enabled, held
        described[state] = {"total": section["total"], "objects": objects}
    return {"sections": described, "now": utcnow().isoformat()}


def _describe(run, jobs, workers):
    """The run's REST form plus job_title, job_id, project_id and worker_title."""
    data = serialize(RUN, run)
    title, project_id = jobs.get(run.job_id, ("", None))
    data.update(
        job_id=run.job_id,
        job_title=title,
        project_id=project_id,
        worker_title=workers.get(run.worker_id) if run.worker_id else None,
    )
    return data


@forbidden_view_config(route_name="dashboard_overview")
def overview_forbidden(exc, request):
    # A script asks for this, not a person: an answer it can read, no redirect.
    if request.identity is None:
        return json_error(request, 401, "Authentication required.")
    return json_error(request, 403, "You may not do that.")
