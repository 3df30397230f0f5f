"""The return path of scheduled jobs through the REST API: retries, the
misfire policy, the next run of cron jobs, the overlap policies (what may
be claimed, when the next run is made) and the scheduler's timeout and
replace duties."""
from datetime import timedelta

from sqlalchemy import select

from jobrunner.models import KillRequest, Run, RunLog
from jobrunner.scheduling.run_limits import (
    fail_overdue_run, overdue_runs, replace_run, runs_to_replace,
)
from jobrunner.settings import Settings
from tests.conftest import now, uri

from .test_lifecycle_api import enqueueable_ids


def claim_and_start(client, run):
    client.patch(uri("run", run), {"enqueue_dts": now().isoformat()})
    client.patch(uri("run", run), {"start_dts": now().isoformat(), "pid": 4242})


def give_back(client, run, success):
    client.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": success})


def runs_of(dbsession, job):
    dbsession.expire_all()
    return dbsession.scalars(select(Run).where(Run.job_id == job.id).order_by(Run.id)).all()


def test_a_run_with_retries_fails_once_after_its_last_attempt(world, factory, as_worker, dbsession,
                                                              mailbox):
    job = world.job
    job.retries, job.retry_delay = 2, 10
    child = factory.job(world.template, world.pool, parent=job)
    client = as_worker(world.worker)
    first = factory.run(job)
    claim_and_start(client, first)
    give_back(client, first, False)
    runs = runs_of(dbsession, job)
    assert len(runs) == 2
    second = runs[1]
    assert (second.attempt, second.schedule_id, second.is_manual, second.worker_id) == (
        2, first.schedule_id, False, None)
    assert second.schedule_dts == first.return_dts + timedelta(seconds=10)
    assert job.fail_times == 0 and runs_of(dbsession, child) == []
    # Due: the second attempt after 10 s, the third 20 s after that return.
    second.schedule_dts = now() - timedelta(seconds=1)
    dbsession.flush()
    claim_and_start(client, second)
    give_back(client, second, False)
    third = runs_of(dbsession, job)[2]
    assert third.attempt == 3
    assert third.schedule_dts == second.return_dts + timedelta(seconds=20)
    assert job.fail_times == 0
    third.schedule_dts = now() - timedelta(seconds=1)
    dbsession.flush()
    claim_and_start(client, third)
    give_back(client, third, False)
    dbsession.expire_all()
    assert job.fail_times == 1
    assert len(runs_of(dbsession, job)) == 3
    messages = mailbox.wait_for(1)
    assert [m["subject"] for m in messages] == [f"Run error for: {job.title}"]
    assert runs_of(dbsession, child) == []  # children only on success by default


def test_a_retry_that_succeeds_schedules_children_and_resets_failures(
        world, factory, as_worker, dbsession):
    job = world.job
    job.retries = 1
    child = factory.job(world.template, world.pool, parent=job)
    client = as_worker(world.worker)
    first = factory.run(job)
    claim_and_start(client, first)
    give_back(client, first, False)
    second = runs_of(dbsession, job)[1]
    second.schedule_dts = now()
    dbsession.flush()
    claim_and_start(client, second)
    give_back(client, second, True)
    assert job.fail_times == 0
    assert len(runs_of(dbsession, child)) == 1


def test_a_run_killed_by_a_user_is_never_retried(world, factory, as_worker, as_user, dbsession):
    job = world.job
    job.retries = 3
    client = as_worker(world.worker)
    run = factory.run(job)
    claim_and_start(client, run)
    kill = as_user(is_admin=True).post("/api/v1/kill_request/", {"run": uri("run", run)}).json
    client.patch(kill["resource_uri"], {"enqueue_dts": now().isoformat()})
    give_back(client, run, False)
    assert len(runs_of(dbsession, job)) == 1
    assert job.fail_times == 1


def test_retries_of_a_run_on_all_workers_stay_on_its_worker(world, factory, as_worker, dbsession):
    job = world.job
    job.retries, job.run_on_all_workers = 1, True
    client = as_worker(world.worker)
    run = factory.run(job, worker=world.worker)
    claim_and_start(client, run)
    give_back(client, run, False)
    retry = runs_of(dbsession, job)[1]
    assert retry.worker_id == world.worker.id and retry.attempt == 2


def test_misfire_run_once_makes_one_run_now_for_the_missed_times(world, factory, as_worker,
                                                                 dbsession):
    job = world.job
    job.cron_expression, job.timezone, job.misfire_policy = "0 * * * *", "UTC", "run_once"
    old = factory.run(job, schedule_dts=(now() - timedelta(hours=5)).replace(minute=0, second=0,
                                                                             microsecond=0))
    client = as_worker(world.worker)
    claim_and_start(client, old)
    give_back(client, old, True)
    following = runs_of(dbsession, job)[1]
    assert following.schedule_dts <= now()  # at once, for all missed hours
    assert following.schedule_dts > now() - timedelta(hours=1)
    # Then the schedule continues from there: the next hour in the future.
    claim_and_start(client, following)
    give_back(client, following, True)
    after = runs_of(dbsession, job)[2]
    assert after.schedule_dts > now() and after.schedule_dts.minute == 0


