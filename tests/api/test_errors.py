"""Bad input on writes: a clear 4xx JSON error that changes nothing."""
import json

import pytest

from jobrunner.models import Job, KillRequest, Run, RunLog, Worker
from tests.api.conftest import assert_error, call_wsgi
from tests.conftest import uri, utc


def job_state(dbsession, job_id):
    """Everything a failed write could have touched on a job."""
    dbsession.expire_all()
    job = dbsession.get(Job, job_id)
    columns = {c.key: getattr(job, c.key) for c in Job.__table__.columns}
    excludes = [(e.start_time, e.end_time, e.note) for e in job.reschedule_excludes]
    return columns, excludes, dbsession.query(Job).count(), dbsession.query(Run).count()


@pytest.fixture
def job_before(world, dbsession):
    return job_state(dbsession, world.job.id)


def patch_job_is_rejected(client, world, dbsession, job_before, data, status=400, field=None):
    body = assert_error(client.patch(uri("job", world.job), data, status=status), status)
    if field is not None:
        assert field in body["errors"], body
    assert job_state(dbsession, world.job.id) == job_before
    return body


@pytest.mark.parametrize("data, field", [
    ({"fail_times": 3}, "fail_times"),
    ({"script_content": "#!/bin/sh\nrm -rf /\n"}, "script_content"),
    ({"last_completed_schedule_id": 5}, "last_completed_schedule_id"),
    ({"children": ["/api/v1/job/1/"]}, "children"),
    ({"id": 123456}, "id"),
    ({"resource_uri": "/api/v1/job/123456/"}, "resource_uri"),
])
def test_read_only_field_with_another_value_is_400(admin, world, dbsession, job_before, data, field):
    patch_job_is_rejected(admin, world, dbsession, job_before, {"description": "x", **data}, field=field)


def test_read_only_field_with_the_same_value_is_accepted(admin, world):
    job = admin.get(uri("job", world.job)).json
    same = {name: job[name] for name in ("id", "resource_uri", "fail_times", "script_content",
                                         "children", "last_completed_schedule_id")}
    assert admin.patch(uri("job", world.job), {**same, "description": "y"}).json["description"] == "y"


def test_read_only_on_create_is_400(admin, world, dbsession):
    # ("is_manual": true is what a create sets: Tastypie clients send it.)
    runs = dbsession.query(Run).count()
    for extra in ({"is_manual": False}, {"is_manual": 1}, {"schedule_id": 1}, {"run_log": None}):
        body = assert_error(admin.post("/api/v1/run/", {"job": world.job.id, **extra}, status=400), 400)
        assert set(extra) <= set(body["errors"])
    assert dbsession.query(Run).count() == runs


@pytest.mark.parametrize("data, field", [
    ({"bogus": 1}, "bogus"),
    ({"secret": "stolen"}, "secret"),
    ({"job_template_id": 1}, "job_template_id"),
])
def test_unknown_field_is_400(admin, world, dbsession, job_before, data, field):
    patch_job_is_rejected(admin, world, dbsession, job_before, {"title": "changed", **data}, field=field)


@pytest.mark.parametrize("data, field", [
    ({"title": 5}, "title"),
    ({"title": ["a"]}, "title"),
    ({"description": {"a": 1}}, "description"),
    ({"enqueue_is_enabled": "yes"}, "enqueue_is_enabled"),
    ({"enqueue_is_enabled": 1}, "enqueue_is_enabled"),
    ({"reschedule_interval": "1"}, "reschedule_interval"),
    ({"reschedule_interval": 1.5}, "reschedule_interval"),
    ({"reschedule_interval": 2**40}, "reschedule_interval"),
    ({"reschedule_interval": True}, "reschedule_interval"),
    ({"reschedule_interval_type": "YEAR"}, "reschedule_interval_type"),
    ({"reschedule_interval_type": 1}, "reschedule_interval_type"),
    ({"notification_addresses": "not an address"}, "notification_addresses"),
    ({"notification_addresses": [1, 2]}, "notification_addresses"),
    ({"notification_addresses": ["nul\x00@example.com"]}, "notification_addresses"),
    ({"title": "x" * 256}, "title"),
    ({"reschedule_excludes": [{"start_time": "01:00", "end_time": "02:00", "note": "n" * 256}]},
     "reschedule_excludes"),
    ({"reschedule_excludes": [{"start_time": "01:00", "end_time": "02:00", "note": "\x00"}]},
     "reschedule_excludes"),
    ({"reschedule_excludes": [{"start_time": "01:00+02:00", "end_time": "02:00"}]}, "reschedule_excludes"),
    ({"reschedule_excludes": [{"start_time": "25:00", "end_time": "23:00"}]}, "reschedule_excludes"),
    ({"reschedule_excludes": [{"start_time": "22:00"}]}, "reschedule_excludes"),
    ({"reschedule_excludes": "22:00-23:00"}, "reschedule_excludes"),
    ({"reschedule_excludes": [{"start_time": "22:00", "end_time": "23:00", "x": 1}]},
     "reschedule_excludes"),
    ({"worker_pool": 1.5}, "worker_pool"),
    ({"worker_pool": True}, "worker_pool"),
    ({"worker_pool": {"id": 1}}, "worker_pool"),
    ({"script_content_partial": "nul \x00 byte"}, "script_content_partial"),
])
def test_wrong_type_is_400(admin, world, dbsession, job_before, data, field):
    patch_job_is_rejected(admin, world, dbsession, job_before, {"description": "changed", **data},
                          field=field)


