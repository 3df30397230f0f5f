"""Hypothesis strategies for hostile API requests, built from `schema/`."""
import json

from hypothesis import strategies as st

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"]
OVERRIDES = [None, None, None, "PATCH", "PUT", "DELETE", "GET", "patch", " PATCH ", "BOGUS", "\x00"]
LOOKUPS = ["", "__exact", "__isnull", "__gt", "__gte", "__lt", "__lte", "__in", "__bogus", "__in__gt"]
RESOURCES_NOT_LISTED = ["user", "secret", "api_token", "..", "%2e%2e", "run_log;", "worker_pool%00"]

hostile_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from([
        "", " ", "\x00", "nul\x00byte", "line\nbreak", "crlf\r\nSubject: x", "\ud800"[:0] + "é",
        "'; DROP TABLE run; --", "<script>alert(1)</script>", "{{ content }}", "%s%s%n", "../../etc/passwd",
        "x" * 300, "９", "²", "1e309", "NaN", "-0", "0x10", "true", "null", "/api/v1/job/1/",
        "/api/v1/job/999999999/", "/api/v1/run/1/", "http://evil.example/api/v1/job/1/",
        "2013-01-01T00:00:00+00:00", "2013-01-01 00:00:00", "9999-12-31T23:59:59+14:00",
        "0001-01-01T00:00:00-14:00", "2013-02-30T00:00:00", "24:00", "22:00",
    ]),
)
hostile_int = st.one_of(
    st.integers(-3, 5),
    st.sampled_from([0, -1, 2**31 - 1, 2**31, -2**31 - 1, 2**63, 10**30, 2147483647]),
)
json_scalar = st.one_of(st.none(), st.booleans(), hostile_int, hostile_text,
                        st.floats(allow_nan=False, allow_infinity=False))
# Two levels deep is enough to hit every "expected a string" branch, and
# far cheaper to draw than a recursive strategy.
json_value = st.one_of(
    json_scalar, json_scalar,
    st.lists(json_scalar, max_size=3),
    st.dictionaries(hostile_text, json_scalar, max_size=3),
    st.lists(st.lists(json_scalar, max_size=2), max_size=2),
)


_VALUE_STRATEGIES = {}


def value_for(field, uris):
    """A value a hostile client might send for a field of this description
    (made once per kind: building strategies is what costs)."""
    kind = field.get("type")
    if kind not in _VALUE_STRATEGIES:
        _VALUE_STRATEGIES[kind] = _value_for_kind(kind, uris)
    return _VALUE_STRATEGIES[kind]


def _value_for_kind(kind, uris):
    typed = {
        "integer": hostile_int,
        "boolean": st.booleans(),
        "datetime": st.sampled_from([
            "2013-01-01T00:00:00+00:00", "2031-05-05 10:00", "2999-01-01T00:00:00+00:00",
            "1900-01-01T00:00:00+00:00", "9999-12-31T23:59:59-14:00", "not a date", "", 0,
        ]),
        "related": st.one_of(st.sampled_from(uris or ["/api/v1/job/1/"]), hostile_int,
                             st.lists(st.sampled_from(uris or ["/api/v1/job/1/"]), max_size=3)),
        "list": st.one_of(
            st.lists(st.fixed_dictionaries({"start_time": st.sampled_from(["22:00", "25:00", "x", 5]),
                                            "end_time": st.sampled_from(["23:00", "06:00", None])}),
                     max_size=2),
            st.lists(hostile_text, max_size=3), hostile_text),
        "string": hostile_text,
    }.get(kind, json_value)
    return st.one_of(typed, typed, json_value)


@st.composite
def body_for(draw, description, uris):
    fields = description["fields"]
    names = sorted(fields) + ["bogus", "secret", "password_hash", "id", "resource_uri"]
    chosen = draw(st.lists(st.sampled_from(names), max_size=5, unique=True))
    data = {name: draw(value_for(fields.get(name, {}), uris)) for name in chosen}
    kind = draw(st.sampled_from(["object"] * 8 + ["raw"]))
    if kind == "raw":
        return draw(st.sampled_from([b"", b"{", b"[]", b"null", b'"x"', b"\xff\xfe", b'{"a":' * 50,
                                     b"{}" * 3, json.dumps([data]).encode()]))
    return json.dumps(data).encode()


@st.composite
def query_for(draw, description, uris):
    keys = sorted(description.get("filtering", {})) + ["bogus", "order_by", "limit", "offset",
                                                       "state", "format", "project_id"]
    pairs = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(keys))
        if key not in ("order_by", "limit", "offset", "format"):
            key += draw(st.sampled_from(LOOKUPS))
        value = draw(st.one_of(hostile_text, hostile_int.map(str), st.sampled_from(uris or ["1"]),
                               st.sampled_from(["enqueueable", "started", "-id", "id,-title", "1,2,x"])))
        pairs.append((key, str(value)))
    return pairs
