"""What dashboard users may see and do."""
import pytest

from jobrunner.models import Job, KillRequest, Run, Worker
from tests.api.conftest import assert_error
from tests.conftest import uri, utc
from tests.security.test_worker_reach import assert_hidden, listed, populate


def started_run(factory, world):
    return factory.run(world.job, worker=world.worker, enqueue_dts=utc(2030, 1, 1), start_dts=utc(2030, 1, 1))


def job_columns(dbsession, job):
    dbsession.expire_all()
    stored = dbsession.get(Job, job.id)
    return {c.key: getattr(stored, c.key) for c in Job.__table__.columns}


def counts(dbsession):
    dbsession.expire_all()
    return (dbsession.query(Run).count(), dbsession.query(KillRequest).count(), dbsession.query(Job).count())


@pytest.mark.parametrize("role", ["viewers", "admins"])
def test_a_user_sees_his_projects_and_what_hangs_below(world, other_world, factory, session_for, role):
    mine, theirs = populate(factory, world), populate(factory, other_world)
    client = session_for(groups=[getattr(world, role)])
    for name in mine:
        if name == "group":
            continue
        ids = listed(client, name)
        assert mine[name].id in ids, name
        assert theirs[name].id not in ids, name
        assert client.get(uri(name, mine[name])).json["id"] == mine[name].id
        assert_hidden(client, uri(name, theirs[name]), other_world.project.title,
                      getattr(theirs[name], "title", "\0"))
    assert listed(client, "project") == {world.project.id}


def test_a_user_without_groups_sees_nothing(world, factory, session_for):
    populate(factory, world)
    client = session_for()
    for name in ("project", "worker_pool", "worker", "job_template", "job", "run", "kill_request", "run_log",
                 "group"):
        assert listed(client, name) == set(), name
    assert_hidden(client, uri("job", world.job), world.job.title)


def test_groups_a_user_sees(world, other_world, factory, session_for):
    extra = factory.group()
    client = session_for(groups=[world.viewers, extra])
    assert listed(client, "group") == {world.viewers.id, extra.id}
    for group in (world.admins, other_world.viewers, other_world.admins):
        assert_hidden(client, uri("group", group), group.name)
    assert client.get(uri("group", extra)).json["name"] == extra.name


def test_a_viewer_may_only_look(world, factory, session_for, dbsession):
    run = started_run(factory, world)
    client = session_for(groups=[world.viewers])
    before_job, before_counts = job_columns(dbsession, world.job), counts(dbsession)
    attempts = [
        client.post("/api/v1/run/", {"job": uri("job", world.job)}, status="*"),
        client.post("/api/v1/kill_request/", {"run": uri("run", run)}, status="*"),
        client.patch(uri("job", world.job), {"enqueue_is_enabled": False}, status="*"),
        client.put(uri("job", world.job), {"enqueue_is_enabled": False}, status="*"),
        client.patch(uri("job", world.job), {"description": "x"}, status="*"),
        client.patch(uri("run", run), {"pid": 99}, status="*"),
        client.patch(uri("worker", world.worker), {"worker_version": "x"}, status="*"),
        client.post("/api/v1/job/", {"title": "x", "job_template": world.template.id,
                                     "worker_pool": world.pool.id}, status="*"),
    ]
    for res in attempts:
        assert_error(res, 403)
    assert job_columns(dbsession, world.job) == before_job
    assert counts(dbsession) == before_counts
    assert dbsession.get(Run, run.id).pid is None


def test_a_project_admin_schedules_a_run(world, session_for, dbsession):
    client = session_for(groups=[world.admins])
    body = client.post("/api/v1/run/", {"job": uri("job", world.job)}).json
    assert body["is_manual"] is True
    dbsession.expire_all()
    assert dbsession.get(Run, body["id"]).is_manual is True


def test_a_project_admin_kills_a_started_run_only(world, factory, session_for, dbsession):
    client = session_for(groups=[world.admins])
    run = started_run(factory, world)
    body = client.post("/api/v1/kill_request/", {"run": uri("run", run)}).json
    assert body["run"] == uri("run", run)
    scheduled = factory.run(world.job)
    assert_error(client.post("/api/v1/kill_request/", {"run": uri("run", scheduled)}, status=409), 409)
    dbsession.expire_all()
    assert dbsession.query(KillRequest).count() == 1


def test_a_project_admin_toggles_a_job(world, session_for, dbsession):
    client = session_for(groups=[world.admins])
    body = client.patch(uri("job", world.job), {"enqueue_is_enabled": False}).json
    assert body["enqueue_is_enabled"] is False
    dbsession.expire_all()
    assert dbsession.get(Job, world.job.id).enqueue_is_enabled is False
    assert client.put(uri("job", world.job), {"enqueue_is_enabled": True}).json["enqueue_is_enabled"] is True