@pytest.mark.parametrize("field", ["title", "enqueue_is_enabled", "job_template", "worker_pool",
                                   "run_on_all_workers", "script_content_partial"])
def test_null_on_a_non_nullable_field_is_400(admin, world, dbsession, job_before, field):
    patch_job_is_rejected(admin, world, dbsession, job_before, {"description": "changed", field: None},
                          field=field)


def test_null_where_allowed(admin, world):
    body = admin.patch(uri("job", world.job), {"reschedule_interval": None, "parent": None,
                                               "disable_enqueue_after_fails": None}).json
    assert body["reschedule_interval"] is None


@pytest.mark.parametrize("raw", [
    b"{not json",
    b'{"title": "x",}',
    b"",
    b"   ",
    b"\xff\xfe{}",
    b'{"title": "\xff"}',
    b"[1, 2]",
    b'"a string"',
    b"null",
    b"42",
    b'[{"title": "x"}]',
])
def test_malformed_or_non_object_body_is_400(admin, world, as_worker, dbsession, job_before, raw):
    assert_error(admin.request("PATCH", uri("job", world.job), raw=raw), 400)
    assert_error(admin.request("POST", "/api/v1/run/", raw=raw), 400)
    assert_error(as_worker(world.worker).request("PATCH", uri("worker", world.worker), raw=raw), 400)
    assert job_state(dbsession, world.job.id) == job_before


@pytest.mark.parametrize("value", ["/api/v1/worker/1/", "/api/v1/worker_pool/", "/api/v2/job/1/",
                                   "job/1", "http://elsewhere/api/v1/job/1/", "abc", "-1", ""])
def test_relation_uri_of_another_resource_is_400(admin, world, dbsession, value):
    runs = dbsession.query(Run).count()
    body = assert_error(admin.post("/api/v1/run/", {"job": value}, status=400), 400)
    assert "job" in body["errors"]
    assert dbsession.query(Run).count() == runs


def test_relation_uri_of_another_resource_on_patch_is_400(admin, world, dbsession, job_before):
    patch_job_is_rejected(admin, world, dbsession, job_before,
                          {"worker_pool": uri("worker", world.worker)}, field="worker_pool")
    patch_job_is_rejected(admin, world, dbsession, job_before,
                          {"parent": uri("run", world.job)}, field="parent")


@pytest.mark.parametrize("field, value", [
    ("worker_pool", "/api/v1/worker_pool/987654/"),
    ("job_template", 987654),
    ("parent", "/api/v1/job/987654/"),
    ("parent", 2**31 - 1),
    ("parent", 2**40),
])
def test_unknown_relation_id_is_400(admin, world, dbsession, job_before, field, value):
    patch_job_is_rejected(admin, world, dbsession, job_before, {field: value}, field=field)


def test_unknown_job_on_run_post_is_400(admin, world, dbsession):
    body = assert_error(admin.post("/api/v1/run/", {"job": "/api/v1/job/987654/"}, status=400), 400)
    assert "job" in body["errors"]
    body = assert_error(admin.post("/api/v1/kill_request/", {"run": 987654}, status=400), 400)
    assert "run" in body["errors"]
    assert dbsession.query(Run).count() == 0


def test_required_fields_on_create(admin, world, dbsession):
    body = assert_error(admin.post("/api/v1/job/", {"title": "x"}, status=400), 400)
    assert {"job_template", "worker_pool"} <= set(body["errors"])
    assert "job" in assert_error(admin.post("/api/v1/run/", {}, status=400), 400)["errors"]
    assert "run" in assert_error(admin.post("/api/v1/kill_request/", {}, status=400), 400)["errors"]
    assert dbsession.query(Job).count() == 1


