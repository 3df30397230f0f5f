"""Thin views over the resources: list, detail, create, update, schema."""

from pyramid.view import exception_view_config, view_config
from sqlalchemy import func, select

from ..errors import json_error
from ..models import Run
from ..queries.run_states import ENQUEUEABLE
from ..security.scope import worker_may_write
from . import query as q
from . import waiting
from .body import parse_json_body, validate
from .errors import APIError
from .fields import describe, resource_uri
from .resources import LOOKUPS, RESOURCE_TYPES
from .serialize import serialize
from .traversal import ApiV1, Collection, Item
from .writes import CREATE, UPDATE


def timezone_of(request):
    return request.registry.jobrunner_settings.tz


def settings_of(request):
    return request.registry.jobrunner_settings


def json_response(request, body, status=200, headers=None):
    response = request.response
    response.status = status
    response.content_type = "application/json"
    response.json_body = body
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def method_not_allowed(request, allowed):
    raise APIError(
        405,
        f"{request.method} is not allowed here.",
        headers={"Allow": ", ".join(m.upper() for m in allowed)},
    )


@view_config(context=ApiV1, renderer="json")
def api_index(context, request):
    if request.method not in ("GET", "HEAD"):
        method_not_allowed(request, ("get",))
    return {
        name: {"list_endpoint": f"/api/v1/{name}/", "schema": f"/api/v1/{name}/schema/"}
        for name in RESOURCE_TYPES
    }


@view_config(context=Collection, name="schema", renderer="json")
def schema_view(context, request):
    if request.method not in ("GET", "HEAD"):
        method_not_allowed(request, ("get",))
    rt = context.resource_type
    filtering = {name: list(LOOKUPS) for name in rt.filtering}
    if rt.name == "run":
        filtering["state"] = ["exact"]
    if rt.name in q.PROJECT_FILTER_TYPES:
        filtering["project_id"] = ["exact", "in"]
    fields = {
        "id": {"type": "integer", "nullable": False, "blank": False, "readonly": True,
               "help_text": "Unique id.", "default": None, "unique": True},
        "resource_uri": {"type": "string", "nullable": False, "blank": False, "readonly": True,
                         "help_text": "The object's URI.", "default": None, "unique": True},
    }
    fields.update({node.name: describe(node) for node in rt.schema.children})
    return {
        "allowed_list_http_methods": list(rt.list_methods),
        "allowed_detail_http_methods": list(rt.detail_methods),
        "default_format": "application/json",
        "default_limit": q.DEFAULT_LIMIT,
        "fields": fields,
        "filtering": filtering,
        "ordering": list(rt.ordering),
    }


@view_config(context=Collection)
def collection_view(context, request):
    rt = context.resource_type
    method = request.method.lower()
    if method in ("get", "head") and "get" in rt.list_methods:
        return list_objects(context, request)
    if method == "post" and "post" in rt.list_methods:
        return create_object(context, request)
    method_not_allowed(request, rt.list_methods)


@view_config(context=Item)
def item_view(context, request):
    rt = context.resource_type
    method = request.method.lower()
    if method in ("get", "head"):
        return json_response(request, serialize(rt, context.obj, settings_of(request)))
    if method in ("put", "patch") and method in rt.detail_methods:
        return update_object(context, request)
    method_not_allowed(request, rt.detail_methods)


def list_objects(context, request):
    params = request.GET
    enqueueable = context.resource_type.name == "run" and params.get("state") == ENQUEUEABLE
    wait = waiting.requested_wait(params, enqueueable)
    if wait is not None:
        # The query is checked (a 400) before anyone waits for it.
        body = waiting.list_waiting(request, wait, lambda: list_page(context, request))
    else:
        body = list_page(context, request)
    return json_response(request, body)


def list_page(context, request):
    rt = context.resource_type
    identity = request.identity
    params = request.GET
    try:
        limit, offset = q.parse_paging(params)
        query = q.base_query(rt, identity)
        query = q.apply_filters(query, rt, params, timezone_of(request), identity)
        if rt.name == "run" and params.get("state") == ENQUEUEABLE and "order_by" not in params:
            query = query.order_by(Run.schedule_dts, Run.id)
        else:
            query = q.apply_ordering(query, rt, params)
    except q.QueryError as exc:
        raise APIError(400, exc.message, {exc.field: exc.message})
    dbsession = request.dbsession
    # One row more than the page: when it does not come, the page ends the
    # list and its total needs no COUNT (a worker's list mostly fits).
    rows = dbsession.scalars(
        query.options(*rt.load_options()).limit(limit + 1).offset(offset)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if not more and (rows or offset == 0):
        total = offset + len(rows)
    else:
        # Counting ids alone lets the database count from an index.
        ids = query.order_by(None).with_only_columns(rt.model.id, maintain_column_froms=True)
        total = dbsession.scalar(select(func.count()).select_from(ids.subquery()))
    next_link, previous = q.page_links(request, limit, offset, total)
    return {
        "meta": {
            "limit": limit,
            "offset": offset,
            "total_count": total,
            "next": next_link,
            "previous": previous,
        },
        "objects": [serialize(rt, obj, settings_of(request)) for obj in rows],
    }


def check_write_scope(request, resource_name, write):
    identity = request.identity
    if identity is not None and identity.worker is not None:
        if not worker_may_write(request.registry.jobrunner_settings.worker_write_scope, resource_name, write):
            raise APIError(403, "Workers may not write this here (jobrunner.worker_write_scope).")


def create_object(context, request):
    rt = context.resource_type
    check_write_scope(request, rt.name, "create")
    values = validate(rt, parse_json_body(request), timezone_of(request))
    obj = CREATE[rt.name](request, context, values)
    request.dbsession.flush()
    uri = resource_uri(rt.name, obj.id)
    return json_response(request, serialize(rt, obj, settings_of(request)), status=201, headers={"Location": request.host_url + uri})


def update_object(context, request):
    rt = context.resource_type
    check_write_scope(request, rt.name, "update")
    obj = context.obj
    values = validate(rt, parse_json_body(request), timezone_of(request), obj=obj,
                      settings=settings_of(request))
    UPDATE[rt.name](request, context, values)
    request.dbsession.flush()
    # No reload: the write functions leave the object as written (an
    # UPDATE of their own returns its row).
    return json_response(request, {**serialize(rt, obj, settings_of(request)), **context.answer_extra},
                         status=202)


# --- errors ------------------------------------------------------------------


@exception_view_config(APIError)
def api_error(exc, request):
    return json_error(request, exc.status, exc.message, exc.errors, exc.headers)
