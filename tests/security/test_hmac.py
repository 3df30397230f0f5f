"""Workers' HMAC signatures."""
import hashlib
import hmac

import pytest

from jobrunner.models import Worker
from tests.api.conftest import HOST, assert_error, signed_request
from tests.conftest import uri


def stored_worker(dbsession, worker):
    dbsession.expire_all()
    stored = dbsession.get(Worker, worker.id)
    return (stored.worker_version, stored.concurrent_jobs, stored.ping_response_dts)


@pytest.mark.parametrize("header", ["Authorization", "Authentication"])
def test_both_header_spellings(world, testapp, header):
    res = signed_request(testapp, world.worker, "GET", "/api/v1/worker/", header=header)
    assert res.status_int == 200
    assert [o["id"] for o in res.json["objects"]] == [world.worker.id]
    assert "run" in signed_request(testapp, world.worker, "GET", "/api/v1/", header=header).json
    assert "fields" in signed_request(testapp, world.worker, "GET", "/api/v1/run/schema/", header=header).json
    body = b'{"worker_version": "2.0"}'
    res = signed_request(testapp, world.worker, "PATCH", uri("worker", world.worker), body, header=header)
    assert res.status_int == 202
    assert res.json["worker_version"] == "2.0"


def test_the_signature_is_hmac_sha1_of_method_path_query_and_body(world, testapp):
    path = "/api/v1/worker/?api_key=" + world.worker.api_key + "&limit=5"
    body = b'{"worker_version": "3.0"}'
    message = b"PATCH" + uri("worker", world.worker).encode() + body
    digest = hmac.new(world.worker.secret.encode(), message, hashlib.sha1).hexdigest()
    res = testapp.request(uri("worker", world.worker), method="PATCH", body=body,
                          headers={"Authorization": f"ApiKey {world.worker.api_key}:{digest}",
                                   "Content-Type": "application/json", "Host": HOST},
                          expect_errors=True)
    assert res.status_int == 202
    digest = hmac.new(world.worker.secret.encode(), b"GET" + path.encode(), hashlib.sha1).hexdigest()
    res = testapp.request(path, method="GET",
                          headers={"Authentication": f"ApiKey {world.worker.api_key}:{digest.upper()}",
                                   "Host": HOST}, expect_errors=True)
    assert res.status_int == 200


def test_wrong_signature_is_401(world, testapp, dbsession):
    before = stored_worker(dbsession, world.worker)
    path = uri("worker", world.worker)
    res = testapp.request(path, method="PATCH", body=b'{"worker_version": "x"}',
                          headers={"Authorization": f"ApiKey {world.worker.api_key}:{'0' * 40}",
                                   "Content-Type": "application/json", "Host": HOST},
                          expect_errors=True)
    assert_error(res, 401)
    wrong_secret = Worker(api_key=world.worker.api_key, secret="not-the-secret")
    res = signed_request(testapp, wrong_secret, "PATCH", path, b'{"worker_version": "x"}')
    assert_error(res, 401)
    assert stored_worker(dbsession, world.worker) == before


def test_signature_of_another_body_is_401(world, testapp, dbsession):
    before = stored_worker(dbsession, world.worker)
    res = signed_request(testapp, world.worker, "PATCH", uri("worker", world.worker),
                         b'{"worker_version": "evil"}', sign_body=b'{"worker_version": "good"}')
    assert_error(res, 401)
    # Nor does a GET's empty-body signature cover a body.
    res = signed_request(testapp, world.worker, "PATCH", uri("worker", world.worker),
                         b'{"worker_version": "evil"}', sign_body=b"", sign_method="PATCH")
    assert_error(res, 401)
    assert stored_worker(dbsession, world.worker) == before


def test_signature_of_another_path_or_query_string_is_401(world, other_world, testapp):
    cases = [
        ("/api/v1/run/", "/api/v1/job/"),
        ("/api/v1/run/?limit=1", "/api/v1/run/?limit=2"),
        ("/api/v1/run/", "/api/v1/run/?job=1"),
        ("/api/v1/run/?job=1", "/api/v1/run/"),
        ("/api/v1/run/?limit=1&offset=0", "/api/v1/run/?offset=0&limit=1"),
        ("/api/v1/run/?job=%2F1", "/api/v1/run/?job=/1"),
        (uri("worker", world.worker), uri("worker", other_world.worker)),
        ("/api/v1/run", "/api/v1/run/"),
    ]
    for signed, sent in cases:
        res = signed_request(testapp, world.worker, "GET", sent, sign_path=signed)
        assert_error(res, 401)
        # The same request signed for what is sent passes.
        assert signed_request(testapp, world.worker, "GET", sent).status_int != 401, sent


