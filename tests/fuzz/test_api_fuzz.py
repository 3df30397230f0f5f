"""Hostile requests against every resource, from every identity.

Walks each resource the API lists, from its `schema/`: hostile values,
wrong types, odd methods and method overrides, as every kind of caller.
Whatever comes in: never a 5xx, every API error is JSON, and a rejected
request leaves every table exactly as it was.

JOBRUNNER_FUZZ_REQUESTS sets how many requests in all (default 5,000, which
CI affords; `make fuzz` runs a longer profile). They are split into PARTS
tests of their own, so that `pytest -n` spreads them over its processes
rather than leaving one process with the longest test of the suite.
"""
import hashlib
import io
import json
import os
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from jobrunner.models import metadata
from jobrunner.signing import v1_header, v2_header
from tests.api.conftest import HOST, SessionClient, new_testapp, quick_user
from tests.fuzz.strategies import METHODS, OVERRIDES, RESOURCES_NOT_LISTED, body_for, query_for

REQUESTS = int(os.environ.get("JOBRUNNER_FUZZ_REQUESTS", "5000"))
PARTS = 5
PART_REQUESTS = max(1, REQUESTS // PARTS)
PER_EXAMPLE = 50
# Written by design even when a request is refused: the nonces of signed
# requests and the failed logins (neither is reachable from the API).
UNFINGERPRINTED = {"request_nonce", "login_failure"}


def fingerprint(connection):
    """A digest of every row of every table (raw SQL: this runs after each
    write, thousands of times)."""
    quote = connection.dialect.identifier_preparer.quote
    digest = hashlib.sha256()
    cursor = connection.connection.cursor()
    try:
        for table in metadata.sorted_tables:
            if table.name in UNFINGERPRINTED:
                continue
            keys = ", ".join(quote(c.name) for c in table.primary_key.columns)
            cursor.execute(f"SELECT * FROM {quote(table.name)} ORDER BY {keys}")
            digest.update(table.name.encode())
            digest.update(repr(cursor.fetchall()).encode())
    finally:
        cursor.close()
    return digest.hexdigest()


class Caller:
    def __init__(self, name, cookie="", csrf="", worker=None, secret=None, bearer=None, v2=False):
        self.name, self.cookie, self.csrf = name, cookie, csrf
        self.worker, self.secret, self.bearer, self.v2 = worker, secret, bearer, v2

    def headers(self, method, path_qs, body):
        headers = {}
        if self.cookie:
            headers["HTTP_COOKIE"] = self.cookie
        if self.csrf:
            headers["HTTP_X_CSRF_TOKEN"] = self.csrf
        if self.worker is not None:
            sign = v2_header if self.v2 else v1_header
            headers["HTTP_AUTHORIZATION"] = sign(self.worker, self.secret, method, path_qs, body)
        if self.bearer:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {self.bearer}"
        return headers


def session_caller(app, name, user, csrf=True):
    client = SessionClient(new_testapp(app), user.username)
    cookie = "; ".join(f"{c.name}={c.value}" for c in client.testapp.cookiejar)
    return Caller(name, cookie=cookie, csrf=client.csrf_token if csrf else "")


def callers(app, factory, world, other_world):
    admin = quick_user(factory, is_admin=True)
    viewer = quick_user(factory, groups=[world.viewers])
    project_admin = quick_user(factory, groups=[world.admins])
    token_user = quick_user(factory, groups=[world.admins])
    from jobrunner.security.tokens import create_token

    _, token = create_token(factory.db, token_user, "fuzz")
    return [
        Caller("anonymous"),
        session_caller(app, "admin", admin),
        session_caller(app, "viewer", viewer),
        session_caller(app, "project admin", project_admin),
        session_caller(app, "admin without csrf", admin, csrf=False),
        Caller("worker", worker=world.worker.api_key, secret=world.worker.secret),
        Caller("worker v2", worker=world.worker.api_key, secret=world.worker.secret, v2=True),
        Caller("other worker", worker=other_world.worker.api_key, secret=other_world.worker.secret),
        Caller("forger", worker=world.worker.api_key, secret="wrong"),
        Caller("token", bearer=token),
        Caller("bad token", bearer="jrt_nope"),
    ]


def call(app, method, path, pairs, body, caller, override):
    query = urlencode(pairs, quote_via=quote)
    path_qs = path + ("?" + query if query else "")
    sign_method = method
    env = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "RAW_URI": path_qs,
        "SERVER_NAME": HOST, "SERVER_PORT": "80", "HTTP_HOST": HOST, "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "192.0.2.10",
        "wsgi.errors": io.StringIO(),
    }
    if override is not None:
        env["HTTP_X_HTTP_METHOD_OVERRIDE"] = override
        if method == "POST" and override.strip().upper() in ("PATCH", "PUT", "DELETE"):
            sign_method = override.strip().upper()
    env.update(caller.headers(sign_method, path_qs, body))
    statuses, headers = [], []

    def start_response(status, response_headers, exc_info=None):
        statuses.append(status)
        headers.extend(response_headers)

    content = b"".join(app(env, start_response))
    return int(statuses[0].split()[0]), dict(headers), content