@pytest.mark.parametrize("path", [
    "/api/v1/job/abc/", "/api/v1/job/1.0/", "/api/v1/job/-1/", "/api/v1/job/%C2%B2/",
    "/api/v1/job/%D9%A1/", "/api/v1/job/1e3/", "/api/v1/job/99999999999999999999999999/",
    "/api/v1/job/987654/", "/api/v1/run/987654/", "/api/v1/worker/987654/",
])
def test_non_numeric_or_unknown_item_id_is_404(admin, world, path):
    assert_error(admin.get(path, status=404), 404)
    assert_error(admin.patch(path, {"description": "x"}, status=404), 404)


def test_unknown_item_is_404_for_workers(world, as_worker):
    client = as_worker(world.worker)
    assert_error(client.get("/api/v1/run/987654/", status=404), 404)
    assert_error(client.patch("/api/v1/worker/abc/", {"worker_version": "1"}, status=404), 404)


def test_body_over_the_limit_is_413(admin, world, as_worker, dbsession, job_before):
    big = "x" * (1024 * 1024)
    res = admin.patch(uri("job", world.job), {"description": big}, status=413)
    assert_error(res, 413)
    assert job_state(dbsession, world.job.id) == job_before
    res = as_worker(world.worker).patch(uri("worker", world.worker), {"worker_version": big}, status=413)
    assert_error(res, 413)
    dbsession.expire_all()
    assert dbsession.get(Worker, world.worker.id).worker_version != big


def test_body_just_under_the_limit_is_accepted(admin, world):
    padding = 1024 * 1024 - len('{"description": ""}') - 1
    res = admin.patch(uri("job", world.job), {"description": "y" * padding})
    assert len(res.json["description"]) == padding


