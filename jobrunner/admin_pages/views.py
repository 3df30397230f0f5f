"""Thin views: a form in, a change through `changes`, a redirect out."""
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.view import view_config

from ..admin import new_worker_ini
from ..api.errors import APIError
from ..domain_errors import DomainError
from ..dashboard.views import frame
from ..security.permissions import Permission
from . import changes
from .errors import status_of
from .forms import Form
from .specs import RESOURCES
from .traversal import AdminCollection, AdminItem, AdminRoot

TEMPLATES = "jobrunner:admin_pages/templates/"
CREDENTIALS_KEY = "admin.worker_credentials"


def settings_zone(request):
    return request.registry.jobrunner_settings.tz


def job_zone(request, form):
    """first_run_at is local time in the job's time zone, where it has one."""
    name = form.values.get("timezone") if "timezone" in form.values else None
    if not name and form.obj is not None:
        name = getattr(form.obj, "timezone", None)
    try:
        return ZoneInfo(name) if name else settings_zone(request)
    except (ZoneInfoNotFoundError, ValueError):
        return settings_zone(request)


def page(request, template, status=200, **values):
    values.setdefault("resources", visible_resources(request))
    response = render_to_response(TEMPLATES + template, frame(request, "admin", **values),
                                  request=request)
    response.status = status
    response.headers["Cache-Control"] = "no-store"
    return response


def visible_resources(request):
    is_admin = request.identity.is_admin
    return [r for r in RESOURCES.values() if is_admin or not r.admin_only]


def list_path(request, resource):
    return f"/admin/{resource.name}/"


def item_path(resource, obj, view="edit"):
    return f"/admin/{resource.name}/{obj.id}/{view}"


@view_config(route_name="admin", context=AdminRoot, request_method="GET", permission=Permission.MANAGE)
def admin_index(context, request):
    return page(request, "index.jinja2")


@view_config(route_name="admin", context=AdminCollection, request_method="GET", permission=Permission.MANAGE)
def object_list(context, request):
    query = context.query().options(*context.resource.list_loads())
    objects = request.dbsession.scalars(query).all()
    return page(request, "list.jinja2", resource=context.resource, objects=objects,
                flashes=request.session.pop_flash("admin"))


@view_config(route_name="admin", context=AdminItem, request_method="GET", permission=Permission.MANAGE)
def object_page(context, request):
    return HTTPSeeOther(location=item_path(context.resource, context.obj))


def form_for(context, request, obj):
    resource = context.resource
    return Form(resource.nodes(), request, obj, settings_zone(request), resource.choices)


def show_form(request, resource, form, status=200, obj=None):
    credentials = None
    if obj is not None and resource.name == "worker":
        credentials = request.session.pop(CREDENTIALS_KEY, None)
        if credentials is not None and credentials.get("id") != obj.id:
            credentials = None
        if credentials is not None:
            credentials = dict(credentials, api_key=obj.api_key,
                               ini=ini_for(request, obj, credentials["secret"]))
    zones = sorted(available_timezones()) if "timezone" in form.values else []
    return page(request, "form.jinja2", status=status, resource=resource, form=form, obj=obj,
                credentials=credentials, zones=zones)


def submit(context, request, obj):
    """Validates and saves a posted form: 303 on success, the form again with
    status 400 and every error next to its field otherwise."""
    resource = context.resource
    form = form_for(context, request, obj)
    form.read(request.POST)
    # A savepoint: a form refused half-way leaves no change behind, not even
    # in the session that renders the form again.
    savepoint = request.dbsession.begin_nested()
    try:
        values = form.validated(job_zone(request, form) if resource.name == "job" else None)
        saved, secret = changes.save(request, resource, obj, values)
    except (APIError, DomainError) as exc:
        savepoint.rollback()
        if status_of(exc) != 400:
            raise
        form.errors = exc.errors
        form.message = exc.message
        return show_form(request, resource, form, status=400, obj=obj)
    savepoint.commit()
    if secret is not None:
        remember_credentials(request, saved, secret)
        return HTTPSeeOther(location=item_path(resource, saved))
    request.session.flash(f"Saved {resource.label.lower()} {resource.title_of(saved)!r}.", "admin")
    return HTTPSeeOther(location=list_path(request, resource))


@view_config(route_name="admin", context=AdminCollection, name="new", request_method="GET", permission=Permission.MANAGE)
def new_form(context, request):
    return show_form(request, context.resource, form_for(context, request, None))


@view_config(route_name="admin", context=AdminCollection, name="new", request_method="POST", permission=Permission.MANAGE)
def create(context, request):
    return submit(context, request, None)


@view_config(route_name="admin", context=AdminItem, name="edit", request_method="GET", permission=Permission.MANAGE)
def edit_form(context, request):
    return show_form(request, context.resource, form_for(context, request, context.obj), obj=context.obj)


@view_config(route_name="admin", context=AdminItem, name="edit", request_method="POST", permission=Permission.MANAGE)
def update(context, request):
    return submit(context, request, context.obj)


@view_config(route_name="admin", context=AdminItem, name="delete", request_method="GET", permission=Permission.MANAGE)
def delete_confirmation(context, request):
    reason = changes.refusal(request, context.resource, context.obj)
    return page(request, "delete.jinja2", resource=context.resource, obj=context.obj, reason=reason)


@view_config(route_name="admin", context=AdminItem, name="delete", request_method="POST", permission=Permission.MANAGE)
def delete(context, request):
    resource, obj = context.resource, context.obj
    title = resource.title_of(obj)
    try:
        changes.remove(request, resource, obj)
    except (APIError, DomainError) as exc:
        if status_of(exc) != 409:
            raise
        return page(request, "delete.jinja2", status=409, resource=resource, obj=obj, reason=exc.message)
    request.session.flash(f"Deleted {resource.label.lower()} {title!r}.", "admin")
    return HTTPSeeOther(location=list_path(request, resource))


# --- a worker's credentials ------------------------------------------------------------


def remember_credentials(request, worker, secret):
    """The secret goes to the next page in the session, to be shown once:
    the page after the redirect pops it, and a reload shows it no more."""
    request.session[CREDENTIALS_KEY] = {"id": worker.id, "secret": secret}


@view_config(route_name="admin", context=AdminItem, name="rotate_secret", request_method="POST", permission=Permission.MANAGE)
def rotate_secret(context, request):
    if context.resource.name != "worker":
        return HTTPSeeOther(location=item_path(context.resource, context.obj))
    secret = changes.rotate_secret(request, context.obj)
    remember_credentials(request, context.obj, secret)
    return HTTPSeeOther(location=item_path(context.resource, context.obj))


def ini_for(request, worker, secret):
    """The worker's ini, as `jobrunner-admin add-worker` writes it."""
    return new_worker_ini(request.registry.jobrunner_settings, worker.api_key, secret,
                          worker.concurrent_jobs, worker.title)
