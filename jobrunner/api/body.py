"""Reading and validating request bodies against a resource's colander schema."""
import json

import colander

from .errors import bad_request
from .fields import resource_uri
from .serialize import current_value

IGNORED_ON_INPUT = ("id", "resource_uri")
_MISSING = object()


def parse_json_body(request):
    if not request.body:
        raise bad_request("The request needs a JSON object as its body.")
    try:
        data = json.loads(request.body)
        # "\ud800" is valid JSON but no text a database can store.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError) as exc:
        raise bad_request(f"Malformed JSON: {exc}.")
    except RecursionError:
        raise bad_request("Malformed JSON: nested too deeply.")
    if not isinstance(data, dict):
        raise bad_request("The body must be a JSON object.")
    return data


def validate(resource_type, data, tz, obj=None, settings=None):
    """The body's fields, deserialized; raises a 400 naming each bad field.

    A read-only field is accepted when it carries the value it already has,
    so a client may send back the object it read.
    """
    nodes = {node.name: node for node in resource_type.schema.children}
    errors = {}
    writable = {}
    for key, value in data.items():
        if key in IGNORED_ON_INPUT:
            expected = None if obj is None else (obj.id if key == "id" else resource_uri(resource_type.name, obj.id))
            if value is not None and value != expected:
                errors[key] = "This field is read-only."
            continue
        node = nodes.get(key)
        if node is None:
            errors[key] = "Unknown field."
            continue
        if node.readonly:
            fixed = resource_type.fixed_on_create.get(key, _MISSING)
            if obj is None and type(value) is type(fixed) and value == fixed:
                continue
            if obj is None or not _same_as_stored(node, value, obj, tz, settings):
                errors[key] = "This field is read-only."
            continue
        writable[key] = value
    if obj is None:
        for node in resource_type.schema.children:
            if node.required_on_create and node.name not in data:
                errors[node.name] = "This field is required."
    if errors:
        raise bad_request("Invalid fields.", errors)
    partial = colander.SchemaNode(
        colander.Mapping(unknown="raise"),
        *[nodes[key].clone() for key in writable],
    ).bind(tz=tz)
    try:
        values = partial.deserialize(writable)
    except colander.Invalid as exc:
        raise bad_request("Invalid fields.", {k: v for k, v in exc.asdict().items()})
    return values


def _same_as_stored(node, value, obj, tz, settings):
    try:
        parsed = node.clone().bind(tz=tz).deserialize(value)
    except colander.Invalid:
        return False
    return parsed == current_value(node, obj, settings)
