"""Dashboard sessions: login, logout, CSRF."""
import json

from jobrunner.models import Job
from jobrunner.security.passwords import hash_password
from tests.api.conftest import HOST, assert_error, new_testapp, quick_user
from tests.conftest import csrf_token_of, uri


def login_form(client, username, password, token=None, expect="*"):
    token = csrf_token_of(client.get("/login")) if token is None else token
    return client.post("/login", {"username": username, "password": password, "csrf_token": token},
                       status=expect, expect_errors=True)


def api_status(client):
    return client.get("/api/v1/", status="*").status_int


def test_login_with_a_password_hashed_by_the_application(app, factory):
    user = factory.user(password_hash=hash_password("correct horse"))
    assert user.password_hash.startswith("$argon2")
    assert "correct horse" not in user.password_hash
    client = new_testapp(app)
    assert login_form(client, user.username, "correct horse").status_int in (302, 303)
    assert api_status(client) == 200


def test_login_form(anonymous):
    page = anonymous.get("/login")
    assert page.content_type == "text/html"
    token = csrf_token_of(page)
    form = page.forms[0]
    assert form.method.lower() == "post"
    assert {"username", "password", "csrf_token"} <= set(form.fields)
    assert form["csrf_token"].value == token
    assert form["password"].attrs.get("type") == "password"


def test_login_redirects_to_the_dashboard_and_opens_the_api(app, factory):
    user = quick_user(factory)
    client = new_testapp(app)
    assert api_status(client) == 401
    res = login_form(client, user.username, "secret")
    assert res.status_int in (302, 303)
    assert res.headers["Location"].rstrip("/").endswith(HOST) or res.headers["Location"] == "/"
    assert api_status(client) == 200
    # The session cookie cannot be read by scripts.
    assert "httponly" in res.headers["Set-Cookie"].lower()


def test_login_by_submitting_the_form(app, factory):
    user = quick_user(factory)
    client = new_testapp(app)
    form = client.get("/login").forms[0]
    form["username"] = user.username
    form["password"] = "secret"
    assert form.submit(status="*").status_int in (302, 303)
    assert api_status(client) == 200


def test_wrong_password_is_a_clear_message_and_no_session(app, factory):
    user = quick_user(factory)
    client = new_testapp(app)
    for username, password in ((user.username, "wrong"), ("nobody", "secret"), (user.username, "")):
        res = login_form(client, username, password)
        assert res.status_int in (200, 400, 401)
        assert "Wrong username or password" in res.text
        assert "csrf-token" in res.text
        assert api_status(client) == 401


def test_odd_usernames_are_just_wrong(app, factory):
    client = new_testapp(app)
    for username in ("nul\x00byte", "x" * 10000, "' OR 1=1 --"):
        res = login_form(client, username, "secret")
        assert res.status_int == 400
        assert "Wrong username or password" in res.text
    token = csrf_token_of(client.get("/login"))
    res = client.post("/login", json.dumps({"username": ["a"], "password": {"b": 1}}),
                      headers={"X-CSRF-Token": token}, content_type="application/json", status="*")
    assert_error(res, 400)
    assert api_status(client) == 401


def test_login_needs_the_csrf_token(app, factory):
    user = quick_user(factory)
    client = new_testapp(app)
    client.get("/login")
    for token in ("", "forged"):
        res = login_form(client, user.username, "secret", token=token)
        assert res.status_int == 403
        assert api_status(client) == 401


def test_inactive_user_cannot_log_in(app, factory):
    user = quick_user(factory, is_active=False)
    client = new_testapp(app)
    res = login_form(client, user.username, "secret")
    assert res.status_int not in (302, 303)
    assert "Wrong username or password" in res.text
    assert api_status(client) == 401


def test_a_deactivated_user_loses_the_session(app, factory, dbsession):
    user = quick_user(factory)
    client = new_testapp(app)
    login_form(client, user.username, "secret", expect=303)
    assert api_status(client) == 200
    user.is_active = False
    dbsession.flush()
    assert api_status(client) == 401


