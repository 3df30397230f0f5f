"""The audit log: one event per change a person makes, none for workers."""
import getpass
import json

import pytest
from sqlalchemy import select

from jobrunner.audit import REDACTED
from jobrunner.models import AuditEvent, Job, User, Worker
from tests.conftest import csrf_token_of, now, uri


def events(dbsession, **where):
    query = select(AuditEvent).order_by(AuditEvent.id)
    for name, value in where.items():
        query = query.where(getattr(AuditEvent, name) == value)
    return dbsession.scalars(query).all()


@pytest.fixture
def admin_user(factory):
    return factory.user(is_admin=True)


def test_a_users_api_writes_are_audited_with_their_changes(as_user, admin_user, world, dbsession):
    admin = as_user(admin_user)
    actor = f"user:{admin_user.username}"
    created = admin.post("/api/v1/job/", {
        "title": "nightly", "job_template": uri("job_template", world.template),
        "worker_pool": uri("worker_pool", world.pool), "script_content_partial": "echo 1",
        "notification_addresses": ["ops@example.com"],
        "reschedule_excludes": [{"start_time": "22:00", "end_time": "23:00", "note": "backup"}],
    }).json
    job_id = created["id"]
    [create] = events(dbsession, object_type="job", object_id=job_id)
    assert (create.actor, create.action, create.project_id) == (actor, "create", world.project.id)
    assert create.changes["title"] == [None, "nightly"]
    assert create.changes["reschedule_excludes"] == [[], ["22:00:00-23:00:00 backup"]]
    assert "script_content" not in create.changes  # derived from the template

    admin.patch(f"/api/v1/job/{job_id}/", {"description": "every night", "enqueue_is_enabled": False})
    update = events(dbsession, object_type="job", object_id=job_id, action="update")
    assert len(update) == 1
    assert update[0].changes == {"description": ["", "every night"], "enqueue_is_enabled": [True, False]}

    # Sending what is stored changes nothing and records nothing.
    admin.patch(f"/api/v1/job/{job_id}/", {"description": "every night"})
    assert len(events(dbsession, object_type="job", object_id=job_id)) == 2


def test_schedule_kill_and_toggle_by_a_project_admin(as_user, factory, world, dbsession, as_worker):
    user = factory.user(groups=[world.admins])
    member = as_user(user)
    actor = f"user:{user.username}"
    run = member.post("/api/v1/run/", {"job": uri("job", world.job)}).json
    [scheduled] = events(dbsession, action="schedule")
    assert (scheduled.actor, scheduled.object_type, scheduled.object_id) == (actor, "run", run["id"])
    assert scheduled.changes["job"] == [None, world.job.id]
    assert scheduled.project_id == world.project.id

    started = factory.run(world.job, enqueue_dts=now(), start_dts=now(), worker=world.worker)
    member.post("/api/v1/kill_request/", {"run": uri("run", started)})
    [kill] = events(dbsession, action="kill")
    assert (kill.actor, kill.object_type, kill.object_id) == (actor, "run", started.id)

    member.patch(uri("job", world.job), {"enqueue_is_enabled": False})
    [toggle] = events(dbsession, action="update", object_type="job")
    assert toggle.changes == {"enqueue_is_enabled": [True, False]}


def test_worker_traffic_is_not_audited(as_worker, world, factory, dbsession):
    worker = as_worker(world.worker)
    run = factory.run(world.job)
    worker.patch(uri("worker", world.worker), {"ping_response_dts": now().isoformat(),
                                               "worker_version": "9"})
    worker.patch(uri("run", run), {"enqueue_dts": now().isoformat()})
    worker.patch(uri("run", run), {"start_dts": now().isoformat(), "pid": 42})
    log = worker.post("/api/v1/run_log/", {"run": uri("run", run), "content": "hi"}).json
    worker.patch(log["resource_uri"], {"content": "hi there"})
    worker.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": False})
    # The return changed the job (fail_times): still no event.
    assert events(dbsession) == []


def test_login_and_failed_login(testapp, factory, dbsession):
    user = factory.user(username="carol")
    token = csrf_token_of(testapp.get("/login"))
    res = testapp.post("/login", {"username": "carol", "password": "wrong", "csrf_token": token},
                       status=400)
    assert "x-tm" not in res.headers
    testapp.post("/login", {"username": "nobody", "password": "x", "csrf_token": token}, status=400)
    testapp.post("/login", {"username": "carol", "password": "secret", "csrf_token": token}, status=303)
    recorded = [(e.actor, e.action, e.object_type, e.object_id) for e in events(dbsession)]
    assert recorded == [
        ("user:carol", "login_failed", "user", user.id),
        ("user:nobody", "login_failed", "user", None),
        ("user:carol", "login", "user", user.id),
    ]
    assert all("wrong" not in json.dumps(e.changes) for e in events(dbsession))


def test_a_rejected_write_leaves_no_event(as_user, admin_user, world, dbsession):
    admin = as_user(admin_user)
    admin.patch(uri("job", world.job), {"description": "x", "reschedule_interval": -1}, status=400)
    assert events(dbsession, object_type="job") == []


