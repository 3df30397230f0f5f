"""`POST /api/v1/run/claim/`: a worker returns what it finished and claims,
and may start, due runs for its free slots, in one request. (Its `wait` is
tested in test_wait.py, its races in tests/scheduling/test_claim_races.py.)"""
from datetime import timedelta

import pytest
from sqlalchemy import select

from jobrunner.models import Job, Run
from tests.api.conftest import assert_error
from tests.conftest import now, uri

CLAIM = "/api/v1/run/claim/"


def stored(dbsession, run):
    dbsession.expire_all()
    return dbsession.get(Run, run.id)


def return_entry(run, **extra):
    return {"run": uri("run", run), "return_dts": now().isoformat(), "return_success": True,
            **extra}


def started_by(factory, run, worker):
    at = now() - timedelta(seconds=1)
    run.worker_id, run.enqueue_dts, run.start_dts = worker.id, at, at
    factory.db.flush()
    return run


def jobs_with_runs(factory, world, count):
    runs = []
    for index in range(count):
        job = factory.job(world.template, world.pool)
        runs.append(factory.run(job, schedule_dts=now() - timedelta(seconds=count - index)))
    return runs


def test_claims_and_starts_due_runs_in_schedule_order(world, factory, as_worker, dbsession):
    runs = jobs_with_runs(factory, world, 5)
    body = as_worker(world.worker).post(CLAIM, {"limit": 3, "start": True}, status=200).json
    assert [run["id"] for run in body["objects"]] == [run.id for run in runs[:3]]
    assert body["returns"] == []
    for answered, run in zip(body["objects"], runs):
        job = dbsession.get(Job, run.job_id)
        # What a single claim answers: the run item and what of its job the
        # worker needs to run it.
        assert answered["resource_uri"] == uri("run", run)
        assert answered["worker"] == uri("worker", world.worker)
        assert answered["script_content"] == job.script_content
        assert answered["job_title"] == job.title and answered["job_timeout"] == job.timeout
        assert answered["start_dts"] is not None and answered["enqueue_dts"] is not None
        row = stored(dbsession, run)
        assert row.worker_id == world.worker.id
        assert row.start_dts == row.enqueue_dts is not None
    for run in runs[3:]:
        assert stored(dbsession, run).enqueue_dts is None


def test_without_start_the_runs_are_only_claimed(world, factory, as_worker, dbsession):
    (run,) = jobs_with_runs(factory, world, 1)
    body = as_worker(world.worker).post(CLAIM, {"limit": 4}, status=200).json
    assert [r["id"] for r in body["objects"]] == [run.id]
    assert body["objects"][0]["start_dts"] is None
    row = stored(dbsession, run)
    assert row.enqueue_dts is not None and row.start_dts is None
    # The worker starts it as after a single claim.
    as_worker(world.worker).patch(uri("run", run), {"start_dts": now().isoformat()})


def test_one_run_of_a_job_at_a_time_and_nothing_twice(world, factory, as_worker, dbsession):
    early = factory.run(world.job, schedule_dts=now() - timedelta(minutes=2))
    factory.run(world.job, schedule_dts=now() - timedelta(minutes=1))
    client = as_worker(world.worker)
    body = client.post(CLAIM, {"limit": 10, "start": True}, status=200).json
    assert [r["id"] for r in body["objects"]] == [early.id]
    # The later schedule waits for the first; nothing is claimed again.
    assert client.post(CLAIM, {"limit": 10, "start": True}, status=200).json["objects"] == []


def test_only_runs_the_worker_may_take(world, factory, other_world, as_worker, dbsession):
    theirs = factory.run(other_world.job)
    not_due = factory.run(world.job, schedule_dts=now() + timedelta(hours=1))
    assert as_worker(world.worker).post(CLAIM, {"limit": 10}, status=200).json["objects"] == []
    assert stored(dbsession, theirs).enqueue_dts is None
    assert stored(dbsession, not_due).enqueue_dts is None


