"""Retention: old completed runs go, in batches; a job's newest runs and its
last completed schedule stay; workers keep claiming while a purge runs."""
import threading
import time
from datetime import timedelta

import pytest
import webtest
from sqlalchemy import func, insert, select, update

from jobrunner import main
from jobrunner.models import KillRequest, Run, RunLog, get_engine, get_session_factory
from jobrunner.scheduling import retention
from jobrunner.scheduling.daemon import in_own_transaction
from jobrunner.settings import Settings, SettingsError
from tests.conftest import WorkerClient, app_settings, now

DAYS = {"jobrunner.retention_days": "30", "jobrunner.retention_keep_per_job": "3"}


def typed(**settings):
    return Settings.from_mapping(settings)


def completed(factory, job, days_ago, success=True, worker=None):
    dts = now() - timedelta(days=days_ago)
    return factory.run(job, schedule_dts=dts, enqueue_dts=dts, start_dts=dts, return_dts=dts,
                       return_success=success, worker=worker)


def remaining(dbsession, job):
    dbsession.expire_all()
    return set(dbsession.scalars(select(Run.id).where(Run.job_id == job.id)))


def tally(dbsession):
    dbsession.expire_all()
    return retention.purged_counts(dbsession)


def test_old_completed_runs_go_with_their_logs_and_kill_requests(world, factory, dbsession):
    job = world.job
    old = [completed(factory, job, 100 + n, success=n % 2 == 0) for n in range(6)]
    factory.run_log(old[0], "old output")
    dbsession.add(KillRequest(run_id=old[1].id, schedule_dts=old[1].schedule_dts))
    old_ids = [run.id for run in old]
    # The last completed schedule stays however old it is.
    last_schedule = completed(factory, job, 200)
    job.last_completed_schedule_id = last_schedule.schedule_id
    recent = [completed(factory, job, 1) for _ in range(2)]
    pending = factory.run(job, schedule_dts=now() - timedelta(days=90))  # never completed: stays
    newest = factory.run(job, schedule_dts=now() + timedelta(hours=1))
    dbsession.flush()
    before = tally(dbsession)

    deleted = retention.purge_old_runs(dbsession, typed(**DAYS), now())

    # Kept: the newest three runs by schedule (newest, and the two recent
    # ones), the last completed schedule, the pending run.
    kept = {newest.id, recent[0].id, recent[1].id, last_schedule.id, pending.id}
    assert not kept & set(old_ids)
    assert remaining(dbsession, job) == kept
    assert deleted == 6
    assert dbsession.scalar(select(func.count()).select_from(RunLog).where(
        RunLog.run_id == old_ids[0])) == 0
    assert dbsession.scalar(select(func.count()).select_from(KillRequest).where(
        KillRequest.run_id == old_ids[1])) == 0
    after = tally(dbsession)
    assert after["success"] - before["success"] == 3
    assert after["failure"] - before["failure"] == 3
    assert retention.purge_old_runs(dbsession, typed(**DAYS), now()) == 0


def test_the_newest_runs_of_each_job_stay_even_when_old(world, factory, dbsession):
    runs = [completed(factory, world.job, 400 - n).id for n in range(5)]
    settings = typed(**{**DAYS, "jobrunner.retention_keep_per_job": "4"})
    assert retention.purge_old_runs(dbsession, settings, now()) == 1
    assert remaining(dbsession, world.job) == set(runs[1:])
    # keep_per_job 0: only the age and the last completed schedule count.
    assert retention.purge_old_runs(
        dbsession, typed(**{**DAYS, "jobrunner.retention_keep_per_job": "0"}), now()) == 4


def test_without_retention_days_everything_is_kept(world, factory, dbsession):
    completed(factory, world.job, 5000)
    assert retention.purge_old_runs(dbsession, typed(), now()) == 0
    assert retention.Retention(typed()).run(lambda work, write=True: work(dbsession)) == 0


@pytest.mark.parametrize("name, value", [("jobrunner.retention_days", "0"),
                                         ("jobrunner.retention_days", "soon"),
                                         ("jobrunner.retention_keep_per_job", "-1")])
