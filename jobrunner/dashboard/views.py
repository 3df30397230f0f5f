"""Page views: each renders a frame; the page's script fills it from the API.

A page needs only what decides its shape: which projects the user sees and
whether he may act (no buttons for who may not). Objects out of reach are a
404, exactly as if they did not exist.
"""
from pyramid.renderers import render_to_response
from pyramid.view import forbidden_view_config, notfound_view_config, view_config
from sqlalchemy import select

from ..errors import login_redirect
from ..models import Project
from ..security.permissions import Permission
from ..security.reach import PROJECT, Reach
from ..contexts import Missing, ObjectContext

TEMPLATES = "jobrunner:dashboard/templates/"
PROJECT_REACH = Reach(PROJECT)


def display_name(identity):
    if identity is None:
        return ""
    if identity.user is not None:
        return identity.user.username
    return identity.worker.title


def visible_projects(request):
    """(id, title) of the projects the caller sees, by title."""
    query = PROJECT_REACH.narrow(select(Project), request.identity)
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


@view_config(route_name="job", context=ObjectContext, request_method="GET",
             renderer=TEMPLATES + "job.jinja2", permission=Permission.VIEW)
def job_page(context, request):
    job = context.obj
    return frame(
        request,
        "job",
        job=job,
        project=job.job_template.project,
        can_schedule=request.has_permission(Permission.SCHEDULE_RUN, context),
        can_toggle=request.has_permission(Permission.TOGGLE_JOB, context),
    )


@view_config(route_name="run", context=ObjectContext, request_method="GET",
             renderer=TEMPLATES + "run.jinja2", permission=Permission.VIEW)
def run_page(context, request):
    run = context.obj
    job = run.job
    return frame(
        request,
        "run",
        run=run,
        job=job,
        project=job.job_template.project,
        can_kill=request.has_permission(Permission.KILL_RUN, context),
    )


@view_config(route_name="job", context=Missing, request_method="GET", permission=Permission.VIEW)
@view_config(route_name="run", context=Missing, request_method="GET", permission=Permission.VIEW)
def missing_page(request):
    return not_found_page(request)


@forbidden_view_config(route_name="job")
@forbidden_view_config(route_name="run")
def out_of_reach(exc, request):
    # Out of reach looks the same as not there, once the visitor is logged in.
    if request.identity is None:
        return login_redirect(request)
    return not_found_page(request)


@notfound_view_config(path_info=r"^/(?!api(/|$))")
def html_not_found(exc, request):
    # The API answers its own 404s in JSON; a person gets a page.
    return not_found_page(request)
