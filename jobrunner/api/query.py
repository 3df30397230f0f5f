"""Query-string filters, ordering and paging of list requests: `field__lookup=value`
on the allowed paths, `state` on runs, `project_id` on what hangs off a project,
`order_by` with ties broken by id, `limit`/`offset` with next/previous links."""
from urllib.parse import urlencode

from sqlalchemy import Boolean, DateTime, Integer, select
from sqlalchemy.types import Enum, String, Text

from ..models.meta import UTCDateTime
from ..queries.run_states import STATE_NAMES, StateError, in_state
from .fields import MAX_INTEGER, parse_datetime, parse_relation
from .resources import LOOKUPS, PROJECT_FILTER_TYPES, RESOURCE_TYPES

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1
# `wait` belongs to the enqueueable list (waiting.py), not to the filters.
RESERVED = {"limit", "offset", "order_by", "format", "wait"}


class QueryError(ValueError):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


def parse_integer(raw):
    value = int(raw)
    if abs(value) > MAX_INTEGER:
        raise ValueError("out of range")
    return value


def _convert(column, raw, field, tz, relation):
    if relation is not None:
        try:
            return parse_relation(raw, relation)
        except ValueError as exc:
            raise QueryError(field, str(exc))
    coltype = column.type
    try:
        if isinstance(coltype, Boolean):
            lowered = raw.lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError("expected true or false")
        if isinstance(coltype, Integer):
            return parse_integer(raw)
        if isinstance(coltype, (UTCDateTime, DateTime)):
            return parse_datetime(raw, tz)
        if isinstance(coltype, (Enum, String, Text)):
            if "\x00" in raw:
                # No stored text holds NUL, and PostgreSQL refuses it in a query.
                raise ValueError("NUL characters are not allowed")
            return raw
    except (ValueError, OverflowError) as exc:
        raise QueryError(field, f"Invalid value {raw!r}: {exc}.")
    return raw


RANGE_LOOKUPS = ("gt", "gte", "lt", "lte")


def _lookup(column, lookup, raw, field, tz, relation):
    if lookup in RANGE_LOOKUPS and isinstance(column.type, Boolean):
        # true > false means nothing to a reader, and PostgreSQL refuses it.
        raise QueryError(field, f"{lookup} does not apply to a true/false field.")
    if lookup == "isnull":
        lowered = raw.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise QueryError(field, "isnull takes true or false.")
        return column.is_(None) if lowered in ("true", "1") else column.is_not(None)
    if lookup == "in":
        # Repeated `field__in=a&field__in=b` arrive joined by commas: a union.
        values = [_convert(column, part, field, tz, relation) for part in raw.split(",") if part]
        return column.in_(values)
    value = _convert(column, raw, field, tz, relation)
    return {
        "exact": column.__eq__,
        "gt": column.__gt__,
        "gte": column.__ge__,
        "lt": column.__lt__,
        "lte": column.__le__,
    }[lookup](value)


def _filter_clause(resource_type, segments, lookup, raw, field, tz):
    name = segments[0]
    relation = resource_type.relations.get(name)
    if len(segments) == 1:
        if relation is not None:
            target, _rel, fk = relation
            column = getattr(resource_type.model, fk)
            return _lookup(column, lookup, raw, field, tz, target)
        column = getattr(resource_type.model, name)
        return _lookup(column, lookup, raw, field, tz, None)
    target, rel, _fk = relation
    inner = _filter_clause(RESOURCE_TYPES[target], segments[1:], lookup, raw, field, tz)
    return rel.has(inner)


def split_lookup(key):
    parts = key.split("__")
    if len(parts) > 1 and parts[-1] in LOOKUPS:
        return parts[:-1], parts[-1]
    return parts, "exact"


def merged_params(params):
    """The query's (key, value) pairs, a repeated `__in` key merged into one
    comma-separated value: Tastypie reads `a__in=1&a__in=2` as 1 or 2."""
    merged = {}
    pairs = []
    for key, raw in params.items():
        if key.endswith("__in") and key in merged:
            index = merged[key]
            pairs[index] = (key, pairs[index][1] + "," + raw)
            continue
        if key.endswith("__in"):
            merged[key] = len(pairs)
        pairs.append((key, raw))
    return pairs


def apply_filters(query, resource_type, params, tz, identity):
    """Adds a WHERE for each filter; anything not allowed is a QueryError."""
    for key, raw in merged_params(params):
        if key in RESERVED:
            continue
        segments, lookup = split_lookup(key)
        path = "__".join(segments)
        if path == "state" and resource_type.name == "run":
            if lookup != "exact":
                raise QueryError(key, "state takes one of: " + ", ".join(STATE_NAMES) + ".")
            query = apply_state(query, raw, identity)
            continue
        if path == "project_id" and resource_type.name in PROJECT_FILTER_TYPES:
            try:
                values = raw.split(",") if lookup == "in" else [raw]
                project_ids = [parse_integer(v) for v in values]
            except ValueError:
                raise QueryError(key, "project_id takes a project id.")
            if lookup not in ("exact", "in"):
                raise QueryError(key, "project_id takes exact or __in.")
            query = query.where(resource_type.reach.in_projects(project_ids))
            continue
        if path not in resource_type.filtering:
            raise QueryError(key, f"Filtering on {key!r} is not allowed.")
        query = query.where(_filter_clause(resource_type, segments, lookup, raw, key, tz))
    return query


def apply_state(query, state, identity):
    try:
        return in_state(query, state, identity)
    except StateError as exc:
        raise QueryError("state", str(exc))


def apply_ordering(query, resource_type, params):
    order_by = params.getall("order_by") if hasattr(params, "getall") else []
    clauses = []
    for item in order_by:
        for name in item.split(","):
            descending = name.startswith("-")
            name = name.lstrip("-")
            if name not in resource_type.ordering:
                raise QueryError("order_by", f"Ordering by {name!r} is not allowed.")
            relation = resource_type.relations.get(name)
            column = getattr(resource_type.model, relation[2] if relation else name)
            clauses.append(column.desc() if descending else column.asc())
    pk = resource_type.model.id
    # Ties are broken by id, in the direction of the last ordering.
    last_desc = bool(clauses) and order_by[-1].split(",")[-1].startswith("-")
    clauses.append(pk.desc() if last_desc else pk.asc())
    return query.order_by(*clauses)


def parse_paging(params):
    def number(name, default):
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise QueryError(name, f"{name} must be a whole number.")
        if value < 0:
            raise QueryError(name, f"{name} may not be negative.")
        # Beyond any list, and a number the database's LIMIT/OFFSET can bind.
        if value > MAX_OFFSET:
            raise QueryError(name, f"{name} may be at most {MAX_OFFSET}.")
        return value

    limit = number("limit", DEFAULT_LIMIT)
    if limit == 0 or limit > MAX_LIMIT:
        limit = MAX_LIMIT
    return limit, number("offset", 0)


def page_links(request, limit, offset, total):
    def link(new_offset):
        # A further page is read at once: it does not wait.
        params = [(k, v) for k, v in request.GET.items() if k not in ("limit", "offset", "wait")]
        params += [("limit", limit), ("offset", new_offset)]
        return request.path + "?" + urlencode(params)

    next_link = link(offset + limit) if offset + limit < total else None
    previous = link(max(offset - limit, 0)) if offset > 0 else None
    return next_link, previous


def base_query(resource_type, identity):
    return resource_type.reach.narrow(select(resource_type.model), identity)