def test_limit_zero_claims_nothing(world, factory, as_worker, dbsession):
    (run,) = jobs_with_runs(factory, world, 1)
    assert as_worker(world.worker).post(CLAIM, {"limit": 0, "start": True}, status=200).json == {
        "objects": [], "returns": []}
    assert stored(dbsession, run).enqueue_dts is None


def test_returns_are_done_as_their_patch_does_them(world, factory, as_worker, dbsession):
    mine = started_by(factory, factory.run(world.job), world.worker)
    other_job = factory.job(world.template, world.pool)
    with_log = started_by(factory, factory.run(other_job), world.worker)
    due = factory.run(factory.job(world.template, world.pool))
    body = as_worker(world.worker).post(CLAIM, {"limit": 1, "start": True, "returns": [
        return_entry(mine, pid=4242),
        return_entry(with_log, return_success=False, timed_out=True, log_content="the end\n"),
    ]}, status=200).json
    assert body["returns"] == [{"resource_uri": uri("run", mine), "status": 202},
                               {"resource_uri": uri("run", with_log), "status": 202}]
    assert [r["id"] for r in body["objects"]] == [due.id]
    row = stored(dbsession, mine)
    assert row.return_success is True and row.pid == 4242 and row.return_dts is not None
    row = stored(dbsession, with_log)
    assert row.return_success is False and row.timed_out is True
    assert row.run_log.content == "the end\n"
    # What a return sets in motion followed: the job's failure count.
    dbsession.expire_all()
    assert dbsession.get(Job, other_job.id).fail_times == 1
    assert dbsession.get(Job, world.job.id).fail_times == 0


def test_a_refused_return_fails_alone(world, factory, other_world, as_worker, dbsession):
    returned = started_by(factory, factory.run(world.job), world.worker)
    returned.return_dts, returned.return_success = now(), True
    theirs = started_by(factory, factory.run(other_world.job), other_world.worker)
    colleague = factory.worker()
    world.pool.workers.append(colleague)
    held = started_by(factory, factory.run(factory.job(world.template, world.pool)), colleague)
    never_started = factory.run(factory.job(world.template, world.pool),
                                schedule_dts=now() + timedelta(hours=1))
    good = started_by(factory, factory.run(factory.job(world.template, world.pool)), world.worker)
    factory.db.flush()
    entries = [
        return_entry(returned), return_entry(theirs), return_entry(held),
        return_entry(never_started), {"run": "/api/v1/run/999999/", "return_dts": now().isoformat()},
        return_entry(good, pid="not a pid"), return_entry(good),
    ]
    body = as_worker(world.worker).post(CLAIM, {"limit": 0, "returns": entries}, status=200).json
    statuses = [(entry["resource_uri"], entry["status"]) for entry in body["returns"]]
    assert statuses == [
        (uri("run", returned), 409), (uri("run", theirs), 403), (uri("run", held), 403),
        (uri("run", never_started), 403), ("/api/v1/run/999999/", 404),
        (uri("run", good), 400), (uri("run", good), 202),
    ]
    assert "pid" in body["returns"][5]["errors"]
    # Each refused as its own PATCH is refused, with the same reasons.
    client = as_worker(world.worker)
    for sent, answer in zip(entries[:6], body["returns"]):
        res = client.request("PATCH", answer["resource_uri"],
                             {name: value for name, value in sent.items() if name != "run"})
        assert (res.status_int, res.json) == (
            answer["status"], {"error": answer["error"], "errors": answer["errors"]})
    # The refused ones changed nothing; the good one is stored.
    assert stored(dbsession, held).return_dts is None
    assert stored(dbsession, never_started).return_dts is None
    assert stored(dbsession, theirs).return_dts is None
    row = stored(dbsession, good)
    assert row.return_success is True and row.pid is None


