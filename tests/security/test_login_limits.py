"""Failed logins are counted in the database: 429 past the limits."""
from datetime import timedelta

from sqlalchemy import func, select, update

from jobrunner.models.security import LoginFailure
from jobrunner.security import passwords
from tests.api.conftest import new_testapp, quick_user
from tests.conftest import csrf_token_of, now


def attempt(client, username, password, addr="192.0.2.1"):
    token = csrf_token_of(client.get("/login", extra_environ={"REMOTE_ADDR": addr}))
    return client.post("/login", {"username": username, "password": password, "csrf_token": token},
                       extra_environ={"REMOTE_ADDR": addr}, expect_errors=True)


def test_five_failures_for_a_username_then_429_even_with_the_password(app, factory, dbsession):
    user = quick_user(factory)
    client = new_testapp(app)
    for _ in range(5):
        assert attempt(client, user.username, "wrong").status_int == 400
    res = attempt(client, user.username, "secret")
    assert res.status_int == 429
    assert "try again after" in res.text.lower()
    assert int(res.headers["Retry-After"]) > 800
    assert "csrf-token" in res.text
    # Another user from the same address is not hit by this one's limit.
    other = quick_user(factory)
    assert attempt(client, other.username, "secret").status_int == 303


def test_the_limit_ends_after_15_minutes(app, factory, dbsession):
    user = quick_user(factory)
    client = new_testapp(app)
    for _ in range(5):
        attempt(client, user.username, "wrong")
    assert attempt(client, user.username, "secret").status_int == 429
    dbsession.execute(update(LoginFailure).values(dts=now() - timedelta(minutes=15, seconds=1)))
    assert attempt(client, user.username, "secret").status_int == 303


def test_fifty_failures_from_one_address_then_429(app, factory, dbsession):
    client = new_testapp(app)
    dbsession.add_all([LoginFailure(username=f"guess{i}", client_addr="198.51.100.7", dts=now())
                       for i in range(50)])
    dbsession.flush()
    user = quick_user(factory)
    assert attempt(client, user.username, "secret", addr="198.51.100.7").status_int == 429
    assert attempt(client, user.username, "secret", addr="198.51.100.8").status_int == 303


def test_failures_are_counted_although_the_answer_is_400(app, factory, dbsession):
    client = new_testapp(app)
    before = dbsession.scalar(select(func.count()).select_from(LoginFailure))
    assert attempt(client, "nobody-at-all", "x").status_int == 400
    assert dbsession.scalar(select(func.count()).select_from(LoginFailure)) == before + 1


def test_a_json_login_gets_a_json_429(app, factory, dbsession):
    import json

    user = quick_user(factory)
    dbsession.add_all([LoginFailure(username=user.username, client_addr="x", dts=now()) for _ in range(5)])
    dbsession.flush()
    client = new_testapp(app)
    token = csrf_token_of(client.get("/login"))
    res = client.post("/login", json.dumps({"username": user.username, "password": "secret"}),
                      headers={"X-CSRF-Token": token}, content_type="application/json", expect_errors=True)
    assert res.status_int == 429
    assert set(res.json) == {"error", "errors"}


def test_failed_logins_are_logged(app, factory, caplog):
    client = new_testapp(app)
    with caplog.at_level("WARNING", logger="jobrunner.security.views"):
        attempt(client, "mallory", "guess")
    assert any("failed login" in r.getMessage() and "mallory" in r.getMessage() for r in caplog.records)


def test_hashing_is_bounded(app, factory):
    # With every slot taken, a login is answered at once as busy (503)
    # instead of holding a server thread for a hash.
    user = quick_user(factory)
    client = new_testapp(app)
    token = csrf_token_of(client.get("/login"))
    taken = []
    slots = passwords._slots
    while slots.acquire(blocking=False):
        taken.append(True)
    try:
        assert taken, "the bound is switched off"
        res = client.post("/login", {"username": user.username, "password": "secret", "csrf_token": token},
                          expect_errors=True)
        assert res.status_int == 503
        assert res.headers["Retry-After"]
    finally:
        for _ in taken:
            slots.release()
    assert attempt(client, user.username, "secret").status_int == 303
