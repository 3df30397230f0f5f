"""The administrators' forms: users, groups, projects, pools and workers."""
from jobrunner.models import Group, Project, User, Worker, WorkerPool
from jobrunner.security.passwords import check_password
from tests.api.conftest import SessionClient, new_testapp, quick_user

from .conftest import get, error_of, form_fields, post


def test_a_new_user_can_log_in_and_is_in_his_groups(admin, app, dbsession, world):
    page = get(admin, "/admin/user/new")
    for name in ("username", "email", "password", "is_active", "is_admin", "groups"):
        assert f'name="{name}"' in page.text
    res = post(admin, "/admin/user/new", [
        ("username", "carol"), ("email", "carol@example.com"), ("password", "pw-of-carol"),
        ("is_active", "true"), ("groups", str(world.viewers.id)), ("groups", str(world.admins.id)),
    ], status=303)
    assert res.location.endswith("/admin/user/")
    carol = dbsession.query(User).filter_by(username="carol").one()
    assert carol.email == "carol@example.com" and carol.is_active and not carol.is_admin
    assert {g.id for g in carol.groups} == {world.viewers.id, world.admins.id}
    assert check_password(carol.password_hash, "pw-of-carol")
    listing = get(admin, "/admin/user/")
    assert "Saved user &#39;carol&#39;." in listing.text or "Saved user 'carol'." in listing.text
    assert carol.password_hash not in listing.text
    SessionClient(new_testapp(app), "carol", password="pw-of-carol")


def test_editing_a_user_without_a_password_keeps_it(admin, dbsession, factory):
    user = factory.user(password="old")
    page = get(admin, f"/admin/user/{user.id}/edit")
    fields = [(n, v) for n, v in form_fields(page) if n != "is_active"] + [("email", "new@example.com")]
    fields = [(n, v) for n, v in fields if not (n == "email" and v != "new@example.com")]
    post(admin, f"/admin/user/{user.id}/edit", fields, status=303)
    dbsession.expire_all()
    user = dbsession.get(User, user.id)
    assert user.email == "new@example.com" and not user.is_active
    assert check_password(user.password_hash, "old")


def test_a_taken_username_comes_back_with_the_error_and_the_typed_values(admin, dbsession, factory):
    taken = factory.user()
    res = post(admin, "/admin/user/new", {"username": taken.username, "email": "typed@example.com",
                                           "password": "pw", "is_admin": "true"}, status=400)
    assert "has this username already" in error_of(res, "username")
    form = res.forms["admin-form"]
    assert form["email"].value == "typed@example.com"
    assert form["username"].value == taken.username
    assert form["is_admin"].checked
    assert dbsession.query(User).filter_by(email="typed@example.com").count() == 0


def test_a_new_user_needs_a_password(admin):
    res = post(admin, "/admin/user/new", {"username": "nopw"}, status=400)
    assert error_of(res, "password") == "A new user needs a password."


def test_an_administrator_cannot_lock_himself_out(session_for, factory):
    me = quick_user(factory, is_admin=True)
    admin = session_for(me)
    res = post(admin, f"/admin/user/{me.id}/edit", {"username": me.username, "is_active": "true"}, status=400)
    assert "your own administrator rights" in error_of(res, "is_admin")
    res = post(admin, f"/admin/user/{me.id}/delete", {}, status=409)
    assert "You cannot delete yourself." in res.text


def test_groups_are_created_renamed_and_deleted(admin, dbsession):
    post(admin, "/admin/group/new", {"name": "Operators"}, status=303)
    group_id = dbsession.query(Group).filter_by(name="Operators").one().id
    post(admin, f"/admin/group/{group_id}/edit", {"name": "Ops"}, status=303)
    dbsession.expire_all()
    assert dbsession.get(Group, group_id).name == "Ops"
    res = post(admin, "/admin/group/new", {"name": "Ops"}, status=400)
    assert error_of(res, "name") == "Another group has this name already."
    confirm = get(admin, f"/admin/group/{group_id}/delete")
    assert "confirm-delete" in confirm.text
    post(admin, f"/admin/group/{group_id}/delete", {}, status=303)
    dbsession.expire_all()
    assert dbsession.get(Group, group_id) is None


