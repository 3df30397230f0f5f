"""HTML forms generated from colander field nodes.

Each node's type picks its widget; a form's typed values are kept as text so
that a form shown again with its errors holds exactly what was typed. What
the form posts is turned into the JSON values the API takes, and validated
by the API's own code (jobrunner/api/body.py).
"""
import re
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

import colander

from ..api.body import validate
from ..api.fields import (
    AddressList,
    URLList,
    Boolean,
    Choice,
    DateTime,
    ExcludeList,
    Integer,
    Text,
    ToMany,
    ToOne,
)
from ..api.serialize import current_value

# Fields that hold a script: a monospace editor.
CODE_FIELDS = ("body", "script_content_partial")
INTEGER_RE = re.compile(r"^\s*-?\d{1,12}\s*$")
EXCLUDE_PARTS = ("start_time", "end_time", "note")
LABELS = {"enqueue_is_enabled": "Enabled", "auth_groups": "Admin groups",
          "groups": "Groups", "is_admin": "Administrator", "is_active": "Active",
          "email": "E-mail", "first_run_at": "First run at"}


def widget_of(node):
    typ = node.typ
    if node.kind == "password":
        return "password"
    if isinstance(typ, Boolean):
        return "checkbox"
    if isinstance(typ, Integer):
        return "number"
    if isinstance(typ, (Choice, ToOne)):
        return "select"
    if isinstance(typ, ToMany):
        return "checkboxes"
    if isinstance(typ, DateTime):
        return "datetime"
    if isinstance(typ, (AddressList, URLList)):
        return "lines"
    if isinstance(typ, ExcludeList):
        return "excludes"
    if isinstance(typ, Text) and node.name in CODE_FIELDS:
        return "code"
    if isinstance(typ, Text) and typ.max_length is None:
        return "textarea"
    return "text"


def label_of(node):
    return LABELS.get(node.name) or node.name.replace("_", " ").capitalize()


@dataclass
class FormField:
    node: object
    widget: str
    label: str
    value: object
    error: str = ""
    options: list = ()

    @property
    def name(self):
        return self.node.name

    @property
    def help_text(self):
        return self.node.help_text

    @property
    def nullable(self):
        return self.node.nullable


# --- typed values -----------------------------------------------------------------


def _time_text(value):
    return value.strftime("%H:%M") if value is not None else ""


def stored_value(node, obj, tz):
    """The object's value of a field as the form shows it."""
    widget = widget_of(node)
    if obj is None or node.kind in ("password", "first_run_at"):
        if widget == "checkbox":
            return bool(node.default_value)
        if widget in ("number", "select") and node.default_value is not None:
            return str(node.default_value)
        return [] if widget in ("checkboxes", "excludes") else ""
    value = current_value(node, obj)
    if widget == "checkbox":
        return bool(value)
    if widget == "checkboxes":
        return [str(v) for v in value]
    if widget == "lines":
        return "\n".join(value)
    if widget == "excludes":
        return [{"start_time": _time_text(e["start_time"]), "end_time": _time_text(e["end_time"]),
                 "note": e["note"]} for e in value]
    if widget == "datetime":
        return value.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if value else ""
    return "" if value is None else str(value)


def posted_value(node, post):
    """A field's value as the browser sent it."""
    widget = widget_of(node)
    if widget == "checkbox":
        return post.get(node.name) == "true"
    if widget == "checkboxes":
        return post.getall(node.name)
    if widget == "excludes":
        columns = [post.getall(f"{node.name}.{part}") for part in EXCLUDE_PARTS]
        rows = [dict(zip(EXCLUDE_PARTS, values)) for values in zip(*columns)]
        return [row for row in rows if any(v.strip() for v in row.values())]
    return post.get(node.name, "")


def json_value(node, value):
    """The typed value as the API's JSON would carry it."""
    widget = widget_of(node)
    if widget == "number":
        if not value.strip():
            return None
        return int(value) if INTEGER_RE.match(value) else value
    if widget in ("select", "datetime"):
        return value or None
    if widget == "excludes":
        return [{"start_time": row["start_time"], "end_time": row["end_time"],
                 "note": row["note"]} for row in value]
    if widget in ("text", "textarea") and not value.strip() and getattr(node, "nullable", False):
        # An empty box of a field that may be null (a cron expression, a
        # time zone) means none.
        return None
    return value


class Form:
    """The fields of one object's form, their values and errors."""

    def __init__(self, nodes, request, obj, tz, choices=None):
        self.nodes = nodes
        self.request = request
        self.obj = obj
        self.tz = tz
        self.choices = choices or {}
        self.values = {node.name: stored_value(node, obj, tz) for node in nodes}
        self.errors = {}
        self.message = ""

    def read(self, post):
        self.values = {node.name: posted_value(node, post) for node in self.nodes}
        # A field the form did not send at all (a form older than a field,
        # a script posting some fields) is left out, as in a PATCH: its
        # default on a new object, unchanged on an edit. An unchecked box
        # sends nothing and means false.
        sent = {key.split(".", 1)[0] for key in post.keys()}
        self.left_out = {node.name for node in self.nodes
                         if node.name not in sent and widget_of(node) not in ("checkbox", "checkboxes")}

    def validated(self, tz=None):
        """The posted values, deserialized and checked by the API's types;
        raises APIError (400) naming each bad field."""
        left_out = getattr(self, "left_out", set())
        data = {node.name: json_value(node, self.values[node.name]) for node in self.nodes
                if node.name not in left_out}
        if self.obj is not None:
            data = {name: value for name, value in data.items() if name != "password" or value}
        schema = colander.SchemaNode(colander.Mapping(), *[n.clone() for n in self.nodes
                                                            if n.name not in left_out])
        resource = SimpleNamespace(name="", schema=schema)
        return validate(resource, data, tz or self.tz)

    def fields(self):
        result = []
        for node in self.nodes:
            widget = widget_of(node)
            options = []
            if isinstance(node.typ, Choice):
                options = [(c, c) for c in node.typ.choices]
            elif node.name in self.choices:
                options = [(str(value), label) for value, label in self.choices[node.name](self.request, self.obj)]
            result.append(FormField(node, widget, label_of(node), self.values[node.name],
                                    self.errors.get(node.name, ""), options))
        return result


def local_now(tz):
    return datetime.now(tz).strftime("%Y-%m-%dT%H:%M")