def test_misfire_skip_moves_to_the_first_time_in_the_future(world, factory, as_worker, dbsession):
    job = world.job
    job.cron_expression, job.timezone = "*/10 * * * *", "UTC"
    old = factory.run(job, schedule_dts=now() - timedelta(hours=3))
    client = as_worker(world.worker)
    claim_and_start(client, old)
    give_back(client, old, True)
    following = runs_of(dbsession, job)[1]
    assert now() < following.schedule_dts <= now() + timedelta(minutes=10)
    assert following.schedule_dts.minute % 10 == 0


def test_allow_schedules_the_next_run_at_start_and_lets_schedules_overlap(
        world, factory, as_worker, dbsession):
    job = world.job
    job.reschedule_interval, job.reschedule_interval_type = 1, "MINUTE"
    job.concurrency_policy = "allow"
    client = as_worker(world.worker)
    first = factory.run(job, schedule_dts=now() - timedelta(minutes=1))
    claim_and_start(client, first)
    (_, following) = runs_of(dbsession, job)
    assert following.schedule_dts > first.schedule_dts and following.enqueue_dts is None
    following.schedule_dts = now() - timedelta(seconds=1)
    dbsession.flush()
    assert enqueueable_ids(client) == [following.id]  # while the first is still started
    claim_and_start(client, following)
    assert len(runs_of(dbsession, job)) == 3
    give_back(client, first, True)
    assert len(runs_of(dbsession, job)) == 3  # the next run is there already


def test_forbid_keeps_one_schedule_active(world, factory, as_worker, dbsession):
    job = world.job
    client = as_worker(world.worker)
    first = factory.run(job)
    claim_and_start(client, first)
    second = factory.run(job, is_manual=True)
    assert enqueueable_ids(client) == []
    client.patch(uri("run", second), {"enqueue_dts": now().isoformat()}, status=409)


def scheduler_settings_of(**values):
    return Settings(**values)


def test_replace_asks_to_kill_the_started_run_and_waits_for_its_return(
        world, factory, as_worker, dbsession, mail_tx):
    job = world.job
    job.reschedule_interval, job.reschedule_interval_type = 1, "HOUR"
    job.concurrency_policy = "replace"
    client = as_worker(world.worker)
    old = factory.run(job, schedule_dts=now() - timedelta(minutes=1))
    claim_and_start(client, old)
    (_, due) = runs_of(dbsession, job)
    assert due.schedule_dts > now()  # the next run, made at the start
    assert runs_to_replace(dbsession, now()) == []
    manual = factory.run(job, is_manual=True)
    assert runs_to_replace(dbsession, now()) == [(old.id, job.id, manual.id)]
    assert enqueueable_ids(client) == []  # not while the old run is started
    assert replace_run(dbsession, old.id, job.id, manual.id, now()) == "replaced"
    assert runs_to_replace(dbsession, now()) == []  # one kill request only
    kill = dbsession.scalar(select(KillRequest).where(KillRequest.run_id == old.id))
    assert kill is not None
    client.patch(uri("kill_request", kill), {"enqueue_dts": now().isoformat()})
    # The worker's last log write comes after the scheduler's note.
    client.post("/api/v1/run_log/", {"run": uri("run", old), "content": "working\n"}, status=409)
    log = dbsession.scalar(select(RunLog).where(RunLog.run_id == old.id))
    client.patch(uri("run_log", log), {"content": "working\nkilled\n"})
    give_back(client, old, False)
    dbsession.expire_all()
    assert "replaced by run" in log.content and log.content.startswith("working\nkilled\n")
    assert enqueueable_ids(client) == [manual.id]


def test_the_scheduler_fails_a_run_long_past_its_timeout(world, factory, as_worker, dbsession, mail_tx,
                                                        mailbox):
    settings = Settings(ping_interval=10, ping_margin=5)
    job = world.job
    job.timeout = 30
    client = as_worker(world.worker)
    run = factory.run(job)
    claim_and_start(client, run)
    run.start_dts = now() - timedelta(seconds=44)  # 30 s + 15 s not yet past
    dbsession.flush()
    assert overdue_runs(dbsession, now(), settings) == []
    run.start_dts = now() - timedelta(seconds=46)
    dbsession.flush()
    assert overdue_runs(dbsession, now(), settings) == [(run.id, job.id)]
    with mail_tx.tm:
        assert fail_overdue_run(dbsession, run.id, job.id, now(), settings, mail_tx.context) == "timed_out"
    dbsession.expire_all()
    assert run.return_success is False and run.timed_out is True
    log = dbsession.scalar(select(RunLog.content).where(RunLog.run_id == run.id))
    assert log.rstrip("\n").endswith("[timed out after 30 s]")
    assert job.fail_times == 1
    assert len(mailbox.wait_for(1)) == 1
    assert overdue_runs(dbsession, now(), settings) == []