def test_a_project_admin_puts_back_the_job_as_read(world, factory, session_for, dbsession):
    """The dashboard PUTs the object it read with enqueue_is_enabled flipped."""
    child = factory.job(world.template, world.pool, parent=world.job,
                        excludes=[(utc(2000, 1, 1, 22).time(), utc(2000, 1, 1, 23).time())])
    client = session_for(groups=[world.admins])
    for job in (world.job, child):
        read = client.get(uri("job", job)).json
        body = client.put(uri("job", job), {**read, "enqueue_is_enabled": False}).json
        assert body == {**read, "enqueue_is_enabled": False}
        dbsession.expire_all()
        assert dbsession.get(Job, job.id).enqueue_is_enabled is False


def test_a_project_admin_may_not_change_other_job_fields(world, other_world, session_for, dbsession):
    client = session_for(groups=[world.admins])
    before = job_columns(dbsession, world.job)
    for data in ({"description": "x"}, {"enqueue_is_enabled": False, "title": "renamed"},
                 {"script_content_partial": "rm -rf /"},
                 {"reschedule_interval": 5, "reschedule_interval_type": "HOUR"},
                 {"reschedule_excludes": [{"start_time": "01:00", "end_time": "02:00"}]},
                 {"worker_pool": other_world.pool.id}):
        for method in ("patch", "put"):
            assert_error(getattr(client, method)(uri("job", world.job), data, status="*"), 403)
    assert job_columns(dbsession, world.job) == before


def test_a_project_admin_may_not_patch_runs_or_workers(world, factory, session_for, dbsession):
    client = session_for(groups=[world.admins])
    run = started_run(factory, world)
    assert_error(client.patch(uri("run", run), {"pid": 5}, status="*"), 403)
    assert_error(client.patch(uri("run", run), {"return_dts": "2030-01-01T00:00:00+00:00",
                                                "return_success": True}, status="*"), 403)
    assert_error(client.patch(uri("worker", world.worker), {"enqueue_is_enabled": False}, status="*"), 403)
    assert_error(client.post("/api/v1/job/", {"title": "x", "job_template": world.template.id,
                                              "worker_pool": world.pool.id}, status="*"), 403)
    dbsession.expire_all()
    stored = dbsession.get(Run, run.id)
    assert (stored.pid, stored.return_dts) == (None, None)
    assert dbsession.get(Worker, world.worker.id).enqueue_is_enabled is True


def test_a_project_admin_has_no_power_over_another_project(world, other_world, factory, session_for,
                                                            dbsession):
    client = session_for(groups=[world.admins, other_world.viewers])
    run = started_run(factory, other_world)
    before = counts(dbsession)
    assert_error(client.post("/api/v1/run/", {"job": uri("job", other_world.job)}, status="*"), 403)
    assert_error(client.post("/api/v1/kill_request/", {"run": uri("run", run)}, status="*"), 403)
    assert_error(client.patch(uri("job", other_world.job), {"enqueue_is_enabled": False}, status="*"), 403)
    assert counts(dbsession) == before
    assert dbsession.get(Job, other_world.job.id).enqueue_is_enabled is True


def test_an_admin_does_everything(world, other_world, factory, admin, dbsession):
    populate(factory, world)
    populate(factory, other_world)
    for name in ("project", "job", "run", "worker", "group"):
        assert len(listed(admin, name)) >= 2, name
    assert listed(admin, "group") >= {world.viewers.id, world.admins.id, other_world.viewers.id}
    run = started_run(factory, other_world)
    admin.patch(uri("job", other_world.job), {"title": "renamed by admin", "enqueue_is_enabled": False})
    admin.patch(uri("worker", other_world.worker), {"enqueue_is_enabled": False})
    admin.post("/api/v1/run/", {"job": other_world.job.id})
    admin.post("/api/v1/kill_request/", {"run": run.id})
    admin.post("/api/v1/job/", {"title": "new", "job_template": world.template.id,
                                "worker_pool": world.pool.id})
    admin.patch(uri("run", factory.run(world.job)), {"schedule_children": False})
    dbsession.expire_all()
    assert dbsession.get(Job, other_world.job.id).title == "renamed by admin"
    assert dbsession.get(Worker, other_world.worker.id).enqueue_is_enabled is False


def test_a_session_cannot_ask_for_enqueueable_runs(world, factory, admin):
    factory.run(world.job)
    assert_error(admin.get("/api/v1/run/?state=enqueueable", status=400), 400)