def test_bad_retention_settings_are_refused_at_start(scheduler_settings, name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_mapping({**scheduler_settings, name: value})


def bulk_completed(dbsession, job_id, count, days_ago):
    dts = now() - timedelta(days=days_ago)
    first = dbsession.scalar(select(func.coalesce(func.max(Run.id), 0)))
    dbsession.execute(insert(Run), [
        {"job_id": job_id, "schedule_dts": dts - timedelta(minutes=n), "enqueue_dts": dts,
         "start_dts": dts, "return_dts": dts, "return_success": True, "is_manual": False,
         "schedule_children": True} for n in range(count)])
    dbsession.execute(update(Run).where(Run.id > first).values(schedule_id=Run.id))
    dbsession.flush()


def test_the_loop_deletes_at_most_a_batch_per_transaction(world, factory, dbsession, monkeypatch):
    bulk_completed(dbsession, world.job.id, 2 * retention.BATCH + 10, days_ago=60)
    transactions = []

    def in_transaction(work, write=True):
        before = dbsession.scalar(select(func.count()).select_from(Run))
        result = work(dbsession)
        transactions.append(before - dbsession.scalar(select(func.count()).select_from(Run)))
        return result

    duty = retention.Retention(typed(**DAYS))
    monkeypatch.setattr(retention, "BATCHES_PER_ITERATION", 2)
    assert duty.run(in_transaction) == 2 * retention.BATCH
    assert max(transactions) == retention.BATCH
    assert duty.run(in_transaction) == 10 - 3  # the rest: the newest three stay
    assert len(remaining(dbsession, world.job)) == 3
    # The pass has ended: the next one waits for PASS_INTERVAL.
    assert duty.run(in_transaction) == 0


def test_the_purge_keeps_the_metrics_counter_whole(world, factory, dbsession, app, connection):
    for n in range(5):
        completed(factory, world.job, 100 + n, success=n < 2)
    before = retention.count_by_result(dbsession)
    before_purged = tally(dbsession)
    retention.purge_old_runs(dbsession, typed(**{**DAYS, "jobrunner.retention_keep_per_job": "0"}), now())
    after = retention.count_by_result(dbsession)
    after_purged = tally(dbsession)
    for result in ("success", "failure"):
        assert before[result] + before_purged[result] == after[result] + after_purged[result]


def test_a_purge_races_a_workers_claims(postgres_only, committed, database_url, mail_sink):
    """A large purge runs in one thread while a worker claims due runs of the
    same job through the real app in others: every claim succeeds, and the
    purge deletes exactly the runs it may."""
    world = committed.world()
    committed.commit()
    job_id = world.job.id
    bulk_completed(committed.db, job_id, 6 * retention.BATCH, days_ago=60)
    committed.commit()
    due_ids = [committed.run(world.job, schedule_dts=now() - timedelta(seconds=1)).id]
    other_jobs = [committed.job(world.template, world.pool) for _ in range(30)]
    due_ids += [committed.run(job, schedule_dts=now() - timedelta(seconds=1)).id for job in other_jobs]
    committed.commit()

    engine = get_engine({"sqlalchemy.url": database_url})
    factory = get_session_factory(engine)
    duty = retention.Retention(typed(**DAYS))
    deleted = []

    def purge():
        while True:
            count = duty.run(lambda work, write=True: in_own_transaction(factory, work, write))
            deleted.append(count)
            if duty.after_job_id == 0 and duty.next_pass is not None:
                return

    app = main({}, **app_settings(database_url, mail_sink.port))
    client = WorkerClient(webtest.TestApp(app), world.worker)
    statuses = []
    purger = threading.Thread(target=purge)
    started = time.monotonic()
    purger.start()
    for run_id in due_ids:
        statuses.append(client.patch(f"/api/v1/run/{run_id}/", {"enqueue_dts": now().isoformat()},
                                     status=None).status_int)
    purger.join(timeout=120)
    assert not purger.is_alive()
    assert statuses == [202] * len(due_ids)
    # The newest three runs stay: the due run (claimed meanwhile) and two
    # completed ones.
    assert sum(deleted) == 6 * retention.BATCH - 2
    with factory() as session:
        left = session.scalar(select(func.count()).select_from(Run).where(Run.job_id == job_id))
        assert left == 3
    engine.dispose()
    assert time.monotonic() - started < 120
