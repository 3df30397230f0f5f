"""The worker's hot calls: a small fixed number of SQL statements each, and
the two extensions of the fast path (the script in the claim's answer, the
final log in the return) beside the original steps."""
import pytest
from sqlalchemy import select

from jobrunner.models import Job, Run, RunLog
from tests.api.conftest import assert_error
from tests.conftest import now, uri

# Per call, beside the BEGIN and COMMIT (here SAVEPOINT and RELEASE): the
# worker comes from the process's cache, so these are the call's own.
STATEMENTS = {
    "list": 2,      # the runs, their logs' ids
    "claim": 4,     # the run (with its log's id), its project, the job's lock and script, the UPDATE
    "start": 4,     # the run, its project, the UPDATE, the job's policy under its lock
    "log": 4,       # the run, its project, is there a log, the INSERT
    "log_patch": 4,  # the log, its project, its run (the holder), the UPDATE
    "return": 5,    # the run, its project, the job locked (and whether it has children),
                    # the UPDATE (and whether the run was killed), the job's last schedule
}
# On PostgreSQL a return also sends the NOTIFY that wakes waiting workers
# (another schedule of the job may be enqueueable now).
NOTIFIES = {"return": 1}


def claim_body(worker):
    return {"enqueue_dts": now().isoformat(), "worker": uri("worker", worker)}


def return_body(**extra):
    return {"return_dts": now().isoformat(), "return_success": True, **extra}


def test_each_hot_call_costs_a_fixed_number_of_statements(world, factory, as_worker, count_statements,
                                                          connection):
    client = as_worker(world.worker)
    client.get("/api/v1/worker/")  # the worker is looked up once, then kept
    run = factory.run(world.job)
    log = {}

    def post_log():
        log["uri"] = client.post("/api/v1/run_log/", {"run": uri("run", run), "content": "x"}).json["resource_uri"]

    calls = {
        "list": lambda: client.get("/api/v1/run/?state=enqueueable&limit=8"),
        "claim": lambda: client.request("PATCH", uri("run", run), claim_body(world.worker), status=202),
        "start": lambda: client.request("PATCH", uri("run", run), {"start_dts": now().isoformat(), "pid": 42},
                                        status=202),
        "log": post_log,
        "log_patch": lambda: client.request("PATCH", log["uri"], {"content": "xy"}, status=202),
        "return": lambda: client.request("PATCH", uri("run", run), return_body(), status=202),
    }
    counts = {}
    for name, call in calls.items():
        with count_statements:
            call()
        counts[name] = [s for s in count_statements.statements
                        if not s.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))]
    notifies = NOTIFIES if connection.dialect.name == "postgresql" else {}
    expected = {name: count + notifies.get(name, 0) for name, count in STATEMENTS.items()}
    assert {name: len(s) for name, s in counts.items()} == expected, counts


# --- the script in the claim's answer ---------------------------------------------------


def test_the_claims_answer_carries_the_jobs_script(world, factory, as_worker):
    run = factory.run(world.job)
    res = as_worker(world.worker).request("PATCH", uri("run", run), claim_body(world.worker), status=202)
    assert res.json["script_content"] == world.job.script_content
    assert "echo hello" in res.json["script_content"]
    # And what the worker needs with it: the job's title and timeout.
    assert res.json["job_title"] == world.job.title
    assert res.json["job_timeout"] == world.job.timeout
    # Beside the run's usual fields.
    assert res.json["worker"] == uri("worker", world.worker)
    assert res.json["enqueue_dts"] is not None and res.json["id"] == run.id


def test_only_the_claims_answer_carries_the_script(world, factory, as_worker):
    client = as_worker(world.worker)
    run = factory.run(world.job)
    client.request("PATCH", uri("run", run), claim_body(world.worker), status=202)
    started = client.request("PATCH", uri("run", run), {"start_dts": now().isoformat()}, status=202)
    assert "script_content" not in started.json
    assert "script_content" not in client.get(uri("run", run)).json
    assert "log_content" not in started.json


# --- the final log in the return ----------------------------------------------------------


@pytest.fixture
def started_run(world, factory):
    return factory.run(world.job, worker_id=world.worker.id, enqueue_dts=now(), start_dts=now())


def stored_log(dbsession, run):
    dbsession.expire_all()
    return dbsession.scalars(select(RunLog.content).where(RunLog.run_id == run.id)).all()