BAD_BODIES = [
    ({}, "limit"),
    ({"limit": -1}, "limit"),
    ({"limit": 1001}, "limit"),
    ({"limit": "3"}, "limit"),
    ({"limit": True}, "limit"),
    ({"limit": 1.5}, "limit"),
    ({"limit": 1, "start": "yes"}, "start"),
    ({"limit": 1, "wait": 0}, "wait"),
    ({"limit": 1, "wait": 30.5}, "wait"),
    ({"limit": 1, "wait": "5"}, "wait"),
    ({"limit": 1, "wait": True}, "wait"),
    ({"limit": 1, "worker": "/api/v1/worker/1/"}, "worker"),
    ({"limit": 1, "returns": {}}, "returns"),
    ({"limit": 1, "returns": ["x"]}, "returns"),
    ({"limit": 1, "returns": [{"run": "/api/v1/run/1/"}]}, "returns"),
    ({"limit": 1, "returns": [{"run": "/api/v1/run/1/", "return_dts": None}]}, "returns"),
    ({"limit": 1, "returns": [{"return_dts": "2026-01-01T00:00:00+00:00"}]}, "returns"),
    ({"limit": 1, "returns": [{"run": "/api/v1/job/1/", "return_dts": "2026-01-01T00:00:00+00:00"}]},
     "returns"),
    ({"limit": 1, "returns": [{"run": 1, "return_dts": "2026-01-01T00:00:00+00:00",
                               "worker": "/api/v1/worker/1/"}]}, "returns"),
    ({"limit": 1, "returns": [{"run": 1, "return_dts": "2026-01-01T00:00:00+00:00",
                               "start_dts": "2026-01-01T00:00:00+00:00"}]}, "returns"),
]


@pytest.mark.parametrize("data, field", BAD_BODIES)
def test_a_bad_body_is_a_400_naming_the_field_and_changes_nothing(
        world, factory, as_worker, dbsession, data, field):
    due = factory.run(factory.job(world.template, world.pool))
    mine = started_by(factory, factory.run(world.job), world.worker)
    if "returns" in data and isinstance(data["returns"], list) and data["returns"]:
        # A good return beside the bad one is not done either.
        data = {**data, "returns": [return_entry(mine), *data["returns"]]}
    res = as_worker(world.worker).request("POST", CLAIM, data)
    body = assert_error(res, 400)
    assert field in body["errors"], body
    assert stored(dbsession, due).enqueue_dts is None
    assert stored(dbsession, mine).return_dts is None


@pytest.mark.parametrize("raw", [b"", b"[]", b"not json", b'{"limit": 1', b"\xff\xfe"])
def test_a_body_that_is_no_object_is_a_400(world, as_worker, raw):
    assert_error(as_worker(world.worker).request("POST", CLAIM, raw=raw,
                                                 headers={"Content-Type": "application/json"}), 400)


def test_only_a_worker_claims(world, factory, session_for, anonymous, dbsession):
    run = factory.run(world.job)
    admin = session_for(is_admin=True)
    assert_error(admin.request("POST", CLAIM, {"limit": 1}), 403)
    res = anonymous.post_json(CLAIM, {"limit": 1}, expect_errors=True)
    assert res.status_int in (401, 403)
    assert stored(dbsession, run).enqueue_dts is None


def test_claim_is_a_post_on_the_run_collection(world, as_worker):
    client = as_worker(world.worker)
    res = client.get(CLAIM, status=405)
    assert res.headers["Allow"].upper().split(", ") == ["POST"] or "POST" in res.headers["Allow"].upper()
    assert_error(client.request("PATCH", CLAIM, {"limit": 1}), 405)
    assert_error(client.request("POST", "/api/v1/job/claim/", {"limit": 1}), 404)
    assert_error(client.request("POST", "/api/v1/run/claims/", {"limit": 1}), 404)


def test_the_cost_does_not_grow_with_the_runs(world, factory, as_worker, count_statements):
    client = as_worker(world.worker)
    client.get("/api/v1/worker/")  # the worker is looked up once, then kept

    def statements(count):
        runs = jobs_with_runs(factory, world, count)
        with count_statements:
            got = client.post(CLAIM, {"limit": count, "start": True}, status=200).json["objects"]
        assert len(got) == count
        for run in runs:
            run.return_dts = now()
        factory.db.flush()
        return [s for s in count_statements.statements
                if not s.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))]

    one = statements(1)
    assert len(statements(20)) == len(one), one
