"""Personal API tokens: made on the user's page, shown once, revoked; a
Bearer token acts exactly as its user, without CSRF."""
import re
from datetime import timedelta

from sqlalchemy import update

from jobrunner.models import Job
from jobrunner.models.security import ApiToken
from tests.api.conftest import HOST, assert_error, new_testapp, quick_user
from tests.conftest import csrf_token_of, now, uri


def make_token(client, name="ci", expires=""):
    page = client.testapp.get("/account/tokens", headers={"Host": HOST})
    res = client.testapp.post("/account/tokens",
                              {"name": name, "expires": expires, "csrf_token": csrf_token_of(page)},
                              headers={"Host": HOST}, expect_errors=True)
    match = re.search(r'<code id="new-token">([^<]+)</code>', res.text)
    return res, (match.group(1) if match else None)


def bearer(app, token):
    return {"Authorization": f"Bearer {token}", "Host": HOST}


def test_a_token_is_shown_once_and_stored_hashed(session_for, dbsession):
    client = session_for()
    res, token = make_token(client, "deploy script")
    assert res.status_int == 201 and token
    page = client.testapp.get("/account/tokens", headers={"Host": HOST})
    assert "deploy script" in page.text and token not in page.text
    row = dbsession.query(ApiToken).filter_by(name="deploy script").one()
    assert token not in row.token_hash and len(row.token_hash) == 64


def test_a_token_acts_as_its_user_without_csrf(app, world, factory):
    user = quick_user(factory, groups=[world.admins])
    from tests.api.conftest import SessionClient

    client = SessionClient(new_testapp(app), user.username)
    _, token = make_token(client)
    api = new_testapp(app)
    listed = api.get("/api/v1/job/", headers=bearer(app, token))
    assert [j["id"] for j in listed.json["objects"]] == [world.job.id]
    # A project admin may switch the job off, and nothing else.
    res = api.patch_json(uri("job", world.job), {"enqueue_is_enabled": False}, headers=bearer(app, token),
                         expect_errors=True)
    assert res.status_int == 202, res.text
    res = api.patch_json(uri("job", world.job), {"description": "x"}, headers=bearer(app, token),
                         expect_errors=True)
    assert_error(res, 403)


def test_a_token_sees_nothing_beyond_its_user(app, world, other_world, factory, session_for):
    client = session_for(groups=[world.viewers])
    _, token = make_token(client)
    api = new_testapp(app)
    res = api.get(uri("job", other_world.job), headers=bearer(app, token), expect_errors=True)
    assert res.status_int in (403, 404) and other_world.job.title not in res.text
    assert_error(api.post_json("/api/v1/run/", {"job": world.job.id}, headers=bearer(app, token),
                               expect_errors=True), 403)


def test_a_revoked_or_expired_or_wrong_token_is_401(app, world, session_for, dbsession):
    client = session_for(is_admin=True)
    _, revoked = make_token(client, "one")
    _, expired = make_token(client, "two")
    api = new_testapp(app)
    assert api.get("/api/v1/", headers=bearer(app, revoked)).status_int == 200
    row = dbsession.query(ApiToken).filter_by(name="one").one()
    page = client.testapp.get("/account/tokens", headers={"Host": HOST})
    client.testapp.post(f"/account/tokens/{row.id}/revoke", {"csrf_token": csrf_token_of(page)},
                        headers={"Host": HOST}, status=303)
    dbsession.execute(update(ApiToken).where(ApiToken.name == "two")
                      .values(expires_dts=now() - timedelta(seconds=1)))
    for token in (revoked, expired, "jrt_made-up", ""):
        assert_error(api.get("/api/v1/", headers=bearer(app, token), expect_errors=True), 401)


def test_a_token_of_a_deactivated_user_is_401(app, session_for, dbsession):
    client = session_for(is_admin=True)
    _, token = make_token(client)
    user_id = dbsession.query(ApiToken).one().user_id
    from jobrunner.models import User

    dbsession.get(User, user_id).is_active = False
    dbsession.flush()
    assert_error(new_testapp(app).get("/api/v1/", headers=bearer(app, token), expect_errors=True), 401)


def test_a_user_cannot_revoke_anothers_token(app, session_for, dbsession):
    alice, bob = session_for(), session_for()
    make_token(alice, "alice's")
    row = dbsession.query(ApiToken).filter_by(name="alice's").one()
    page = bob.testapp.get("/account/tokens", headers={"Host": HOST})
    res = bob.testapp.post(f"/account/tokens/{row.id}/revoke", {"csrf_token": csrf_token_of(page)},
                           headers={"Host": HOST}, expect_errors=True)
    assert res.status_int == 404
    assert dbsession.query(ApiToken).filter_by(name="alice's").count() == 1


def test_token_pages_need_a_session_and_csrf(app, session_for, dbsession):
    client = session_for()
    _, token = make_token(client)
    api = new_testapp(app)
    # A token cannot make more tokens.
    res = api.post("/account/tokens", {"name": "more"}, headers=bearer(app, token), expect_errors=True)
    assert res.status_int == 403
    res = client.testapp.post("/account/tokens", {"name": "no csrf"}, headers={"Host": HOST},
                              expect_errors=True)
    assert res.status_int == 403
    assert dbsession.query(ApiToken).count() == 1


def test_bad_token_names_and_expiries_show_the_form_again(session_for, dbsession):
    client = session_for()
    for name, expires in (("", ""), ("a\nb", ""), ("x" * 256, ""), ("ok", "yesterday"), ("ok", "2001-01-01")):
        res, token = make_token(client, name, expires)
        assert res.status_int == 400 and token is None
        assert "<form" in res.text
    assert dbsession.query(ApiToken).count() == 0
    res, token = make_token(client, "ok", (now() + timedelta(days=3)).strftime("%Y-%m-%d"))
    assert res.status_int == 201 and token