def test_json_login(app, factory):
    user = quick_user(factory, is_admin=True)
    client = new_testapp(app)
    token = csrf_token_of(client.get("/login"))
    res = client.post("/login", json.dumps({"username": user.username, "password": "secret"}),
                      headers={"X-CSRF-Token": token}, content_type="application/json", status="*")
    assert res.status_int == 200
    assert res.json["username"] == user.username
    assert api_status(client) == 200
    # The token the answer carries is the one to send from now on.
    new_token = res.json["csrf_token"]
    res = client.request("/api/v1/run/", method="POST", body=b'{"job": 987654}',
                         headers={"X-CSRF-Token": new_token, "Host": HOST,
                                  "Content-Type": "application/json"},
                         expect_errors=True)
    assert res.status_int == 400  # past the CSRF check: the job does not exist


def test_json_login_with_a_wrong_password(app, factory):
    user = quick_user(factory)
    client = new_testapp(app)
    token = csrf_token_of(client.get("/login"))
    res = client.post("/login", json.dumps({"username": user.username, "password": "nope"}),
                      headers={"X-CSRF-Token": token}, content_type="application/json", status="*")
    assert_error(res, res.status_int)
    assert res.status_int in (400, 401)
    assert "Wrong username or password" in res.json["error"]
    assert api_status(client) == 401
    res = client.post("/login", b"[not json", headers={"X-CSRF-Token": token},
                      content_type="application/json", status="*")
    assert_error(res, 400)


def test_logout(admin):
    client = admin.testapp
    assert api_status(client) == 200
    # Logging out is a state change: without the token it does not happen.
    res = client.post("/logout", status="*", expect_errors=True)
    assert res.status_int == 403
    assert api_status(client) == 200
    res = client.post("/logout", headers={"X-CSRF-Token": admin.csrf_token}, status="*")
    assert res.status_int in (302, 303)
    assert api_status(client) == 401


def test_session_writes_need_the_csrf_token(admin, world, dbsession):
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": ""}):
        res = admin.request("PATCH", uri("job", world.job), {"description": "csrf"}, csrf=False,
                            headers=headers)
        assert_error(res, 403)
        res = admin.request("POST", "/api/v1/run/", {"job": world.job.id}, csrf=False, headers=headers)
        assert_error(res, 403)
        res = admin.request("POST", uri("job", world.job), {"description": "csrf"}, csrf=False,
                            headers={**headers, "X-HTTP-Method-Override": "PATCH"})
        assert_error(res, 403)
    dbsession.expire_all()
    assert dbsession.get(Job, world.job.id).description == ""
    # Reads need no token.
    assert admin.request("GET", uri("job", world.job), csrf=False).status_int == 200
    # And with it the write goes through.
    assert admin.patch(uri("job", world.job), {"description": "ok"}).status_int == 202


def test_the_token_of_another_session_is_refused(admin, session_for, world, dbsession):
    other = session_for(is_admin=True)
    res = admin.request("PATCH", uri("job", world.job), {"description": "x"}, csrf=False,
                        headers={"X-CSRF-Token": other.csrf_token})
    assert_error(res, 403)
    dbsession.expire_all()
    assert dbsession.get(Job, world.job.id).description == ""


def test_login_next_stays_on_this_site(app, factory):
    user = quick_user(factory)
    for wanted, expected in (("/api/v1/job/", "/api/v1/job/"), ("//evil.example/", "/"),
                             ("https://evil.example/", "/")):
        client = new_testapp(app)
        token = csrf_token_of(client.get("/login"))
        res = client.post("/login", {"username": user.username, "password": "secret", "csrf_token": token,
                                     "next": wanted}, status="*")
        location = res.headers["Location"]
        assert location in (expected, f"http://{HOST}{expected}"), (wanted, location)
