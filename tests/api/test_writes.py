"""POST, PUT and PATCH that succeed; 405 and X-HTTP-Method-Override."""
from datetime import timedelta

import pytest

from jobrunner.models import Job, KillRequest, Run, RunLog, Worker
from tests.api.conftest import HOST, assert_error, signed_request
from tests.conftest import now, uri, utc


def job_body(world, **fields):
    body = {
        "title": "nightly report",
        "job_template": uri("job_template", world.template),
        "worker_pool": uri("worker_pool", world.pool),
        "script_content_partial": "echo report",
    }
    body.update(fields)
    return body


def test_post_job_is_201_with_location_and_body(admin, world, dbsession):
    res = admin.post("/api/v1/job/", job_body(
        world,
        description="sends the report",
        reschedule_interval=2,
        reschedule_interval_type="HOUR",
        reschedule_excludes=[{"start_time": "22:00", "end_time": "23:30", "note": "backups"}],
        notification_addresses=["ops@example.com", "dev@example.com"],
        disable_enqueue_after_fails=3,
        parent=uri("job", world.job),
    ))
    assert res.status_int == 201
    body = res.json
    assert res.headers["Location"] == f"http://{HOST}/api/v1/job/{body['id']}/"
    assert body["resource_uri"] == f"/api/v1/job/{body['id']}/"
    assert body["title"] == "nightly report"
    assert body["script_content"] == "#!/bin/sh\necho report\n"
    assert body["reschedule_excludes"] == [
        {"start_time": "22:00:00", "end_time": "23:30:00", "note": "backups"}]
    assert body["notification_addresses"] == ["ops@example.com", "dev@example.com"]
    assert body["parent"] == uri("job", world.job)
    assert body["fail_times"] == 0
    assert body["enqueue_is_enabled"] is True
    dbsession.expire_all()
    job = dbsession.get(Job, body["id"])
    assert job.title == "nightly report"
    assert job.parent_id == world.job.id
    assert job.reschedule_interval == 2
    assert admin.get(body["resource_uri"]).json == body


def test_post_job_accepts_bare_ids_for_relations(admin, world):
    body = admin.post("/api/v1/job/", job_body(
        world, job_template=world.template.id, worker_pool=str(world.pool.id))).json
    assert body["job_template"] == uri("job_template", world.template)
    assert body["worker_pool"] == uri("worker_pool", world.pool)


def test_post_run_is_manual(admin, world, dbsession):
    before = now()
    res = admin.post("/api/v1/run/", {"job": uri("job", world.job)})
    body = res.json
    assert res.headers["Location"].endswith(f"/api/v1/run/{body['id']}/")
    assert body["is_manual"] is True
    assert body["schedule_id"] == body["id"]
    assert body["schedule_children"] is True
    assert body["worker"] is None and body["enqueue_dts"] is None
    dbsession.expire_all()
    run = dbsession.get(Run, body["id"])
    assert before - timedelta(seconds=1) <= run.schedule_dts <= now() + timedelta(seconds=1)
    assert run.is_manual is True


def test_post_run_with_schedule_dts_and_schedule_children(admin, world):
    body = admin.post("/api/v1/run/", {
        "job": world.job.id, "schedule_dts": "2040-01-01 10:00", "schedule_children": False,
    }).json
    assert body["schedule_dts"] == "2040-01-01T09:00:00+00:00"
    assert body["schedule_children"] is False
    assert body["is_manual"] is True


def test_a_worker_posts_a_run(world, as_worker):
    body = as_worker(world.worker).post("/api/v1/run/", {"job": uri("job", world.job)}).json
    # Whoever posts it, a run posted through the API is manual.
    assert body["is_manual"] is True


def test_patch_and_put_job_are_202_with_the_object(admin, world, dbsession):
    res = admin.patch(uri("job", world.job), {"description": "patched", "reschedule_interval": 5,
                                              "reschedule_interval_type": "DAY"})
    assert res.status_int == 202
    assert res.json["description"] == "patched"
    assert res.json["reschedule_interval_type"] == "DAY"
    res = admin.put(uri("job", world.job), {"title": "renamed"})
    assert res.status_int == 202
    assert res.json["title"] == "renamed"
    assert res.json["description"] == "patched"
    dbsession.expire_all()
    job = dbsession.get(Job, world.job.id)
    assert (job.title, job.description, job.reschedule_interval) == ("renamed", "patched", 5)


def test_patch_job_rerenders_script_content(admin, world):
    body = admin.patch(uri("job", world.job), {"script_content_partial": "echo changed"}).json
    assert body["script_content"] == "#!/bin/sh\necho changed\n"


