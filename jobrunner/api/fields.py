"""Colander types for JSON input, and the field nodes that describe resources.

Every node carries what the `schema/` view and the serializer need:
`readonly`, `nullable`, `unique`, `help_text`, `kind` and `attr`.
"""
import re

import colander

from ..jobs import parse_interval_type
from ..values import format_datetime, parse_addresses, parse_datetime, parse_time_of_day, parse_webhook_urls

__all__ = ["format_datetime", "parse_datetime"]

URI_RE = re.compile(r"^/api/v1/(?P<resource>[a-z_]+)/(?P<id>\d+)/?$")
# The range of the database's integer columns (ids included): a larger number
# could not even be bound to a query on SQLite.
MAX_INTEGER = 2**31 - 1


def format_time(value):
    return value.isoformat() if value is not None else None


def resource_uri(resource, obj_id):
    return f"/api/v1/{resource}/{obj_id}/"


def parse_relation(value, resource):
    """A URI of `resource` or a bare id; returns the id."""
    if isinstance(value, bool):
        raise ValueError(f"expected a {resource} URI or id")
    if isinstance(value, int):
        return _in_range(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return _in_range(int(text))
        match = URI_RE.match(text)
        if match and match["resource"] == resource:
            return _in_range(int(match["id"]))
    raise ValueError(f"expected a {resource} URI or id")


def _in_range(number):
    if abs(number) > MAX_INTEGER:
        raise ValueError("Out of range.")
    return number


class NullableType(colander.SchemaType):
    """JSON null is None when the node is nullable, else an error."""

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return colander.null
        if cstruct is None:
            if getattr(node, "nullable", False):
                return None
            raise colander.Invalid(node, "This field may not be null.")
        try:
            return self.convert(node, cstruct)
        except (ValueError, TypeError) as exc:
            raise colander.Invalid(node, str(exc) or "Invalid value.")


class Integer(NullableType):
    name = "integer"

    def convert(self, node, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("Expected an integer.")
        return _in_range(value)


class Number(NullableType):
    name = "number"

    def convert(self, node, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("Expected a number.")
        return float(value)


class Text(NullableType):
    name = "string"

    def __init__(self, max_length=None, single_line=False):
        self.max_length = max_length
        self.single_line = single_line

    def convert(self, node, value):
        if not isinstance(value, str):
            raise ValueError("Expected a string.")
        if "\x00" in value:
            raise ValueError("NUL characters are not allowed.")
        if self.single_line and ("\r" in value or "\n" in value):
            # Titles go into mail subjects and log lines: a line break there
            # would let a value forge a header or a log entry.
            raise ValueError("Line breaks are not allowed.")
        if self.max_length and len(value) > self.max_length:
            raise ValueError(f"At most {self.max_length} characters.")
        return value


class Boolean(NullableType):
    name = "boolean"

    def convert(self, node, value):
        if not isinstance(value, bool):
            raise ValueError("Expected true or false.")
        return value


class DateTime(NullableType):
    name = "datetime"

    def convert(self, node, value):
        if not isinstance(value, str):
            raise ValueError("Expected an ISO 8601 date and time.")
        try:
            return parse_datetime(value, node.bindings["tz"])
        except ValueError:
            raise ValueError("Expected an ISO 8601 date and time.")


class Choice(NullableType):
    name = "string"

    def __init__(self, choices):
        self.choices = tuple(choices)

    def convert(self, node, value):
        if value not in self.choices:
            raise ValueError("One of: " + ", ".join(self.choices) + ".")
        return value


class ToOne(NullableType):
    name = "related"
    related_type = "to_one"

    def __init__(self, resource):
        self.resource = resource

    def convert(self, node, value):
        return parse_relation(value, self.resource)


class ToMany(NullableType):
    name = "related"
    related_type = "to_many"

    def __init__(self, resource):
        self.resource = resource

    def convert(self, node, value):
        if not isinstance(value, list):
            raise ValueError("Expected a list.")
        return [parse_relation(item, self.resource) for item in value]


class IntervalTypeChoice(Choice):
    """An interval type in either case (`day` or `DAY`), stored upper-case."""

    def convert(self, node, value):
        try:
            interval_type = parse_interval_type(value)
        except ValueError:
            raise ValueError("One of: " + ", ".join(self.choices) + ".")
        return interval_type.value


class LineList(NullableType):
    """A JSON list, or one item per line, each checked by `parse`."""

    name = "list"
    parse = None

    def convert(self, node, value):
        if isinstance(value, str):
            value = value.splitlines()
        try:
            return type(self).parse(value)
        except ValueError as exc:
            raise ValueError(str(exc).capitalize() + ".")


class AddressList(LineList):
    """E-mail addresses: a JSON list, or one address per line."""

    parse = staticmethod(parse_addresses)


class URLList(LineList):
    """Webhook URLs (http or https): a JSON list, or one URL per line."""

    parse = staticmethod(parse_webhook_urls)


class JSONValue(NullableType):
    """A JSON object, shown as it is stored (read-only fields only)."""

    name = "dict"

    def convert(self, node, value):
        if not isinstance(value, dict):
            raise ValueError("Expected a JSON object.")
        return value


class ExcludeList(NullableType):
    name = "list"

    def convert(self, node, value):
        if not isinstance(value, list):
            raise ValueError("Expected a list of {start_time, end_time, note}.")
        excludes = []
        for item in value:
            if not isinstance(item, dict) or set(item) - {"start_time", "end_time", "note", "id"}:
                raise ValueError("Each exclude is {start_time, end_time, note}.")
            try:
                start = parse_time_of_day(item["start_time"])
                end = parse_time_of_day(item["end_time"])
            except (KeyError, ValueError, TypeError):
                raise ValueError("start_time and end_time are times such as 22:00.")
            note = item.get("note") or ""
            # The column holds 255 characters; PostgreSQL refuses NUL.
            if not isinstance(note, str) or len(note) > 255 or "\x00" in note:
                raise ValueError("note is a string of at most 255 characters.")
            excludes.append({"start_time": start, "end_time": end, "note": note})
        return excludes


def field(type_, name, *, readonly=False, nullable=False, required=False, unique=False,
          help_text="", default=None, attr=None, kind="column", blank=None):
    """A schema node; `missing` makes it optional on create."""
    kwargs = {}
    if not required:
        kwargs["missing"] = colander.drop
    return colander.SchemaNode(
        type_,
        name=name,
        readonly=readonly,
        nullable=nullable,
        unique=unique,
        help_text=help_text,
        default_value=default,
        attr=attr or name,
        kind=kind,
        required_on_create=required,
        blank=blank if blank is not None else isinstance(type_, Text),
        **kwargs,
    )


def describe(node):
    """A field's entry in `schema/`."""
    typ = node.typ
    entry = {
        "type": typ.name,
        "nullable": node.nullable,
        "blank": node.blank,
        "readonly": node.readonly,
        "help_text": node.help_text,
        "default": node.default_value,
        "unique": node.unique,
    }
    if isinstance(typ, (ToOne, ToMany)):
        entry["related_type"] = typ.related_type
        entry["related_resource"] = typ.resource
    return entry