def test_signature_of_another_method_is_401(world, testapp, dbsession):
    before = stored_worker(dbsession, world.worker)
    body = b'{"worker_version": "x"}'
    for signed, sent in (("GET", "PATCH"), ("PUT", "PATCH"), ("patch", "PATCH"), ("POST", "PATCH")):
        res = signed_request(testapp, world.worker, sent, uri("worker", world.worker), body,
                             sign_method=signed)
        if signed == "patch":
            # The method is upper-cased before signing: the same message.
            assert res.status_int == 202
            continue
        assert_error(res, 401)
    res = signed_request(testapp, world.worker, "GET", "/api/v1/worker/", sign_method="HEAD")
    assert_error(res, 401)
    dbsession.expire_all()
    assert stored_worker(dbsession, world.worker)[1:] == before[1:]


def test_unknown_api_key_is_401(world, testapp):
    stranger = Worker(api_key="nobody-has-this-key", secret=world.worker.secret)
    assert_error(signed_request(testapp, stranger, "GET", "/api/v1/worker/"), 401)
    assert_error(signed_request(testapp, stranger, "GET", "/api/v1/"), 401)


@pytest.mark.parametrize("header", [
    "ApiKey",
    "ApiKey ",
    "ApiKey {key}",
    "ApiKey {key}:",
    "ApiKey :{sig}",
    "ApiKey {key}:{sig}:{sig}",
    "ApiKey {key}:nothex{sig}",
    "ApiKey {key} {sig}",
    "ApiKey {key}:{sig} trailing",
    "apikey {key}:{sig}x",
    "Basic dXNlcjpwYXNz",
    "Bearer {sig}",
    "ApiKey k\u00e9y:{sig}",
    "ApiKey nul\x00key:{sig}",
    "",
])
def test_malformed_header_is_401(world, testapp, header):
    path = "/api/v1/worker/"
    good = signed_request(testapp, world.worker, "GET", path)
    assert good.status_int == 200
    sig = hmac.new(world.worker.secret.encode(), b"GET" + path.encode(), hashlib.sha1).hexdigest()
    value = header.format(key=world.worker.api_key, sig=sig)
    for name in ("Authorization", "Authentication"):
        res = testapp.request(path, method="GET", headers={name: value.encode("utf-8").decode("latin-1"),
                                                            "Host": HOST}, expect_errors=True)
        assert_error(res, 401)


def test_a_signed_request_ignores_a_session_cookie(world, testapp, admin):
    """A request with an API key header is judged by its signature alone."""
    res = testapp.request("/api/v1/worker/", method="GET", headers={
        "Authorization": f"ApiKey {world.worker.api_key}:{'0' * 40}", "Host": HOST,
        "Cookie": "; ".join(f"{c.name}={c.value}" for c in admin.testapp.cookiejar),
    }, expect_errors=True)
    assert_error(res, 401)


def test_workers_need_no_csrf_token(world, testapp):
    res = signed_request(testapp, world.worker, "POST", "/api/v1/run/",
                         b'{"job": "%s"}' % uri("job", world.job).encode())
    assert res.status_int == 201


# --- nothing without credentials --------------------------------------------

RESOURCES = ("group", "project", "worker_pool", "worker", "job_template", "job", "run",
             "kill_request", "run_log")


def test_no_credentials_is_401_on_every_api_url(world, factory, anonymous):
    run = factory.run(world.job)
    paths = ["/api", "/api/", "/api/v1", "/api/v1/", "/api/v2/", "/api/v1/nothing/",
             "/api/v1/run/abc/", "/api/v1/run/987654/", uri("run", run), uri("job", world.job),
             uri("worker", world.worker), uri("project", world.project), uri("group", world.viewers)]
    for name in RESOURCES:
        paths += [f"/api/v1/{name}/", f"/api/v1/{name}/schema/", f"/api/v1/{name}/?limit=1"]
    for path in paths:
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
            body = b"{}" if method in ("POST", "PUT", "PATCH") else b""
            res = anonymous.request(path, method=method, body=body,
                                    headers={"Content-Type": "application/json", "Host": HOST},
                                    expect_errors=True)
            assert res.status_int == 401, (method, path, res.status)
            if method != "HEAD":
                assert_error(res, 401)


def test_no_credentials_is_401_even_with_override_or_csrf_token(world, anonymous):
    res = anonymous.request(uri("worker", world.worker), method="POST", body=b'{"worker_version": "x"}',
                            headers={"X-HTTP-Method-Override": "PATCH", "Host": HOST,
                                     "Content-Type": "application/json", "X-CSRF-Token": "anything"},
                            expect_errors=True)
    assert_error(res, 401)


def test_login_page_and_static_files_are_open(anonymous):
    page = anonymous.get("/login")
    assert page.status_int == 200
    assert '<meta name="csrf-token"' in page.text
    assert anonymous.get("/static/app.css").status_int == 200