def test_body_over_the_limit_without_content_length_is_413(admin, world, dbsession, job_before):
    """A chunked body (no Content-Length) is cut off at the limit too."""
    body = b'{"description": "' + b"z" * (1024 * 1024 + 10) + b'"}'
    status, _ = call_wsgi(admin, "PATCH", uri("job", world.job), body=body, CONTENT_LENGTH="",
                          HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input_terminated": True})
    assert status == "413 Request Entity Too Large"
    assert job_state(dbsession, world.job.id) == job_before


@pytest.mark.parametrize("path, query_string", [
    ("/api/v1/job/\xff/", ""),
    ("/api/v1/\xff/", ""),
    ("/api/v1/job/", "title=%ff"),
    ("/api/v1/job/", "ti%fftle=x"),
    ("/api/v1/job/", "title=\xff"),
    ("/login", "next=%ff"),
])
def test_a_url_that_is_not_utf8_is_400(admin, world, path, query_string):
    # WSGI carries the URL's bytes as latin-1 characters.
    status, body = call_wsgi(admin, "GET", path, query_string)
    assert status == "400 Bad Request"
    assert set(json.loads(body)) == {"error", "errors"}


@pytest.mark.parametrize("query", ["title=%00", "title__in=a,%00", "job__title=a%00b", "worker__api_key=%00"])
def test_nul_in_a_filter_value_is_400(admin, world, query):
    path = "/api/v1/job/" if query.startswith("title") else "/api/v1/run/"
    assert_error(admin.get(f"{path}?{query}", status=400), 400)


@pytest.mark.parametrize("raw", [
    b'{"description": "lone \\ud800 surrogate"}',
    b'{"description": "\\udfff"}',
    b'{"\\ud800": 1}',
    b"[" * 100000,
    b'{"a": ' * 100000,
])
def test_json_no_database_can_store_is_400(admin, world, dbsession, job_before, raw):
    assert_error(admin.request("PATCH", uri("job", world.job), raw=raw), 400)
    assert job_state(dbsession, world.job.id) == job_before


def test_duplicate_job_title_in_the_template_is_400(admin, world, factory, dbsession, job_before):
    other = factory.job(world.template, world.pool)
    job_before = job_state(dbsession, world.job.id)
    patch_job_is_rejected(admin, world, dbsession, job_before, {"title": other.title}, field="title")
    body = assert_error(admin.post("/api/v1/job/", {
        "title": world.job.title, "job_template": world.template.id, "worker_pool": world.pool.id,
    }, status=400), 400)
    assert "title" in body["errors"]
    assert dbsession.query(Job).count() == 2
    # The same title in another template is fine.
    template = factory.template(world.project)
    admin.post("/api/v1/job/", {"title": world.job.title, "job_template": template.id,
                                "worker_pool": world.pool.id})


def test_worker_pool_not_of_the_project_is_400(admin, world, other_world, factory, dbsession, job_before):
    patch_job_is_rejected(admin, world, dbsession, job_before, {"worker_pool": other_world.pool.id},
                          field="worker_pool")
    loose_pool = factory.pool()
    patch_job_is_rejected(admin, world, dbsession, job_before, {"worker_pool": loose_pool.id},
                          field="worker_pool")
    body = assert_error(admin.post("/api/v1/job/", {
        "title": "new", "job_template": world.template.id, "worker_pool": other_world.pool.id,
    }, status=400), 400)
    assert "worker_pool" in body["errors"]


def test_parent_of_another_project_is_400(admin, world, other_world, dbsession, job_before):
    patch_job_is_rejected(admin, world, dbsession, job_before, {"parent": other_world.job.id},
                          field="parent")


def test_a_cycle_in_a_job_chain_is_400(admin, world, factory, dbsession):
    a = world.job
    b = factory.job(world.template, world.pool, parent=a)
    c = factory.job(world.template, world.pool, parent=b)
    for job, parent in ((a, a), (a, b), (a, c), (b, c), (b, b)):
        before = job_state(dbsession, job.id)
        body = assert_error(admin.patch(uri("job", job), {"parent": uri("job", parent)}, status=400), 400)
        assert "parent" in body["errors"]
        assert job_state(dbsession, job.id) == before
    # Moving c under a is no cycle.
    admin.patch(uri("job", c), {"parent": uri("job", a)})


def test_bad_interval_is_400(admin, world, dbsession, job_before):
    patch_job_is_rejected(admin, world, dbsession, job_before,
                          {"reschedule_interval": 0, "reschedule_interval_type": "HOUR"},
                          field="reschedule_interval")
    patch_job_is_rejected(admin, world, dbsession, job_before,
                          {"reschedule_interval": -1, "reschedule_interval_type": "HOUR"},
                          field="reschedule_interval")


def test_a_rejected_write_changes_nothing_even_when_part_was_valid(admin, world, dbsession, job_before):
    """The valid fields of a rejected PATCH are not stored either."""
    patch_job_is_rejected(admin, world, dbsession, job_before, {
        "description": "valid", "title": "valid too", "reschedule_excludes": [],
        "notification_addresses": ["ok@example.com"], "worker_pool": 987654,
    }, field="worker_pool")
    patch_job_is_rejected(admin, world, dbsession, job_before, {
        "description": "valid", "reschedule_excludes": [{"start_time": "01:00", "end_time": "02:00"}],
        "parent": uri("job", world.job),
    }, field="parent")


def test_kill_request_and_run_log_bad_input(world, factory, as_worker, admin, dbsession):
    run = factory.run(world.job, worker=world.worker, enqueue_dts=utc(2030, 1, 1), start_dts=utc(2030, 1, 1))
    kill = KillRequest(run=run, schedule_dts=utc(2030, 1, 1))
    factory.db.add(kill)
    factory.db.flush()
    worker = as_worker(world.worker)
    assert_error(worker.patch(uri("kill_request", kill), {"schedule_dts": "2031-01-01T00:00:00+00:00"},
                              status=400), 400)
    assert_error(worker.patch(uri("kill_request", kill), {"execute_dts": "soon"}, status=400), 400)
    assert_error(worker.patch(uri("kill_request", kill), {"run": uri("run", factory.run(world.job))},
                              status=400), 400)
    assert_error(admin.post("/api/v1/kill_request/", {"run": run.id, "execute_dts": "2031-01-01"},
                            status=400), 400)
    assert_error(worker.post("/api/v1/run_log/", {"run": run.id, "content": 5}, status=400), 400)
    assert_error(worker.post("/api/v1/run_log/", {"content": "no run"}, status=400), 400)
    dbsession.expire_all()
    kill = dbsession.get(KillRequest, kill.id)
    assert (kill.execute_dts, kill.schedule_dts) == (None, utc(2030, 1, 1))
    assert dbsession.query(RunLog).count() == 0
    assert dbsession.query(KillRequest).count() == 1


def test_worker_field_bad_input(world, as_worker, dbsession):
    worker = as_worker(world.worker)
    for data in ({"api_key": "another"}, {"concurrent_jobs": -1}, {"concurrent_jobs": "4"},
                 {"enqueue_is_enabled": None}, {"secret": "x"}, {"title": None}):
        assert_error(worker.patch(uri("worker", world.worker), data, status=400), 400)
    dbsession.expire_all()
    stored = dbsession.get(Worker, world.worker.id)
    assert (stored.api_key, stored.concurrent_jobs, stored.secret) == (world.worker.api_key, 4, "s3cret")
