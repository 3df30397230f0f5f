"""What the dashboard says beyond the REST form: killed runs, runs held by a
disabled job, a job's runs by latest activity, and the workers' health."""
from datetime import timedelta

from jobrunner.models import KillRequest

from tests.conftest import now, uri


def overview_runs(client, state):
    return client.get("/dashboard/overview.json").json["sections"][state]["objects"]


def returned_run(factory, world, job=None, success=False, **kw):
    t = now()
    kw.setdefault("schedule_dts", t - timedelta(minutes=5))
    return factory.run(job or world.job, enqueue_dts=t - timedelta(minutes=4), start_dts=t - timedelta(minutes=3),
                       return_dts=t - timedelta(minutes=2), return_success=success, worker=world.worker, **kw)


# --- killed --------------------------------------------------------------------


def test_a_run_whose_kill_request_was_executed_is_killed_everywhere(world, factory, as_user):
    killed = returned_run(factory, world)
    factory._add(KillRequest(run=killed, schedule_dts=now(), enqueue_dts=now(), execute_dts=now()))
    world.job.last_completed_schedule_id = killed.schedule_id
    other_job = factory.job(world.template, world.pool)
    failed = returned_run(factory, world, job=other_job)
    other_job.last_completed_schedule_id = failed.schedule_id
    factory.db.flush()
    client = as_user(groups=[world.viewers])

    completed = {run["id"]: run for run in overview_runs(client, "last_completed")}
    assert completed[killed.id]["killed"] is True
    assert completed[failed.id]["killed"] is False
    runs = client.get(f"/dashboard/jobs/{world.job.id}/runs.json").json["runs"]
    assert [(run["id"], run["killed"]) for run in runs] == [(killed.id, True)]
    assert client.get(f"/dashboard/runs/{killed.id}.json").json["killed"] is True
    assert client.get(f"/dashboard/runs/{failed.id}.json").json["killed"] is False


def test_a_kill_request_nobody_picked_up_does_not_make_a_run_killed(world, factory, as_user):
    run = returned_run(factory, world)
    factory._add(KillRequest(run=run, schedule_dts=now()))
    client = as_user(groups=[world.viewers])
    assert client.get(f"/dashboard/runs/{run.id}.json").json["killed"] is False


# --- disabled jobs -------------------------------------------------------------


def test_the_due_run_of_a_disabled_job_is_held_and_says_the_job_is_disabled(world, factory, as_user):
    world.job.enqueue_is_enabled = False
    due = factory.run(world.job, schedule_dts=now() - timedelta(minutes=1))
    manual = factory.run(world.job, schedule_dts=now() - timedelta(minutes=1), is_manual=True)
    other = factory.run(factory.job(world.template, world.pool))
    client = as_user(groups=[world.viewers])

    scheduled = {run["id"]: run for run in overview_runs(client, "scheduled")}
    assert (scheduled[due.id]["job_enabled"], scheduled[due.id]["held"]) == (False, True)
    # A manual run ignores the switches: a worker takes it.
    assert (scheduled[manual.id]["job_enabled"], scheduled[manual.id]["held"]) == (False, False)
    assert (scheduled[other.id]["job_enabled"], scheduled[other.id]["held"]) == (True, False)


def test_a_disabled_pool_holds_the_runs_of_an_enabled_job(world, factory, as_user):
    world.pool.enqueue_is_enabled = False
    due = factory.run(world.job)
    run = as_user(groups=[world.viewers]).get(f"/dashboard/runs/{due.id}.json").json
    assert (run["job_enabled"], run["held"]) == (True, True)


# --- a job's runs ------------------------------------------------------------------