def describe_api(app, admin):
    index = json.loads(call(app, "GET", "/api/v1/", [], b"", admin, None)[2])
    return {name: json.loads(call(app, "GET", entry["schema"], [], b"", admin, None)[2])
            for name, entry in index.items()}


@pytest.mark.parametrize("part", range(1, PARTS + 1))
def test_hostile_requests(app, connection, factory, world, other_world, part):
    factory.run(world.job)
    factory.run_log(factory.run(world.job), "log")
    cast = callers(app, factory, world, other_world)
    admin = cast[1]
    schemas = describe_api(app, admin)
    names = sorted(schemas)
    uris = [f"/api/v1/{name}/{i}/" for name in names for i in (1, 2)] + ["/api/v1/job/999999/"]
    sent = []
    # Strategies are built once per resource; drawing from them is cheap.
    drawn = {name: (query_for(schemas.get(name, {"fields": {}, "filtering": {}}), uris),
                    body_for(schemas.get(name, {"fields": {}, "filtering": {}}), uris))
             for name in names + RESOURCES_NOT_LISTED}
    # The tables as the last request left them: a GET changes nothing, so
    # only a write needs a fingerprint, taken after it.
    state = {"fingerprint": fingerprint(connection)}

    request = st.tuples(
        st.sampled_from(names + RESOURCES_NOT_LISTED),
        st.sampled_from(["list", "list", "detail", "detail", "detail", "schema", "junk"]),
        st.sampled_from(["1", "2", "3", "0", "-1", "999999999", "99999999999999999999", "x", "1.0", "%00"]),
        st.sampled_from(METHODS),
        st.sampled_from(OVERRIDES),
        st.sampled_from(cast),
        st.data(),
    )

    # Generation only: the explicit, reuse and target phases add nothing
    # here, and a failure still shrinks.
    @settings(max_examples=max(1, PART_REQUESTS // PER_EXAMPLE), deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=(Phase.generate, Phase.shrink))
    @given(st.lists(request, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def run(batch):
        for name, target, item_id, method, override, caller, data in batch:
            path = {"list": f"/api/v1/{name}/", "detail": f"/api/v1/{name}/{item_id}/",
                    "schema": f"/api/v1/{name}/schema/", "junk": f"/api/v1/{name}/{item_id}/x/y/"}[target]
            query_strategy, body_strategy = drawn[name]
            pairs = data.draw(query_strategy)
            body = data.draw(body_strategy) if method not in ("GET", "HEAD") else b""
            writes = method not in ("GET", "HEAD", "OPTIONS")
            status, headers, content = call(app, method, path, pairs, body, caller, override)
            sent.append(1)
            context = (caller.name, method, override, path, pairs, body[:300], status, content[:300])
            assert status < 500, context
            if status >= 400:
                if method != "HEAD":
                    assert headers.get("Content-Type", "").startswith("application/json"), context
                    error = json.loads(content)
                    assert set(error) == {"error", "errors"}, context
                    assert isinstance(error["error"], str) and isinstance(error["errors"], dict), context
            if writes:
                after = fingerprint(connection)
                if status >= 400:
                    assert after == state["fingerprint"], context
                state["fingerprint"] = after

    run()
    assert len(sent) >= PART_REQUESTS
