"""The scheduler's duties (run-on-all-workers expansion, runs of unresponsive
workers, pool alerts) on the test's rolled-back transaction, on SQLite and
PostgreSQL."""
from datetime import timedelta

from sqlalchemy import select

from jobrunner.models import Job, Run, RunLog, WorkerPool
from jobrunner.scheduling.duties import (
    alert_unresponsive_pools,
    expand_run_on_all_workers,
    fail_unresponsive_workers,
)
from jobrunner.settings import Settings
from tests.conftest import now, uri
from tests.scheduling.conftest import UNRESPONSIVE_AFTER, long_ago


def runs_of(dbsession, job):
    dbsession.expire_all()
    return dbsession.scalars(select(Run).where(Run.job_id == job.id).order_by(Run.id)).all()


def log_of(dbsession, run):
    return dbsession.scalar(select(RunLog.content).where(RunLog.run_id == run.id))


# --- run-on-all-workers expansion ---------------------------------------------------


def test_expansion_makes_one_run_per_enabled_worker_of_the_pool(world, factory, dbsession):
    others = [factory.worker(), factory.worker()]
    disabled = factory.worker(enqueue_is_enabled=False)
    world.pool.workers.extend(others + [disabled])
    job = factory.job(world.template, world.pool, run_on_all_workers=True)
    due = now() - timedelta(minutes=1)
    original = factory.run(job, schedule_dts=due, is_manual=True, schedule_children=False)
    original_id = original.id

    created = expand_run_on_all_workers(dbsession, now())

    runs = runs_of(dbsession, job)
    assert sorted(r.id for r in runs) == sorted(r.id for r in created)
    assert sorted(r.worker_id for r in runs) == sorted(w.id for w in [world.worker] + others)
    assert {(r.schedule_id, r.schedule_dts, r.is_manual, r.schedule_children) for r in runs} == {
        (original_id, due, True, False)
    }
    assert all(r.enqueue_dts is None and r.return_dts is None for r in runs)
    assert dbsession.get(Run, original_id) is None

    assert expand_run_on_all_workers(dbsession, now()) == []
    assert len(runs_of(dbsession, job)) == 3


def test_expansion_leaves_other_runs_alone(world, factory, dbsession):
    job = factory.job(world.template, world.pool, run_on_all_workers=True)
    future = factory.run(job, schedule_dts=now() + timedelta(minutes=1))
    pinned = factory.run(job, worker=world.worker)
    claimed = factory.run(job, enqueue_dts=now())
    returned = factory.run(job, enqueue_dts=now(), return_dts=now(), return_success=True)
    ordinary = factory.run(world.job)

    assert expand_run_on_all_workers(dbsession, now()) == []

    assert [r.id for r in runs_of(dbsession, job)] == [future.id, pinned.id, claimed.id, returned.id]
    assert [(r.id, r.worker_id) for r in runs_of(dbsession, world.job)] == [(ordinary.id, None)]


def test_a_run_waits_for_an_enabled_worker_before_it_is_expanded(factory, dbsession):
    worker = factory.worker(enqueue_is_enabled=False)
    pool = factory.pool(workers=[worker])
    template = factory.template(factory.project(pools=[pool]))
    job = factory.job(template, pool, run_on_all_workers=True)
    run = factory.run(job)

    assert expand_run_on_all_workers(dbsession, now()) == []
    assert [r.id for r in runs_of(dbsession, job)] == [run.id]

    worker.enqueue_is_enabled = True
    dbsession.flush()
    assert [r.worker_id for r in expand_run_on_all_workers(dbsession, now())] == [worker.id]


def test_an_unexpanded_run_is_not_enqueueable_and_each_worker_gets_its_own(
    world, factory, dbsession, as_worker
):
    other = factory.worker()
    world.pool.workers.append(other)
    job = factory.job(world.template, world.pool, run_on_all_workers=True)
    original = factory.run(job)
    client = as_worker(world.worker)

    assert client.get("/api/v1/run/?state=enqueueable").json["objects"] == []
    client.patch(uri("run", original), {"enqueue_dts": now().isoformat()}, status=409)

    expand_run_on_all_workers(dbsession, now())
    dbsession.flush()
    for worker in (world.worker, other):
        listed = as_worker(worker).get("/api/v1/run/?state=enqueueable").json["objects"]
        assert [o["worker"] for o in listed] == [uri("worker", worker)]
        assert listed[0]["schedule_id"] == original.id


# --- unresponsive workers -----------------------------------------------------------


def test_the_limit_is_intervals_times_ping_interval_plus_margin(scheduler_settings):
    def unresponsive_limit(mapping):
        return Settings.from_mapping(mapping).unresponsive_limit

    assert unresponsive_limit(scheduler_settings) == UNRESPONSIVE_AFTER.total_seconds() == 35
    assert unresponsive_limit({}) == 3 * 60 + 15
    assert unresponsive_limit({"jobrunner.worker.ping_interval": "0.5",
                               "jobrunner.worker.ping_margin": "0.25"}) == 1.75


