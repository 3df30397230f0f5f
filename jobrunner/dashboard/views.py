"""Page views: each renders a frame; the page's script fills it from the API.

A page needs only what decides its shape: which projects the user sees and
whether he may act (no buttons for who may not). Objects out of reach are a
404, exactly as if they did not exist.
"""
from pyramid.renderers import render_to_response
from pyramid.view import forbidden_view_config, notfound_view_config, view_config
from sqlalchemy import select

from ..api.resources import RESOURCE_TYPES
from ..api.traversal import item_for
from ..models import Job, Project, Run, utcnow
from ..security.permissions import Permission
from .overview import runs_overview

TEMPLATES = "jobrunner:dashboard/templates/"
MAX_ID_DIGITS = 18


def display_name(identity):
    if identity is None:
        return ""
    if identity.user is not None:
        return identity.user.username
    return identity.worker.title


def visible_projects(request):
    """(id, title) of the projects the caller sees, by title."""
    query = RESOURCE_TYPES["project"].narrow(select(Project), request.identity)
    projects = request.dbsession.scalars(query.order_by(Project.title, Project.id)).all()
    return [{"id": p.id, "title": p.title} for p in projects]


def frame(request, page, **values):
    values.update(
        page=page,
        username=display_name(request.identity),
        is_admin=bool(request.identity and request.identity.is_admin),
        projects=visible_projects(request),
    )
    return values


def object_in_reach(request, resource_name, model):
    """The object named by the URL's id, or None when there is none or the
    caller may not see it (the two look the same from outside).

    Reach is the SQL narrowing the API's lists use: an item's ACL alone
    would let the collection's "authenticated may view" through.
    """
    raw = request.matchdict["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_ID_DIGITS:
        return None
    query = RESOURCE_TYPES[resource_name].narrow(select(model).where(model.id == int(raw)), request.identity)
    return request.dbsession.scalar(query)


def not_found_page(request):
    response = render_to_response(
        TEMPLATES + "not_found.jinja2",
        {"page": "not_found", "username": display_name(request.identity), "projects": []},
        request=request,
    )
    response.status = 404
    return response


@view_config(route_name="home", request_method="GET", renderer=TEMPLATES + "overview.jinja2",
             permission=Permission.VIEW)
def overview_page(request):
    return frame(request, "overview")


@view_config(route_name="jobs", request_method="GET", renderer=TEMPLATES + "jobs.jinja2",
             permission=Permission.VIEW)
def jobs_page(request):
    return frame(request, "jobs")


@view_config(route_name="job", request_method="GET", renderer=TEMPLATES + "job.jinja2",
             permission=Permission.VIEW)
def job_page(request):
    job = object_in_reach(request, "job", Job)
    if job is None:
        return not_found_page(request)
    item = item_for(request, "job", job)
    project = job.job_template.project
    return frame(
        request,
        "job",
        job=job,
        project=project,
        can_schedule=request.has_permission(Permission.SCHEDULE_RUN, item),
        can_toggle=request.has_permission(Permission.TOGGLE_JOB, item),
    )


@view_config(route_name="run", request_method="GET", renderer=TEMPLATES + "run.jinja2",
             permission=Permission.VIEW)
def run_page(request):
    run = object_in_reach(request, "run", Run)
    if run is None:
        return not_found_page(request)
    job = run.job
    return frame(
        request,
        "run",
        run=run,
        job=job,
        project=job.job_template.project,
        can_kill=request.has_permission(Permission.KILL_RUN, item_for(request, "run", run)),
    )


@view_config(route_name="dashboard_overview", request_method="GET", renderer="json",
             permission=Permission.VIEW)
def overview_json(request):
    """The runs of the overview by state, in one read (the REST API would
    need a request per state and one more for the job titles)."""
    raw_project = request.GET.get("project", "")
    project_id = None
    if raw_project not in ("", "all"):
        if not (raw_project.isascii() and raw_project.isdigit()) or len(raw_project) > MAX_ID_DIGITS:
            return json_error(request, 400, "project takes a project id or 'all'.", "project")
        project_id = int(raw_project)
    title = request.GET.get("title", "").strip()[:255] or None
    if title and "\x00" in title:
        # PostgreSQL refuses NUL in a string, and no title holds one.
        return json_error(request, 400, "title may not contain NUL characters.", "title")
    data = runs_overview(request.dbsession, request.identity, project_id, title)
    data["now"] = utcnow().isoformat()
    request.response.headers["Cache-Control"] = "no-store"
    return data


def json_error(request, status, message, field=None):
    response = request.response
    response.status = status
    response.content_type = "application/json"
    response.json_body = {"error": message, "errors": {field: message} if field else {}}
    return response


@forbidden_view_config(route_name="dashboard_overview")
def overview_forbidden(exc, request):
    # A script asks for this, not a person: an answer it can read, no redirect.
    if request.identity is None:
        return json_error(request, 401, "Authentication required.")
    return json_error(request, 403, "You may not do that.")


@notfound_view_config(path_info=r"^/(?!api(/|$))")
def html_not_found(exc, request):
    # The API answers its own 404s in JSON; a person gets a page.
    return not_found_page(request)
