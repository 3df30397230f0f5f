"""Thin views: health, metrics, and the audit log and webhook pages."""
import hmac

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config
from sqlalchemy import exists, func, select
from webob.multidict import MultiDict

from .. import audit
from ..api import query as q
from ..api.resources import RESOURCE_TYPES
from ..security.reach import managed_project_ids
from ..api.views import timezone_of
from ..models import WebhookDelivery
from .metrics import REGISTRY_KEY

TEMPLATES = "jobrunner:observability/templates/"
PAGE_SIZE = 50
AUDIT_FILTERS = ("actor", "action", "object_type", "object_id", "dts__gte", "dts__lte")


@view_config(route_name="healthz", request_method=("GET", "HEAD"), permission=NO_PERMISSION_REQUIRED)
def healthz(request):
    health = request.registry["jobrunner.health"]
    response = request.response
    response.content_type = "application/json"
    response.headers["Cache-Control"] = "no-store"
    if health.answers():
        response.json_body = {"status": "ok"}
    else:
        response.status = 503
        response.json_body = {"status": "unavailable"}
    return response


@view_config(route_name="metrics", request_method=("GET", "HEAD"), permission=NO_PERMISSION_REQUIRED)
def metrics(request):
    token = request.registry.jobrunner_settings.metrics_token
    if not token:
        raise HTTPNotFound()
    header = request.headers.get("Authorization") or ""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    ):
        response = request.response
        response.status = 401
        response.content_type = "application/json"
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        response.json_body = {"error": "A valid bearer token is required.", "errors": {}}
        return response
    body = generate_latest(request.registry[REGISTRY_KEY])
    response = Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response


# --- pages -------------------------------------------------------------------------


def _refuse(request):
    """Login for an anonymous visitor, a 403 page for a logged-in one."""
    if request.identity is None:
        return HTTPSeeOther(location=request.route_path("login", _query={"next": request.path_qs}))
    response = render_to_response(TEMPLATES + "forbidden.jinja2", _frame(request, "forbidden"),
                                  request=request)
    response.status = 403
    return response


def _frame(request, page, **values):
    identity = request.identity
    values.update(page=page, username=identity.user.username if identity and identity.user else "",
                  is_admin=bool(identity and identity.is_admin))
    return values


def _page_number(params):
    raw = params.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 7 and int(raw) > 0 else 1


def _may_read_audit(request):
    identity = request.identity
    if identity is None or identity.user is None:
        return False
    project_ids = managed_project_ids(identity)
    return project_ids is None or bool(request.dbsession.scalar(select(exists(project_ids))))


@view_config(route_name="admin_audit", request_method="GET", permission=NO_PERMISSION_REQUIRED)
def audit_page(request):
    if not _may_read_audit(request):
        return _refuse(request)
    rt = RESOURCE_TYPES["audit_event"]
    values = {name: request.GET.get(name, "").strip() for name in AUDIT_FILTERS}
    filters = MultiDict((name, value) for name, value in values.items() if value)
    page = _page_number(request.GET)
    error = None
    events, total = [], 0
    try:
        query = q.apply_filters(q.base_query(rt, request.identity), rt, filters,
                                timezone_of(request), request.identity)
    except q.QueryError as exc:
        error = f"{exc.field}: {exc.message}"
    else:
        dbsession = request.dbsession
        total = dbsession.scalar(select(func.count()).select_from(query.subquery()))
        events = dbsession.scalars(
            query.order_by(rt.model.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
        ).all()
    response = render_to_response(
        TEMPLATES + "audit.jinja2",
        _frame(request, "audit", events=events, total=total, filters=values, error=error,
               actions=audit.ACTIONS, object_types=sorted({a.object_type for a in audit.AUDITED.values()}
                                                         | {"run"}),
               pager=_pager(request, page, total), tz=timezone_of(request)),
        request=request,
    )
    if error:
        response.status = 400
    response.headers["Cache-Control"] = "no-store"
    return response


@view_config(route_name="admin_webhooks", request_method="GET", permission=NO_PERMISSION_REQUIRED)
def webhooks_page(request):
    # Deliveries carry the URLs and events of every project: admins only.
    if request.identity is None or not request.identity.is_admin:
        return _refuse(request)
    page = _page_number(request.GET)
    dbsession = request.dbsession
    total = dbsession.scalar(select(func.count(WebhookDelivery.id)))
    deliveries = dbsession.scalars(
        select(WebhookDelivery).order_by(WebhookDelivery.id.desc())
        .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    response = render_to_response(
        TEMPLATES + "webhooks.jinja2",
        _frame(request, "webhooks", deliveries=deliveries, total=total,
               pager=_pager(request, page, total), tz=timezone_of(request)),
        request=request,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _pager(request, page, total):
    def link(number):
        params = [(k, v) for k, v in request.GET.items() if k != "page" and v]
        return request.path + "?" + "&".join(
            f"{k}={v}" for k, v in [*_quoted(params), ("page", str(number))]
        )

    last = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    return {
        "page": page,
        "last": last,
        "previous": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < last else None,
    }


def _quoted(params):
    from urllib.parse import quote

    return [(quote(k, safe=""), quote(v, safe="")) for k, v in params]