def test_put_back_the_object_as_read(admin, world, factory, dbsession):
    factory.job(world.template, world.pool, parent=world.job)
    world.job.fail_times = 2
    world.job.last_completed_schedule_id = 77
    dbsession.flush()
    read = admin.get(uri("job", world.job)).json
    assert read["children"] and read["script_content"]
    read["description"] = "changed"
    body = admin.put(uri("job", world.job), read).json
    assert body == {**read, "description": "changed"}
    # The same with PATCH.
    admin.patch(uri("job", world.job), body)


def test_put_back_a_job_that_has_a_parent(admin, world, factory):
    child = factory.job(world.template, world.pool, parent=world.job)
    read = admin.get(uri("job", child)).json
    assert admin.put(uri("job", child), read).json == read


def test_change_and_clear_a_parent(admin, world, factory, dbsession):
    other = factory.job(world.template, world.pool)
    assert admin.patch(uri("job", world.job), {"parent": other.id}).json["parent"] == uri("job", other)
    assert admin.patch(uri("job", world.job), {"parent": None}).json["parent"] is None


def test_worker_patches_itself(world, as_worker, dbsession):
    client = as_worker(world.worker)
    read = client.get(uri("worker", world.worker)).json
    body = client.patch(uri("worker", world.worker), {
        "ping_response_dts": "2030-01-01T00:00:00+00:00", "worker_version": "1.2.3",
        "concurrent_jobs": 8, "api_key": world.worker.api_key,
    }).json
    # The ping is stored as the server's time of the request, not the 2030 sent.
    assert body == {**read, "ping_response_dts": body["ping_response_dts"], "worker_version": "1.2.3",
                    "concurrent_jobs": 8}
    assert body["ping_response_dts"] < "2030"
    dbsession.expire_all()
    worker = dbsession.get(Worker, world.worker.id)
    assert (worker.worker_version, worker.concurrent_jobs) == ("1.2.3", 8)
    assert worker.ping_response_dts.isoformat() == body["ping_response_dts"]


def test_kill_request_and_run_log_writes(admin, world, factory, as_worker, dbsession):
    run = factory.run(world.job, worker=world.worker, enqueue_dts=utc(2030, 1, 1), start_dts=utc(2030, 1, 1))
    res = admin.post("/api/v1/kill_request/", {"run": uri("run", run)})
    kill = res.json
    assert res.headers["Location"].endswith(kill["resource_uri"])
    assert kill["run"] == uri("run", run)
    assert kill["schedule_dts"] is not None
    assert kill["enqueue_dts"] is None and kill["execute_dts"] is None

    worker = as_worker(world.worker)
    assert worker.patch(kill["resource_uri"], {"enqueue_dts": "2030-01-01T00:00:01+00:00"}).json[
        "enqueue_dts"] == "2030-01-01T00:00:01+00:00"
    worker.patch(kill["resource_uri"], {"execute_dts": "2030-01-01T00:00:02+00:00"})

    log = worker.post("/api/v1/run_log/", {"run": uri("run", run), "content": "line 1\n"})
    assert log.headers["Location"].endswith(log.json["resource_uri"])
    assert worker.patch(log.json["resource_uri"], {"content": "line 1\nline 2\n"}).json[
        "content"] == "line 1\nline 2\n"
    assert worker.get(uri("run", run)).json["run_log"] == log.json["resource_uri"]
    dbsession.expire_all()
    assert dbsession.get(KillRequest, kill["id"]).execute_dts == utc(2030, 1, 1, 0, 0, 2)
    assert dbsession.get(RunLog, log.json["id"]).content == "line 1\nline 2\n"


def test_kill_request_only_for_a_started_run(admin, world, factory, dbsession):
    scheduled = factory.run(world.job)
    returned = factory.run(world.job, worker=world.worker, enqueue_dts=utc(2030, 1, 1),
                           start_dts=utc(2030, 1, 1), return_dts=utc(2030, 1, 1), return_success=True)
    for run in (scheduled, returned):
        assert_error(admin.post("/api/v1/kill_request/", {"run": uri("run", run)}, status=409), 409)
    assert dbsession.query(KillRequest).count() == 0


def test_a_second_log_for_one_run_is_409(world, factory, as_worker):
    run = factory.run(world.job, worker=world.worker, enqueue_dts=utc(2030, 1, 1))
    factory.run_log(run, "first")
    res = as_worker(world.worker).post("/api/v1/run_log/", {"run": uri("run", run)}, status=409)
    assert_error(res, 409)