def test_cli_commands_are_audited_without_secrets(cli):
    os_user = f"cli:{getpass.getuser()}"
    cli.ok("add-group", "Ops")
    cli.ok("add-user", "dave", "--group", "Ops", input="first-password\n")
    cli.ok("set-password", "dave", input="second-password\n")
    cli.ok("add-worker", "w1")
    cli.ok("list", "users")
    with cli.session() as session:
        recorded = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        user = session.scalar(select(User).where(User.username == "dave"))
        worker = session.scalar(select(Worker))
        secret, password_hash = worker.secret, user.password_hash
    assert {e.actor for e in recorded} == {os_user}
    assert [(e.action, e.object_type) for e in recorded] == [
        ("create", "group"), ("create", "user"), ("update", "user"), ("create", "worker")]
    assert recorded[1].changes["password"] == [None, REDACTED]
    assert recorded[1].changes["groups"][1] != []
    assert recorded[2].changes == {"password": [REDACTED, REDACTED]}
    assert recorded[3].changes["secret"] == [None, REDACTED]
    text = json.dumps([e.changes for e in recorded])
    for hidden in (secret, password_hash, "first-password", "second-password"):
        assert hidden not in text


def test_cli_load_and_schedule_are_audited(cli, tmp_path):
    setup = tmp_path / "setup.yaml"
    setup.write_text(
        "workers: [{title: W, api_key: k1, secret: s1}]\n"
        "worker_pools: [{title: P, workers: [k1]}]\n"
        "projects: [{title: A, worker_pools: [P], webhook_urls: ['https://hooks.example/a']}]\n"
        "job_templates: [{project: A, title: T, body: \"#!/bin/sh\\n{{ content }}\\n\"}]\n"
        "jobs: [{project: A, job_template: T, title: J, worker_pool: P}]\n"
    )
    cli.ok("load", str(setup))
    cli.ok("load", str(setup))  # no change, no event
    cli.ok("schedule", "J")
    with cli.session() as session:
        recorded = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        job = session.scalar(select(Job))
    kinds = [(e.action, e.object_type) for e in recorded]
    assert kinds == [("create", "worker"), ("create", "worker_pool"), ("create", "project"),
                     ("create", "job_template"), ("create", "job"), ("schedule", "run")]
    assert recorded[2].changes["webhook_urls"] == [None, "https://hooks.example/a"]
    assert recorded[-1].changes["job"] == [None, job.id]
    assert recorded[-1].project_id == recorded[2].object_id


# --- reading the log --------------------------------------------------------------------


def test_audit_event_resource_filters_and_reach(as_user, admin_user, factory, world, dbsession):
    admin = as_user(admin_user)
    admin.patch(uri("job", world.job), {"description": "changed"})
    other = factory.world()
    admin.patch(uri("job", other.job), {"description": "changed too"})
    admin.post("/api/v1/run/", {"job": uri("job", world.job)})

    everything = admin.get(f"/api/v1/audit_event/?actor=user:{admin_user.username}"
                           "&action__in=update,schedule").json
    assert [e["action"] for e in everything["objects"]] == ["update", "update", "schedule"]
    logins = admin.get(f"/api/v1/audit_event/?actor=user:{admin_user.username}&action=login").json
    assert logins["meta"]["total_count"] == 1
    event = everything["objects"][0]
    assert set(event) == {"id", "resource_uri", "dts", "actor", "action", "object_type", "object_id",
                          "project_id", "changes"}
    assert event["changes"] == {"description": ["", "changed"]}
    assert admin.get("/api/v1/audit_event/?action=schedule&object_type=run").json["meta"]["total_count"] == 1
    assert admin.get(f"/api/v1/audit_event/?object_type=job&object_id={other.job.id}").json["meta"][
        "total_count"] == 1
    assert admin.get("/api/v1/audit_event/?dts__gte=2999-01-01T00:00:00").json["objects"] == []
    admin.get("/api/v1/audit_event/?changes=x", status=400)
    admin.post("/api/v1/audit_event/", {}, status=405)

    # A project admin sees the events of his project only; a viewer none.
    member = as_user(factory.user(groups=[world.admins]))
    seen = member.get("/api/v1/audit_event/?action__in=update,schedule").json["objects"]
    assert {e["object_id"] for e in seen if e["object_type"] == "job"} == {world.job.id}
    assert member.get(event["resource_uri"], status=200)
    other_event = [e for e in everything["objects"] if e["object_id"] == other.job.id][0]
    member.get(other_event["resource_uri"], status=403)
    viewer = as_user(factory.user(groups=[world.viewers]))
    assert viewer.get("/api/v1/audit_event/").json["objects"] == []


def test_the_audit_page(as_user, admin_user, factory, world, testapp):
    admin = as_user(admin_user)
    admin.patch(uri("job", world.job), {"description": "from the page test"})
    page = admin.get(f"/admin/audit?object_type=job&object_id={world.job.id}")
    assert "from the page test" in page.text
    assert 'data-id="' in page.text
    bad = admin.get("/admin/audit?object_id=abc", status=400)
    assert 'id="filter-error"' in bad.text
    # Not an administrator of anything: a 403 page; anonymous: the login form.
    viewer = as_user(factory.user(groups=[world.viewers]))
    viewer.get("/admin/audit", status=403)
    testapp.reset()
    res = testapp.get("/admin/audit", status=303)
    assert "/login" in res.headers["Location"]
