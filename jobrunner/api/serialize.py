"""Model objects to the API's JSON (datetimes in UTC ISO 8601, relations as
resource URIs, address lists as lists), and back to comparable values."""
import enum
from datetime import datetime, time

from ..values import address_list
from .fields import format_datetime, format_time, resource_uri


def _plain(value):
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, time):
        return format_time(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


_addresses = address_list


def _excludes(obj):
    return [
        {"start_time": format_time(e.start_time), "end_time": format_time(e.end_time), "note": e.note}
        for e in obj.reschedule_excludes
    ]


def serialize(resource_type, obj, settings=None):
    """`settings` (jobrunner.settings.Settings) fills the fields that show
    a server setting; without it they are null."""
    data = {"id": obj.id, "resource_uri": resource_uri(resource_type.name, obj.id)}
    for node in resource_type.schema.children:
        kind = node.kind
        if kind == "column":
            data[node.name] = _plain(getattr(obj, node.attr))
        elif kind == "to_one":
            related_id = getattr(obj, node.attr)
            data[node.name] = resource_uri(node.typ.resource, related_id) if related_id else None
        elif kind == "to_many":
            data[node.name] = [resource_uri(node.typ.resource, o.id) for o in getattr(obj, node.attr)]
        elif kind == "run_log":
            log = obj.run_log
            data[node.name] = resource_uri("run_log", log.id) if log is not None else None
        elif kind == "addresses":
            data[node.name] = _addresses(getattr(obj, node.attr))
        elif kind == "excludes":
            data[node.name] = _excludes(obj)
        elif kind == "setting":
            data[node.name] = _setting(node, settings)
    return data


def _setting(node, settings):
    return getattr(settings, node.attr) if settings is not None else None


def current_value(node, obj, settings=None):
    """The stored value in the form deserialization produces, for comparisons."""
    kind = node.kind
    if kind == "write_only":
        return None
    if kind == "setting":
        return _setting(node, settings)
    if kind == "to_many":
        return [o.id for o in getattr(obj, node.attr)]
    if kind == "run_log":
        return obj.run_log.id if obj.run_log is not None else None
    if kind == "addresses":
        return _addresses(getattr(obj, node.attr))
    if kind == "excludes":
        return [
            {"start_time": e.start_time, "end_time": e.end_time, "note": e.note}
            for e in obj.reschedule_excludes
        ]
    value = getattr(obj, node.attr)
    if isinstance(value, enum.Enum):
        return value.value
    return value