def fail(dbsession, settings, mail_tx, at=None):
    """The duty in one transaction; its mail goes out when it commits."""
    with mail_tx.tm:
        return fail_unresponsive_workers(
            dbsession, at or now(), Settings.from_mapping(settings), mail_tx.context
        )


def started_run(factory, job, worker, **kw):
    return factory.run(job, worker=worker, enqueue_dts=now(), start_dts=now(), pid=4242, **kw)


def test_a_started_run_of_an_unresponsive_worker_fails_with_the_reason_in_its_log(
    world, factory, dbsession, scheduler_settings, mail_tx, mailbox
):
    world.worker.ping_response_dts = long_ago()
    world.job.notification_addresses = "job@example.com"
    run = started_run(factory, world.job, world.worker)
    factory.run_log(run, "working...\n")

    counts = fail(dbsession, scheduler_settings, mail_tx)

    assert counts == {"failed": 1, "freed": 0}
    dbsession.expire_all()
    run = dbsession.get(Run, run.id)
    assert run.return_dts is not None and run.return_success is False
    log = log_of(dbsession, run)
    assert log.startswith("working...\n[jobrunner scheduler]")
    assert f"the worker {world.worker.title!r} is unresponsive" in log
    assert "allowed 35 seconds without a ping" in log
    job = dbsession.get(Job, world.job.id)
    assert (job.fail_times, job.last_completed_schedule_id) == (1, run.schedule_id)

    messages = mailbox.wait_for(1)
    assert [m["subject"] for m in messages] == [f"Run error for: {world.job.title}"]
    assert sorted(messages[0]["rcpt"]) == ["admin@example.com", "job@example.com"]
    assert "is unresponsive" in messages[0]["body"]

    again = fail(dbsession, scheduler_settings, mail_tx)
    assert again == {"failed": 0, "freed": 0}
    assert log_of(dbsession, run).count("is unresponsive") == 1
    assert len(mailbox.messages) == 1


def test_a_worker_that_never_pinged_is_unresponsive(world, factory, dbsession, scheduler_settings, mail_tx):
    world.worker.ping_response_dts = None
    run = started_run(factory, world.job, world.worker)
    counts = fail(dbsession, scheduler_settings, mail_tx)
    assert counts == {"failed": 1, "freed": 0}
    assert "last ping: never" in log_of(dbsession, run)


def test_in_queue_runs_are_freed_but_those_of_run_on_all_workers_fail(
    world, factory, dbsession, scheduler_settings, mail_tx, mailbox
):
    world.worker.ping_response_dts = long_ago()
    queued = factory.run(world.job, worker=world.worker, enqueue_dts=now())
    everywhere = factory.job(world.template, world.pool, run_on_all_workers=True)
    queued_everywhere = factory.run(everywhere, worker=world.worker, enqueue_dts=now())
    pinned_everywhere = factory.run(everywhere, worker=world.worker, schedule_id=queued_everywhere.id)

    counts = fail(dbsession, scheduler_settings, mail_tx)

    assert counts == {"failed": 2, "freed": 1}
    dbsession.expire_all()
    freed = dbsession.get(Run, queued.id)
    assert (freed.worker_id, freed.enqueue_dts, freed.return_dts) == (None, None, None)
    assert log_of(dbsession, freed) is None
    for run_id in (queued_everywhere.id, pinned_everywhere.id):
        failed = dbsession.get(Run, run_id)
        assert failed.return_success is False
        assert "before it started" in log_of(dbsession, failed)
    assert dbsession.get(Job, everywhere.id).fail_times == 2
    assert dbsession.get(Job, world.job.id).fail_times == 0
    subjects = [m["subject"] for m in mailbox.wait_for(2)]
    assert subjects == [f"Run error for: {everywhere.title}"] * 2


def test_responsive_disabled_and_future_runs_are_left_alone(
    world, factory, dbsession, scheduler_settings, mail_tx
):
    at = now()
    world.worker.ping_response_dts = at - UNRESPONSIVE_AFTER + timedelta(seconds=1)
    disabled = factory.worker(ping_response_dts=long_ago(), enqueue_is_enabled=False)
    silent = factory.worker(ping_response_dts=long_ago())
    world.pool.workers.extend([disabled, silent])
    everywhere = factory.job(world.template, world.pool, run_on_all_workers=True)
    untouched = [
        started_run(factory, world.job, world.worker),
        started_run(factory, world.job, disabled),
        factory.run(world.job, worker=silent),  # pinned, not claimed: it waits for its worker
        factory.run(everywhere, worker=silent, schedule_dts=at + timedelta(minutes=5)),
    ]
    assert fail(dbsession, scheduler_settings, mail_tx, at=at) == {
        "failed": 0, "freed": 0
    }
    dbsession.expire_all()
    for run in untouched:
        stored = dbsession.get(Run, run.id)
        assert (stored.return_dts, stored.worker_id) == (None, run.worker_id)