def test_a_return_with_log_content_stores_the_log(world, started_run, as_worker, dbsession):
    res = as_worker(world.worker).request(
        "PATCH", uri("run", started_run), return_body(log_content="line 1\nline 2\n"), status=202)
    assert stored_log(dbsession, started_run) == ["line 1\nline 2\n"]
    assert res.json["return_dts"] is not None and res.json["return_success"] is True
    log_id = dbsession.scalar(select(RunLog.id).where(RunLog.run_id == started_run.id))
    assert res.json["run_log"] == f"/api/v1/run_log/{log_id}/"
    assert "log_content" not in res.json


def test_a_return_with_log_content_replaces_the_log(world, factory, started_run, as_worker, dbsession):
    log = factory.run_log(started_run, "partial\n")
    res = as_worker(world.worker).request(
        "PATCH", uri("run", started_run), return_body(log_content="partial\nand the end\n"), status=202)
    assert stored_log(dbsession, started_run) == ["partial\nand the end\n"]
    assert res.json["run_log"] == uri("run_log", log)


def test_a_second_return_with_a_log_is_409_and_changes_nothing(world, started_run, as_worker, dbsession):
    client = as_worker(world.worker)
    first = client.request("PATCH", uri("run", started_run), return_body(log_content="first\n"), status=202)
    res = client.request("PATCH", uri("run", started_run),
                         {"return_dts": now().isoformat(), "return_success": False, "log_content": "second\n"})
    assert_error(res, 409)
    assert stored_log(dbsession, started_run) == ["first\n"]
    run = dbsession.get(Run, started_run.id)
    assert run.return_success is True
    assert run.return_dts.isoformat().startswith(first.json["return_dts"][:19])


def test_a_non_holders_return_with_a_log_is_403_and_changes_nothing(world, factory, started_run, as_worker,
                                                                    dbsession):
    colleague = factory.worker()
    world.pool.workers.append(colleague)
    factory.db.flush()
    res = as_worker(colleague).request("PATCH", uri("run", started_run), return_body(log_content="forged\n"))
    assert_error(res, 403)
    assert stored_log(dbsession, started_run) == []
    dbsession.expire_all()
    assert dbsession.get(Run, started_run.id).return_dts is None
    assert dbsession.get(Job, world.job.id).last_completed_schedule_id is None


def test_log_content_without_the_return_is_400(world, started_run, as_worker, dbsession):
    client = as_worker(world.worker)
    for body in ({"log_content": "x"}, {"pid": 7, "log_content": "x"}, {"return_dts": None, "log_content": "x"}):
        res = client.request("PATCH", uri("run", started_run), body)
        assert "log_content" in assert_error(res, 400)["errors"], body
    assert stored_log(dbsession, started_run) == []
    assert dbsession.get(Run, started_run.id).pid is None


@pytest.mark.parametrize("bad", [None, 7, ["a"]])
def test_log_content_must_be_text(world, started_run, as_worker, bad):
    res = as_worker(world.worker).request("PATCH", uri("run", started_run), return_body(log_content=bad))
    assert "log_content" in assert_error(res, 400)["errors"]


def test_log_content_is_not_for_a_new_run(world, admin):
    res = admin.post("/api/v1/run/", {"job": uri("job", world.job), "log_content": "x"}, status=None)
    assert "log_content" in assert_error(res, 400)["errors"]


def test_log_content_is_bound_by_the_body_limit(world, started_run, as_worker, dbsession):
    # The same limit as a run_log's content: the request body's.
    huge = "x" * (1024 * 1024 + 1)
    res = as_worker(world.worker).request("PATCH", uri("run", started_run), return_body(log_content=huge))
    assert_error(res, 413)
    assert stored_log(dbsession, started_run) == []


# --- the original steps keep working --------------------------------------------------------


def test_the_original_steps_still_work(world, factory, as_worker, dbsession):
    client = as_worker(world.worker)
    run = factory.run(world.job)
    listed = client.get("/api/v1/run/?state=enqueueable").json["objects"]
    assert [r["id"] for r in listed] == [run.id]
    client.request("PATCH", uri("run", run), claim_body(world.worker), status=202)
    assert client.get(uri("job", world.job)).json["script_content"] == world.job.script_content
    client.request("PATCH", uri("run", run), {"start_dts": now().isoformat(), "pid": 42}, status=202)
    log_uri = client.post("/api/v1/run_log/", {"run": uri("run", run), "content": "a\n"}).json["resource_uri"]
    client.request("PATCH", log_uri, {"content": "a\nb\n"}, status=202)
    res = client.request("PATCH", uri("run", run), return_body(), status=202)
    assert res.json["run_log"] == log_uri
    assert stored_log(dbsession, run) == ["a\nb\n"]
    assert_error(client.request("PATCH", uri("run", run), return_body()), 409)
