"""The set-up file's format: YAML read and written our way, and the
converters from a YAML value to a stored value.

Each converter takes the raw YAML value and returns the stored value, or
raises ValueError with a message that the entry's name is put in front of.
"""
import re

import yaml

from ..jobs import INTERVAL_TYPES, parse_interval_type
from ..values import parse_addresses, parse_datetime, parse_time_of_day, parse_webhook_urls


class LoadError(Exception):
    """The file is invalid; nothing was changed."""


# --- YAML ---------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads an unquoted ``22:00`` as the base-60 number 1320; a
    reschedule exclude means a time of day, so base-60 numbers stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"""^(?:[-+]?0b[0-1_]+
                   |[-+]?0[0-7_]+
                   |[-+]?(?:0|[1-9][0-9_]*)
                   |[-+]?0x[0-9a-fA-F_]+)$""", re.X),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                   |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper, value):
    # Scripts and template bodies read best as literal blocks.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_list(dumper, value):
    flow = all(isinstance(item, (str, int, float, bool)) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)


def parse_yaml(text):
    """The data of a set-up file; raises LoadError on a YAML syntax error."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise LoadError(f"not valid YAML: {exc}") from None


def to_yaml(data):
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


# --- value converters ---------------------------------------------------------


def describe(value):
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


def length(model, column):
    """The most characters the model's column holds (None: no limit)."""
    return getattr(model.__table__.c[column].type, "length", None)


def text(max_length=None, required=False):
    def convert(value):
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {describe(value)} (quote it)")
        if required and not value.strip():
            raise ValueError("must not be empty")
        if required and ("\r" in value or "\n" in value or "\x00" in value):
            # Names and titles go into mail subjects and log lines, as in the API.
            raise ValueError("must be one line, without NUL characters")
        if max_length is not None and len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters long")
        return value

    return convert


def optional_text(value):
    """A name that may be null (a job without parent)."""
    return None if value is None else text(required=True)(value)


def boolean(value):
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {describe(value)}")
    return value


def integer(minimum, nullable=False):
    def convert(value):
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"must be an integer of at least {minimum}"
                             f"{' or null' if nullable else ''}, not {describe(value)}")
        return value

    return convert


def interval_type(value):
    try:
        return parse_interval_type(value)
    except ValueError:
        raise ValueError(f"must be one of {', '.join(INTERVAL_TYPES)} or null, "
                         f"not {describe(value)}") from None


def string_list(item_length=None):
    def convert(value):
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError(f"must be a list, not {describe(value)}")
        items = []
        for index, item in enumerate(value):
            try:
                item = text(item_length, required=True)(item)
            except ValueError as exc:
                raise ValueError(f"[{index}] {exc}") from None
            # A name given twice means it once (a link table row exists once).
            if item not in items:
                items.append(item)
        return items

    return convert


def addresses(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"must be a list, not {describe(value)}")
    return parse_addresses(value)


def webhook_urls(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"must be a list, not {describe(value)}")
    return parse_webhook_urls(value)


def time_of_day(value):
    try:
        return parse_time_of_day(value)
    except ValueError:
        raise ValueError(f"must be a time of day such as \"22:00\", not {describe(value)}") from None


def excludes(note_length):
    def convert(value):
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError(f"must be a list, not {describe(value)}")
        result = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise ValueError(f"[{index}] must be a mapping of start_time, end_time, note")
            unknown = sorted(map(str, set(item) - {"start_time", "end_time", "note"}))
            if unknown:
                raise ValueError(f"[{index}] unknown key(s): {', '.join(unknown)}")
            converted = []
            for key, converter in (("start_time", time_of_day), ("end_time", time_of_day),
                                   ("note", text(note_length))):
                try:
                    converted.append(converter(item.get(key, "")))
                except ValueError as exc:
                    raise ValueError(f"[{index}] {key}: {exc}") from None
            result.append(tuple(converted))
        return result

    return convert


def datetime_in(zone):
    """Aware UTC or null; a datetime without an offset is local time in ``zone``."""

    def convert(value):
        if value is None:
            return None
        try:
            return parse_datetime(value, zone)
        except ValueError:
            if isinstance(value, str):
                raise ValueError(f"must be an ISO 8601 datetime, not {value!r}") from None
            raise ValueError(f"must be a datetime, not {describe(value)}") from None

    return convert
