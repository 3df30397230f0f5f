"""The run life cycle through the REST API."""
from datetime import time, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from jobrunner.models import Job, Run, RunLog
from tests.conftest import now, uri, utc

FUTURE = "2099-01-01T00:00:00+00:00"


def enqueueable_ids(client, limit=None):
    path = "/api/v1/run/?state=enqueueable" + (f"&limit={limit}" if limit else "")
    return [o["id"] for o in client.get(path).json["objects"]]


def claim(client, run, status=202, **extra):
    return client.patch(uri("run", run), {"enqueue_dts": now().isoformat(), **extra}, status=status)


def finish(client, run, success=True, status=202):
    client.patch(uri("run", run), {"start_dts": now().isoformat(), "pid": 42})
    return client.patch(
        uri("run", run), {"return_dts": now().isoformat(), "return_success": success}, status=status
    )


# --- enqueueable -------------------------------------------------------------


def test_enqueueable_lists_due_runs_of_the_workers_pools(world, factory, as_worker):
    due = factory.run(world.job)
    factory.run(factory.job(world.template, world.pool), schedule_dts=now() + timedelta(hours=1))
    other_pool = factory.pool(workers=[factory.worker()])
    world.project.worker_pools.append(other_pool)
    factory.run(factory.job(world.template, other_pool))
    assert enqueueable_ids(as_worker(world.worker)) == [due.id]


def test_enqueueable_holds_the_earliest_run_per_job_ordered_by_schedule(world, factory, as_worker):
    second_job = factory.job(world.template, world.pool)
    late = factory.run(world.job, schedule_dts=now() - timedelta(minutes=1))
    factory.run(world.job, schedule_dts=now() - timedelta(seconds=5))
    early = factory.run(second_job, schedule_dts=now() - timedelta(minutes=5))
    assert enqueueable_ids(as_worker(world.worker)) == [early.id, late.id]
    assert enqueueable_ids(as_worker(world.worker), limit=1) == [early.id]


@pytest.mark.parametrize("switch", ["job", "template", "project", "pool"])
def test_disabled_switches_hold_back_scheduled_runs_but_not_manual_ones(world, factory, as_worker, switch):
    obj = {"job": world.job, "template": world.template, "project": world.project, "pool": world.pool}[switch]
    obj.enqueue_is_enabled = False
    scheduled = factory.run(world.job, schedule_dts=now() - timedelta(minutes=2))
    client = as_worker(world.worker)
    assert enqueueable_ids(client) == []
    claim(client, scheduled, status=409)
    manual = factory.run(world.job, is_manual=True)
    assert enqueueable_ids(client) == [manual.id]


def test_a_disabled_worker_claims_nothing_but_still_reports(world, factory, as_worker):
    run = factory.run(world.job)
    world.worker.enqueue_is_enabled = False
    factory.db.flush()
    client = as_worker(world.worker)
    assert enqueueable_ids(client) == []
    claim(client, run, status=409)
    client.patch(uri("worker", world.worker), {"ping_response_dts": now().isoformat()})


def test_runs_pinned_to_a_worker_go_to_that_worker_only(world, factory, as_worker):
    other = factory.worker()
    world.pool.workers.append(other)
    pinned = factory.run(world.job, worker=other)
    assert enqueueable_ids(as_worker(world.worker)) == []
    assert enqueueable_ids(as_worker(other)) == [pinned.id]
    claim(as_worker(world.worker), pinned, status=409)


def test_an_active_schedule_blocks_other_schedules_of_the_job_but_not_siblings(world, factory, as_worker):
    other = factory.worker()
    world.pool.workers.append(other)
    first = factory.run(world.job, worker=world.worker, schedule_dts=now() - timedelta(minutes=3))
    sibling = factory.run(world.job, worker=other, schedule_id=first.schedule_id,
                          schedule_dts=first.schedule_dts)
    later = factory.run(world.job, schedule_dts=now() - timedelta(minutes=1))
    claim(as_worker(world.worker), first)
    assert enqueueable_ids(as_worker(other)) == [sibling.id]
    claim(as_worker(other), later, status=409)
    claim(as_worker(other), sibling)


def test_enqueueable_is_for_workers(world, factory, as_user):
    client = as_user(is_admin=True)
    res = client.get("/api/v1/run/?state=enqueueable", status=400)
    assert res.json["errors"]["state"]


# --- claiming and fencing ------------------------------------------------------


def test_claim_sets_enqueue_and_worker_once(world, factory, as_worker, dbsession):
    run = factory.run(world.job)
    other = factory.worker()
    world.pool.workers.append(other)
    dbsession.flush()  # the server sees the other worker in the pool
    res = claim(as_worker(world.worker), run, worker=uri("worker", world.worker))
    assert res.json["worker"] == uri("worker", world.worker)
    assert res.json["enqueue_dts"] is not None
    claim(as_worker(other), run, status=409)
    dbsession.expire_all()
    assert dbsession.get(Run, run.id).worker_id == world.worker.id


