"""Sessions end on logout, password change, deactivation, idle time and age."""
from datetime import timedelta

from sqlalchemy import update

from jobrunner.models import User
from jobrunner.models.security import UserSession
from jobrunner.security.passwords import hash_password
from tests.api.conftest import HOST, new_testapp, quick_user
from tests.conftest import csrf_token_of, now


def logged_in(app, user):
    client = new_testapp(app)
    token = csrf_token_of(client.get("/login"))
    client.post("/login", {"username": user.username, "password": "secret", "csrf_token": token},
                status=303)
    return client


def cookie_of(client):
    return "; ".join(f"{c.name}={c.value}" for c in client.cookiejar)


def api_status(app, cookie):
    return new_testapp(app).get("/api/v1/", headers={"Cookie": cookie}, expect_errors=True).status_int


def test_a_copy_of_the_cookie_is_refused_after_logout(app, factory):
    client = logged_in(app, quick_user(factory))
    copy = cookie_of(client)
    assert api_status(app, copy) == 200
    token = csrf_token_of(client.get("/login"))
    client.post("/logout", {"csrf_token": token}, headers={"Host": HOST}, status=303)
    assert api_status(app, copy) == 401


def test_logout_ends_only_that_session(app, factory):
    user = quick_user(factory)
    first, second = logged_in(app, user), logged_in(app, user)
    token = csrf_token_of(first.get("/login"))
    first.post("/logout", {"csrf_token": token}, headers={"Host": HOST}, status=303)
    assert api_status(app, cookie_of(second)) == 200


def test_a_password_change_ends_every_session_of_the_user(app, factory, dbsession):
    user = quick_user(factory)
    other = quick_user(factory)
    copies = [cookie_of(logged_in(app, user)) for _ in range(2)]
    bystander = cookie_of(logged_in(app, other))
    user.password_hash = hash_password("a new one")
    dbsession.flush()
    assert [api_status(app, c) for c in copies] == [401, 401]
    assert api_status(app, bystander) == 200


def test_deactivating_ends_the_sessions_for_good(app, factory, dbsession):
    user = quick_user(factory)
    copy = cookie_of(logged_in(app, user))
    user.is_active = False
    dbsession.flush()
    user.is_active = True
    dbsession.flush()
    assert api_status(app, copy) == 401


def test_a_session_ends_at_most_14_days_after_login(app, factory, dbsession):
    user = quick_user(factory)
    copy = cookie_of(logged_in(app, user))
    dbsession.execute(update(UserSession).where(UserSession.user_id == user.id)
                      .values(created_dts=now() - timedelta(days=14, minutes=1)))
    assert api_status(app, copy) == 401


def test_a_session_ends_after_the_idle_time(database_url, mail_sink, factory, connection):
    import webob.cookies

    from jobrunner import main
    from tests.conftest import app_settings
    from tests.security.test_signature_v2 import factory_for

    app = main({}, **app_settings(database_url, mail_sink.port, **{"jobrunner.session.idle_timeout": "60"}))
    app.registry["dbsession_factory"] = factory_for(connection)
    user = quick_user(factory)
    client = logged_in(app, user)
    cookie = next(c for c in client.cookiejar if c.name == "jobrunner_session")
    assert api_status(app, f"jobrunner_session={cookie.value}") == 200
    # The same session as its cookie would say 61 s from now: signed with
    # the app's secret, its last access rewound.
    serializer = webob.cookies.SignedSerializer("test-secret", "pyramid.session.", "sha512")
    accessed, created, state = serializer.loads(cookie.value.encode())
    fresh = serializer.dumps((accessed, created, state)).decode()
    assert api_status(app, f"jobrunner_session={fresh}") == 200
    stale = serializer.dumps((accessed - 61, created - 61, state)).decode()
    assert api_status(app, f"jobrunner_session={stale}") == 401


def test_the_session_table_keeps_no_token_in_clear(app, factory, dbsession):
    user = quick_user(factory)
    client = logged_in(app, user)
    row = dbsession.query(UserSession).filter_by(user_id=user.id).one()
    assert row.token_hash not in cookie_of(client)
    assert len(row.token_hash) == 64


def test_the_user_row_is_untouched_by_login(app, factory, dbsession):
    user = quick_user(factory)
    before = user.password_hash
    logged_in(app, user)
    dbsession.expire_all()
    assert dbsession.get(User, user.id).password_hash == before