def test_failure_by_the_scheduler_schedules_children_on_error_and_reschedules(
    world, factory, dbsession, scheduler_settings, mail_tx
):
    world.worker.ping_response_dts = long_ago()
    world.job.schedule_children_on_error = True
    world.job.reschedule_interval = 1
    world.job.reschedule_interval_type = "HOUR"
    child = factory.job(world.template, world.pool, parent=world.job)
    strict = factory.job(world.template, world.pool)
    strict_child = factory.job(world.template, world.pool, parent=strict)
    started_run(factory, world.job, world.worker, schedule_dts=now() - timedelta(minutes=10))
    started_run(factory, strict, world.worker)

    fail(dbsession, scheduler_settings, mail_tx)

    children = runs_of(dbsession, child)
    assert len(children) == 1 and children[0].return_dts is None and not children[0].is_manual
    assert runs_of(dbsession, strict_child) == []
    pending = [r for r in runs_of(dbsession, world.job) if r.return_dts is None]
    assert len(pending) == 1 and pending[0].schedule_dts > now()


def test_a_late_return_from_the_worker_is_a_conflict_and_counts_nothing(
    world, factory, dbsession, scheduler_settings, mail_tx, as_worker
):
    world.worker.ping_response_dts = long_ago()
    run = started_run(factory, world.job, world.worker)
    fail(dbsession, scheduler_settings, mail_tx)
    dbsession.flush()

    as_worker(world.worker).patch(
        uri("run", run), {"return_dts": now().isoformat(), "return_success": True}, status=409
    )
    dbsession.expire_all()
    assert dbsession.get(Run, run.id).return_success is False
    assert dbsession.get(Job, world.job.id).fail_times == 1


# --- unresponsive pools -----------------------------------------------------------------


def alert(dbsession, settings, mail_tx, at=None):
    with mail_tx.tm:
        return alert_unresponsive_pools(
            dbsession, at or now(), Settings.from_mapping(settings), mail_tx.context
        )


def test_a_pool_outage_is_mailed_once_and_again_after_recovery(
    factory, dbsession, scheduler_settings, mail_tx, mailbox
):
    workers = [factory.worker(ping_response_dts=long_ago()), factory.worker(ping_response_dts=None)]
    factory.worker(ping_response_dts=now(), enqueue_is_enabled=False)  # not in the pool
    disabled = factory.worker(ping_response_dts=now(), enqueue_is_enabled=False)
    pool = factory.pool(
        workers=workers + [disabled],
        notification_addresses="pool@example.com\nADMIN@example.com\npool@example.com\nops@example.com",
    )
    quiet = {"alerted": 0, "recovered": 0}

    assert alert(dbsession, scheduler_settings, mail_tx) == {"alerted": 1, "recovered": 0}
    messages = mailbox.wait_for(1)
    assert len(messages) == 1
    message = messages[0]
    assert message["subject"] == f"Worker-pool unresponsive: {pool.title}"
    assert sorted(a.lower() for a in message["rcpt"]) == [
        "admin@example.com", "ops@example.com", "pool@example.com"
    ]
    assert message["message"]["To"].lower().count("admin@example.com") == 1
    assert all(w.title in message["body"] for w in workers)
    assert disabled.title not in message["body"]
    assert dbsession.get(WorkerPool, pool.id).unresponsive_since_dts is not None

    assert alert(dbsession, scheduler_settings, mail_tx) == quiet
    assert len(mailbox.messages) == 1

    workers[1].ping_response_dts = now()
    dbsession.flush()
    assert alert(dbsession, scheduler_settings, mail_tx) == {"alerted": 0, "recovered": 1}
    assert dbsession.get(WorkerPool, pool.id).unresponsive_since_dts is None
    assert alert(dbsession, scheduler_settings, mail_tx) == quiet

    later = now() + UNRESPONSIVE_AFTER + timedelta(seconds=1)
    assert alert(dbsession, scheduler_settings, mail_tx, at=later) == {"alerted": 1, "recovered": 0}
    messages = mailbox.wait_for(2)
    assert [m["subject"] for m in messages] == [f"Worker-pool unresponsive: {pool.title}"] * 2
    assert alert(dbsession, scheduler_settings, mail_tx, at=later) == quiet
    assert len(mailbox.messages) == 2


def test_pools_with_a_responsive_or_no_enabled_worker_are_not_alerted(
    factory, dbsession, scheduler_settings, mail_tx, mailbox
):
    factory.pool(workers=[factory.worker(ping_response_dts=long_ago()), factory.worker()])
    factory.pool(workers=[factory.worker(ping_response_dts=long_ago(), enqueue_is_enabled=False)])
    factory.pool()
    assert alert(dbsession, scheduler_settings, mail_tx) == {"alerted": 0, "recovered": 0}
    assert mailbox.messages == []