def test_a_worker_claims_for_itself_only(world, factory, as_worker):
    run = factory.run(world.job)
    other = factory.worker()
    world.pool.workers.append(other)
    claim(as_worker(world.worker), run, worker=uri("worker", other), status=403)


def test_reset_keeps_the_worker_unless_it_is_set_to_null(world, factory, as_worker, dbsession):
    run = factory.run(world.job)
    client = as_worker(world.worker)
    claim(client, run)
    res = client.patch(uri("run", run), {"enqueue_dts": None, "start_dts": None})
    assert res.json["enqueue_dts"] is None and res.json["worker"] == uri("worker", world.worker)
    claim(client, run)
    res = client.patch(uri("run", run), {"enqueue_dts": None, "start_dts": None, "worker": None})
    assert res.json["worker"] is None
    assert enqueueable_ids(client) == [run.id]


def test_only_the_holder_reports_on_a_run(world, factory, as_worker):
    run = factory.run(world.job)
    other = factory.worker()
    world.pool.workers.append(other)
    holder, intruder = as_worker(world.worker), as_worker(other)
    intruder.patch(uri("run", run), {"start_dts": now().isoformat()}, status=403)
    claim(holder, run)
    for body in ({"start_dts": now().isoformat()}, {"pid": 1},
                 {"return_dts": now().isoformat(), "return_success": True},
                 {"enqueue_dts": None, "start_dts": None}):
        intruder.patch(uri("run", run), body, status=403)
    intruder.post("/api/v1/run_log/", {"run": uri("run", run), "content": "x"}, status=403)
    holder.post("/api/v1/run_log/", {"run": uri("run", run), "content": "mine"})


def test_a_second_return_is_a_conflict_and_changes_nothing(world, factory, as_worker, dbsession, mailbox):
    run = factory.run(world.job)
    client = as_worker(world.worker)
    claim(client, run)
    finish(client, run, success=False)
    client.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": True}, status=409)
    dbsession.expire_all()
    assert dbsession.get(Run, run.id).return_success is False
    assert dbsession.get(Job, world.job.id).fail_times == 1


# --- returns -------------------------------------------------------------------


def test_failures_count_mail_and_disable_the_job(world, factory, as_worker, dbsession, mailbox):
    world.job.disable_enqueue_after_fails = 1
    world.job.notification_addresses = "job@example.com"
    world.project.notification_addresses = "project@example.com\njob@example.com"
    client = as_worker(world.worker)
    for expected_fails, enabled in ((1, True), (2, False)):
        run = factory.run(world.job, is_manual=True)
        claim(client, run)
        client.post("/api/v1/run_log/", {"run": uri("run", run), "content": "boom\n"})
        finish(client, run, success=False)
        dbsession.expire_all()
        job = dbsession.get(Job, world.job.id)
        assert (job.fail_times, job.enqueue_is_enabled) == (expected_fails, enabled)
        assert job.last_completed_schedule_id == run.schedule_id
    messages = mailbox.wait_for(2)
    assert len(messages) == 2
    assert messages[0]["subject"] == f"Run error for: {world.job.title}"
    assert sorted(messages[0]["rcpt"]) == ["admin@example.com", "job@example.com", "project@example.com"]
    assert "boom" in messages[0]["body"]


def test_success_resets_the_fail_count(world, factory, as_worker, dbsession):
    world.job.fail_times = 3
    run = factory.run(world.job)
    client = as_worker(world.worker)
    claim(client, run)
    finish(client, run, success=True)
    dbsession.expire_all()
    assert dbsession.get(Job, world.job.id).fail_times == 0
    last = client.get("/api/v1/run/?state=last_completed").json["objects"]
    assert [o["id"] for o in last] == [run.id]


def children_runs(dbsession, job):
    dbsession.expire_all()
    return dbsession.scalars(select(Run).where(Run.job_id == job.id)).all()


@pytest.mark.parametrize(
    "success, on_error, schedule_children, expected",
    [(True, False, True, 1), (False, False, True, 0), (False, True, True, 1), (True, False, False, 0)],
)
def test_children_follow_the_parent(world, factory, as_worker, dbsession, mailbox, success, on_error,
                                    schedule_children, expected):
    world.job.schedule_children_on_error = on_error
    child = factory.job(world.template, world.pool, parent=world.job)
    factory.job(world.template, world.pool, parent=world.job, enqueue_is_enabled=False)
    run = factory.run(world.job, schedule_children=schedule_children)
    client = as_worker(world.worker)
    claim(client, run)
    finish(client, run, success=success)
    runs = children_runs(dbsession, child)
    assert len(runs) == expected
    assert all(not r.is_manual and r.return_dts is None for r in runs)


def test_children_wait_for_every_sibling_of_the_schedule(world, factory, as_worker, dbsession):
    other = factory.worker()
    world.pool.workers.append(other)
    child = factory.job(world.template, world.pool, parent=world.job)
    first = factory.run(world.job, worker=world.worker)
    second = factory.run(world.job, worker=other, schedule_id=first.schedule_id)
    claim(as_worker(world.worker), first)
    claim(as_worker(other), second)
    finish(as_worker(world.worker), first)
    assert children_runs(dbsession, child) == []
    finish(as_worker(other), second)
    assert len(children_runs(dbsession, child)) == 1


