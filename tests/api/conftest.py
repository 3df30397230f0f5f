"""Fixtures of the API and security tests (tests/security imports them too)."""
import io
import json

import pytest
import webtest
from sqlalchemy import event

from tests.conftest import UserClient, WorkerClient


HOST = "jobrunner.example"


def new_testapp(app):
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": HOST})


class SessionClient(UserClient):
    """UserClient whose writes carry the session cookie: TestApp.request()
    builds its request for host "localhost" (extra_environ only fills what is
    missing), so the cookie of jobrunner.example would stay behind."""

    def request(self, method, path, data=None, status=None, raw=None, headers=None, csrf=True):
        body = raw if raw is not None else (json.dumps(data).encode() if data is not None else b"")
        all_headers = {"Host": HOST}
        if csrf:
            all_headers["X-CSRF-Token"] = self.csrf_token
        if body:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        return self.testapp.request(path, method=method, body=body, headers=all_headers,
                                    status=status, expect_errors=status is None)

    def _send(self, method, path, data, status, csrf=True):
        return self.request(method, path, data, status=status, csrf=csrf)


@pytest.fixture
def anonymous(app, connection):
    """A client with no cookie and no signature."""
    return new_testapp(app)


def quick_user(factory, groups=(), is_admin=False, is_active=True):
    """factory.user() with the password "secret"."""
    return factory.user(groups=groups, is_admin=is_admin, is_active=is_active)


@pytest.fixture
def session_for(app, connection, factory):
    """A logged-in client with a cookie jar of its own, so that several users
    can act in one test: session_for(user) or session_for(groups=[...])."""

    def login(user=None, groups=(), is_admin=False):
        if user is None:
            user = quick_user(factory, groups=groups, is_admin=is_admin)
        return SessionClient(new_testapp(app), user.username)

    return login


@pytest.fixture
def admin(session_for):
    return session_for(is_admin=True)


@pytest.fixture
def other_world(factory):
    """A second project with its own groups, pool, worker, template and job."""
    return factory.world()


@pytest.fixture
def count_statements(connection):
    """Counts the SQL statements sent on the test's connection while active."""

    class Counter:
        def __init__(self):
            self.statements = []
            self.active = False

        def __enter__(self):
            self.statements = []
            self.active = True
            return self

        def __exit__(self, *exc):
            self.active = False

        @property
        def count(self):
            return len(self.statements)

    counter = Counter()

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        if counter.active:
            counter.statements.append(statement)

    event.listen(connection, "before_cursor_execute", before_cursor_execute)
    yield counter
    event.remove(connection, "before_cursor_execute", before_cursor_execute)


def assert_error(res, status):
    """Every error is JSON {"error": str, "errors": {...}}."""
    assert res.status_int == status, (res.status, res.text[:500])
    assert res.content_type == "application/json"
    body = res.json
    assert set(body) == {"error", "errors"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["errors"], dict)
    return body


def signed_request(testapp, worker, method, path, body=b"", sign_method=None, sign_path=None,
                   sign_body=None, header="Authorization", headers=None):
    """A worker request whose signature may cover something other than what is sent."""
    signer = WorkerClient(testapp, worker)
    signature_headers = signer.headers(
        sign_method or method,
        sign_path if sign_path is not None else path,
        sign_body if sign_body is not None else body,
    )
    all_headers = {header: signature_headers["Authorization"], "Host": HOST}
    if body:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    return testapp.request(path, method=method, body=body, headers=all_headers, expect_errors=True)


def as_json(data):
    return json.dumps(data).encode()


def call_wsgi(client, method, path, query_string="", body=b"", **environ):
    """Calls the app with a raw WSGI environ, for requests WebTest will not
    build (bytes that are not UTF-8 in the URL, a body without a length).
    `client` is a SessionClient whose cookie and CSRF token go along."""
    env = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query_string,
        "SERVER_NAME": HOST, "SERVER_PORT": "80", "HTTP_HOST": HOST, "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json", "HTTP_X_CSRF_TOKEN": client.csrf_token,
        "HTTP_COOKIE": "; ".join(f"{c.name}={c.value}" for c in client.testapp.cookiejar),
    }
    env.update(environ)
    statuses = []
    body = b"".join(client.testapp.app(env, lambda status, headers, exc_info=None: statuses.append(status)))
    return statuses[0], body