def test_a_jobs_runs_put_the_waiting_ones_apart_and_the_rest_by_latest_activity(world, factory, as_user):
    t = now()
    job = world.job
    # Scheduled long ago but returned just now: the newest activity.
    long_run = factory.run(job, schedule_dts=t - timedelta(hours=3), enqueue_dts=t - timedelta(hours=3),
                           start_dts=t - timedelta(hours=3), return_dts=t - timedelta(seconds=5),
                           return_success=True, worker=world.worker)
    older = factory.run(job, schedule_dts=t - timedelta(hours=1), enqueue_dts=t - timedelta(hours=1),
                        start_dts=t - timedelta(hours=1), return_dts=t - timedelta(minutes=59),
                        return_success=True, worker=world.worker)
    started = factory.run(job, schedule_dts=t - timedelta(minutes=2), enqueue_dts=t - timedelta(minutes=1),
                          start_dts=t - timedelta(seconds=30), worker=world.worker)
    next_later = factory.run(job, schedule_dts=t + timedelta(hours=2))
    next_sooner = factory.run(job, schedule_dts=t + timedelta(hours=1))

    data = as_user(groups=[world.viewers]).get(f"/dashboard/jobs/{job.id}/runs.json").json
    assert [run["id"] for run in data["next"]] == [next_sooner.id, next_later.id]
    assert [run["id"] for run in data["runs"]] == [long_run.id, started.id, older.id]
    assert data["total"] == 5


def test_runs_of_a_job_out_of_reach_are_a_404_and_anonymous_a_401(world, factory, as_user, testapp):
    run = factory.run(world.job)
    stranger = as_user(groups=[factory.group()])
    assert stranger.get(f"/dashboard/jobs/{world.job.id}/runs.json", status=404).json["error"]
    assert stranger.get(f"/dashboard/runs/{run.id}.json", status=404).json["error"]
    testapp.reset()
    assert testapp.get(f"/dashboard/jobs/{world.job.id}/runs.json", status=401).json["error"]
    assert testapp.get("/dashboard/workers.json", status=401).json["error"]


# --- workers -------------------------------------------------------------------------


def test_workers_show_health_running_runs_and_pools_within_reach(world, factory, as_user):
    silent = factory.worker(title="silent one", ping_response_dts=now() - timedelta(hours=1))
    world.pool.workers.append(silent)
    lonely_pool = factory.pool(workers=[factory.worker(ping_response_dts=None)])
    world.project.worker_pools.append(lonely_pool)
    hidden_worker = factory.worker(title="elsewhere")
    factory.project(pools=[factory.pool(workers=[hidden_worker])])
    started = factory.run(world.job, enqueue_dts=now(), start_dts=now(), worker=world.worker)
    factory.db.flush()

    data = as_user(groups=[world.viewers]).get("/dashboard/workers.json").json
    workers = {worker["title"]: worker for worker in data["workers"]}
    assert "elsewhere" not in workers
    assert workers[world.worker.title]["responsive"] is True
    assert workers["silent one"]["responsive"] is False
    assert [run["id"] for run in workers[world.worker.title]["running"]] == [started.id]
    assert workers[world.worker.title]["pools"] == [{"id": world.pool.id, "title": world.pool.title}]
    pools = {pool["id"]: pool for pool in data["pools"]}
    assert pools[world.pool.id]["responsive_workers"] == 1
    assert pools[lonely_pool.id]["responsive_workers"] == 0
    # The defaults: 3 missed pings of 60 s, plus 15 s of margin.
    assert data["unresponsive_after_seconds"] == 3 * 60 + 15


def test_only_admins_get_the_toggle_and_may_disable_a_worker(world, factory, as_user):
    viewer = as_user(groups=[world.viewers])
    page = viewer.get("/workers")
    assert 'data-can-toggle="false"' in page.text
    assert 'href="/workers"' in page.text
    viewer.patch(uri("worker", world.worker), {"enqueue_is_enabled": False}, status=403)

    admin = as_user(is_admin=True)
    assert 'data-can-toggle="true"' in admin.get("/workers").text
    admin.patch(uri("worker", world.worker), {"enqueue_is_enabled": False})
    workers = {w["id"]: w for w in admin.get("/dashboard/workers.json").json["workers"]}
    assert workers[world.worker.id]["enqueue_is_enabled"] is False
    assert workers[world.worker.id]["responsive"] is False