def test_return_reschedules_from_the_last_scheduled_run(world, factory, as_worker, dbsession):
    world.job.reschedule_interval = 1
    world.job.reschedule_interval_type = "HOUR"
    start = now().replace(microsecond=0) - timedelta(hours=5, minutes=30)
    run = factory.run(world.job, schedule_dts=start)
    client = as_worker(world.worker)
    claim(client, run)
    finish(client, run)
    pending = [r for r in children_runs(dbsession, world.job) if r.return_dts is None]
    assert len(pending) == 1
    assert pending[0].schedule_dts == start + timedelta(hours=6)
    assert not pending[0].is_manual


def test_a_manual_run_never_shifts_the_schedule(world, factory, as_worker, as_user, dbsession):
    world.job.reschedule_interval = 1
    world.job.reschedule_interval_type = "DAY"
    scheduled = factory.run(world.job, schedule_dts=now() + timedelta(hours=3))
    user = as_user(groups=[world.admins])
    manual = user.post("/api/v1/run/", {"job": uri("job", world.job)}).json
    assert manual["is_manual"] is True
    client = as_worker(world.worker)
    claim(client, dbsession.get(Run, manual["id"]))
    finish(client, dbsession.get(Run, manual["id"]))
    pending = [r for r in children_runs(dbsession, world.job) if r.return_dts is None]
    assert [r.id for r in pending] == [scheduled.id]


def test_an_unescapable_exclude_sends_the_reschedule_error(world, factory, as_worker, dbsession, mailbox):
    job = factory.job(world.template, world.pool, reschedule_interval=1, reschedule_interval_type="DAY",
                      excludes=[(time(0, 0), time(23, 59, 59, 999999))], notification_addresses="j@example.com")
    run = factory.run(job)
    client = as_worker(world.worker)
    claim(client, run)
    finish(client, run)
    message = mailbox.wait_for(1)[0]
    assert message["subject"] == f"Reschedule error for: {job.title}"
    assert [r for r in children_runs(dbsession, job) if r.return_dts is None] == []


# --- kill requests -------------------------------------------------------------


def test_kill_requests_are_for_started_runs_and_seen_by_their_worker(world, factory, as_worker, as_user, dbsession):
    run = factory.run(world.job)
    user = as_user(groups=[world.admins])
    user.post("/api/v1/kill_request/", {"run": uri("run", run)}, status=409)
    client = as_worker(world.worker)
    claim(client, run)
    client.patch(uri("run", run), {"start_dts": now().isoformat(), "pid": 7})
    kill = user.post("/api/v1/kill_request/", {"run": uri("run", run)}).json
    assert kill["schedule_dts"] is not None and kill["execute_dts"] is None
    listed = client.get(
        f"/api/v1/kill_request/?run__worker__api_key={world.worker.api_key}&execute_dts__isnull=true"
    ).json["objects"]
    assert [k["id"] for k in listed] == [kill["id"]]
    other = factory.worker()
    world.pool.workers.append(other)
    as_worker(other).patch(kill["resource_uri"], {"execute_dts": now().isoformat()}, status=403)
    client.patch(kill["resource_uri"], {"enqueue_dts": now().isoformat()})
    client.patch(kill["resource_uri"], {"execute_dts": now().isoformat()})
    assert client.get(
        f"/api/v1/kill_request/?run__worker__api_key={world.worker.api_key}&execute_dts__isnull=true"
    ).json["objects"] == []
    finish_res = client.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": False})
    assert finish_res.json["return_success"] is False
    user.post("/api/v1/kill_request/", {"run": uri("run", run)}, status=409)


def test_run_log_is_one_per_run(world, factory, as_worker, dbsession):
    run = factory.run(world.job)
    client = as_worker(world.worker)
    claim(client, run)
    log = client.post("/api/v1/run_log/", {"run": uri("run", run), "content": "a"}).json
    client.post("/api/v1/run_log/", {"run": uri("run", run), "content": "b"}, status=409)
    client.patch(log["resource_uri"], {"content": "ab"})
    assert client.get(uri("run", run)).json["run_log"] == log["resource_uri"]
    dbsession.expire_all()
    assert dbsession.scalar(select(RunLog.content).where(RunLog.run_id == run.id)) == "ab"


__all__ = ["utc"]


def test_a_mail_server_that_is_down_fails_no_return(database_url, connection, world, factory, dbsession):
    """The return is committed and answered 202; the lost mail is only logged."""
    import webtest

    from jobrunner import main
    from tests.conftest import WorkerClient, app_settings
    from bench.stack import free_port

    app = main({}, **app_settings(database_url, free_port()))
    app.registry["dbsession_factory"] = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    client = WorkerClient(webtest.TestApp(app), world.worker)
    run = factory.run(world.job)
    claim(client, run)
    finish(client, run, success=False)
    dbsession.expire_all()
    assert dbsession.get(Run, run.id).return_success is False
    assert dbsession.get(Job, world.job.id).fail_times == 1