# --- 405 ---------------------------------------------------------------------

COLLECTIONS = {
    "group": "GET", "project": "GET", "worker_pool": "GET", "worker": "GET", "job_template": "GET",
    "job": "GET, POST", "run": "GET, POST", "kill_request": "GET, POST", "run_log": "GET, POST",
}
ITEMS = {
    "group": "GET", "project": "GET", "worker_pool": "GET", "worker": "GET, PATCH",
    "job_template": "GET", "job": "GET, PUT, PATCH", "run": "GET, PATCH", "kill_request": "GET, PATCH",
    "run_log": "GET, PATCH",
}


@pytest.fixture
def one_of_each(world, factory):
    run = factory.run(world.job, worker=world.worker, enqueue_dts=utc(2030, 1, 1), start_dts=utc(2030, 1, 1))
    kill = KillRequest(run=run, schedule_dts=utc(2030, 1, 1))
    factory.db.add(kill)
    log = factory.run_log(run)
    return {
        "group": world.viewers, "project": world.project, "worker_pool": world.pool,
        "worker": world.worker, "job_template": world.template, "job": world.job, "run": run,
        "kill_request": kill, "run_log": log,
    }


@pytest.mark.parametrize("name", sorted(COLLECTIONS))
def test_methods_a_resource_does_not_allow_are_405_with_allow(admin, one_of_each, name, dbsession):
    counts_before = _row_counts(dbsession)
    collection = f"/api/v1/{name}/"
    item = uri(name, one_of_each[name])
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        if method.lower() not in COLLECTIONS[name].lower():
            res = admin.request(method, collection, {})
            assert_error(res, 405)
            assert res.headers["Allow"] == COLLECTIONS[name], (method, name)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        if method not in ITEMS[name]:
            res = admin.request(method, item, {})
            assert_error(res, 405)
            assert res.headers["Allow"] == ITEMS[name], (method, name)
    assert _row_counts(dbsession) == counts_before


def test_405_for_workers_too(world, as_worker):
    client = as_worker(world.worker)
    for method, path in (("DELETE", uri("job", world.job)), ("POST", "/api/v1/project/"),
                         ("PATCH", uri("group", world.viewers)), ("DELETE", "/api/v1/run/"),
                         ("PUT", uri("worker", world.worker))):
        res = client.request(method, path, {})
        assert_error(res, 405)
        assert "Allow" in res.headers


def _row_counts(dbsession):
    dbsession.expire_all()
    return {model.__name__: dbsession.query(model).count() for model in (Job, Run, KillRequest, RunLog)}


# --- X-HTTP-Method-Override --------------------------------------------------


def test_method_override_patch_on_post_is_a_signed_patch(world, testapp, dbsession):
    path = uri("worker", world.worker)
    body = b'{"worker_version": "9.9"}'
    res = signed_request(testapp, world.worker, "POST", path, body, sign_method="PATCH",
                         headers={"X-HTTP-Method-Override": "PATCH"})
    assert res.status_int == 202, res.text
    assert res.json["worker_version"] == "9.9"
    dbsession.expire_all()
    assert dbsession.get(Worker, world.worker.id).worker_version == "9.9"


def test_method_override_signed_as_post_is_accepted(world, testapp, dbsession):
    # Tastypie clients sign the method on the wire, POST.
    path = uri("worker", world.worker)
    res = signed_request(testapp, world.worker, "POST", path, b'{"worker_version": "6.6"}',
                         sign_method="POST", headers={"X-HTTP-Method-Override": "PATCH"})
    assert res.status_int == 202, res.text
    dbsession.expire_all()
    assert dbsession.get(Worker, world.worker.id).worker_version == "6.6"


def test_method_override_signed_over_another_method_is_401(world, testapp, dbsession):
    path = uri("worker", world.worker)
    res = signed_request(testapp, world.worker, "POST", path, b'{"worker_version": "6.6"}',
                         sign_method="PUT", headers={"X-HTTP-Method-Override": "PATCH"})
    assert_error(res, 401)
    dbsession.expire_all()
    assert dbsession.get(Worker, world.worker.id).worker_version != "6.6"


def test_method_override_from_a_session(admin, world, dbsession):
    res = admin.request("POST", uri("job", world.job), {"description": "overridden"},
                        headers={"X-HTTP-Method-Override": "PATCH"})
    assert res.status_int == 202
    assert res.json["description"] == "overridden"
    # Without the override a POST on an item is not allowed.
    assert_error(admin.request("POST", uri("job", world.job), {"description": "x"}), 405)