def test_a_project_gets_its_groups_pools_and_addresses(admin, dbsession, world):
    res = post(admin, "/admin/project/new", [
        ("title", "Billing"), ("description", "Invoices"), ("enqueue_is_enabled", "true"),
        ("groups", str(world.viewers.id)), ("auth_groups", str(world.admins.id)),
        ("worker_pools", str(world.pool.id)),
        ("notification_addresses", "a@example.com\n\nb@example.com\n"),
    ], status=303)
    project = dbsession.query(Project).filter_by(title="Billing").one()
    assert [g.id for g in project.groups] == [world.viewers.id]
    assert [g.id for g in project.auth_groups] == [world.admins.id]
    assert [p.id for p in project.worker_pools] == [world.pool.id]
    assert project.notification_addresses == "a@example.com\nb@example.com"
    page = get(admin, f"/admin/project/{project.id}/edit")
    assert page.forms["admin-form"]["notification_addresses"].value == "a@example.com\nb@example.com"
    # Unchecked: disabled, no groups.
    post(admin, f"/admin/project/{project.id}/edit", {"title": "Billing"}, status=303)
    dbsession.expire_all()
    project = dbsession.get(Project, project.id)
    assert not project.enqueue_is_enabled and project.groups == [] and project.worker_pools == []


def test_invalid_fields_are_named_and_nothing_is_saved(admin, dbsession, world):
    res = post(admin, "/admin/project/new", [
        ("title", "Half"), ("groups", "999999"), ("notification_addresses", "not an address"),
    ], status=400)
    assert "Not an e-mail address" in error_of(res, "notification_addresses")
    assert res.forms["admin-form"]["title"].value == "Half"
    assert dbsession.query(Project).filter_by(title="Half").count() == 0
    res = post(admin, "/admin/project/new", [("title", "Half"), ("groups", "999999")], status=400)
    assert error_of(res, "groups") == "No group with id 999999."


def test_a_pool_gets_its_workers(admin, dbsession, world, factory):
    other = factory.worker()
    post(admin, "/admin/worker_pool/new", [
        ("title", "Nightly"), ("workers", str(world.worker.id)), ("workers", str(other.id)),
        ("enqueue_is_enabled", "true"), ("notification_addresses", "ops@example.com"),
    ], status=303)
    pool = dbsession.query(WorkerPool).filter_by(title="Nightly").one()
    assert {w.id for w in pool.workers} == {world.worker.id, other.id}
    assert pool.notification_addresses == "ops@example.com"


def test_a_new_workers_secret_is_shown_once_with_its_ini(admin, dbsession):
    page = get(admin, "/admin/worker/new")
    assert 'name="ping_response_dts"' not in page.text and 'name="api_key"' not in page.text
    res = post(admin, "/admin/worker/new", {"title": "host-7", "concurrent_jobs": "2",
                                             "enqueue_is_enabled": "true"}, status=303)
    worker = dbsession.query(Worker).filter_by(title="host-7").one()
    assert res.location.endswith(f"/admin/worker/{worker.id}/edit")
    shown = get(admin, res.location)
    ini = shown.forms["admin-form"] and shown.html.select_one("#worker-ini").text
    assert f"api_key = {worker.api_key}" in ini and f"secret = {worker.secret}" in ini
    assert "api_base_url = http://jobrunner.example" in ini and "concurrent_jobs = 2" in ini
    assert shown.html.select_one("#download-ini")["download"] == "jobrunner-worker.ini"
    again = get(admin, res.location)
    assert worker.secret not in again.text and "worker-credentials" not in again.text
    assert worker.secret not in get(admin, "/admin/worker/").text


def test_rotating_a_secret_shows_the_new_one_once(admin, dbsession, world):
    old = world.worker.secret
    res = post(admin, f"/admin/worker/{world.worker.id}/rotate_secret", {}, status=303)
    dbsession.expire_all()
    new = dbsession.get(Worker, world.worker.id).secret
    assert new != old
    shown = get(admin, res.location)
    assert new in shown.html.select_one("#worker-secret").text
    assert new not in get(admin, res.location).text


def test_a_worker_form_checks_the_apis_bounds(admin, dbsession, world):
    res = post(admin, f"/admin/worker/{world.worker.id}/edit",
               {"title": "w", "concurrent_jobs": "many"}, status=400)
    assert error_of(res, "concurrent_jobs") == "Expected an integer."
    res = post(admin, f"/admin/worker/{world.worker.id}/edit",
               {"title": "w", "concurrent_jobs": "5000"}, status=400)
    assert error_of(res, "concurrent_jobs") == "Between 0 and 1000."
    assert res.forms["admin-form"]["concurrent_jobs"].value == "5000"
