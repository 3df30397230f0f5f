"""Claims racing between connections on PostgreSQL.

These tests commit for real, so they use the application's own sessions and
empty the tables afterwards instead of rolling back.
"""
import threading
from collections import Counter
from datetime import timedelta

import pytest
import webtest
from sqlalchemy import select, text
from sqlalchemy.orm import sessionmaker

from jobrunner.models import Run, metadata
from tests.conftest import Factory, WorkerClient, now, uri

pytestmark = pytest.mark.postgres


@pytest.fixture
def committed(engine, app, is_postgres):
    if not is_postgres:
        pytest.skip("races between connections are a PostgreSQL matter; SQLite serialises writers")
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    yield session
    session.close()
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def workers_and_runs(committed, workers, runs):
    """`workers` workers in one pool and `runs` due runs, one job each."""
    factory = Factory(committed)
    made = [factory.worker() for _ in range(workers)]
    pool = factory.pool(workers=made)
    template = factory.template(factory.project(pools=[pool]))
    due = [factory.run(factory.job(template, pool)) for _ in range(runs)]
    committed.commit()
    return made, due


def race(app, workers, claim_until_none_left):
    """Each worker runs `claim_until_none_left(worker, client)` on a thread
    of its own, all starting together; the failures of the threads."""
    failures = []
    start = threading.Barrier(len(workers))

    def work(worker):
        try:
            client = WorkerClient(webtest.TestApp(app), worker)
            start.wait()
            claim_until_none_left(worker, client)
        except BaseException as exc:  # a thread's failure must fail the test
            failures.append(repr(exc))

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return failures


def test_ten_workers_race_for_a_hundred_runs(committed, app):
    workers, runs = workers_and_runs(committed, 10, 100)
    claims = Counter()
    conflicts = Counter()

    def claim_until_none_left(worker, client):
        while True:
            listed = client.get("/api/v1/run/?state=enqueueable&limit=5").json["objects"]
            if not listed:
                return
            for run in listed:
                res = client.request(
                    "PATCH", run["resource_uri"], {"enqueue_dts": now().isoformat()}
                )
                assert res.status_int in (202, 409), res.text
                if res.status_int == 202:
                    claims[(run["id"], worker.api_key)] += 1
                else:
                    conflicts[run["id"]] += 1

    assert race(app, workers, claim_until_none_left) == []

    claimed_runs = Counter(run_id for run_id, _ in claims)
    assert sorted(claimed_runs) == sorted(r.id for r in runs)
    assert set(claimed_runs.values()) == {1}
    committed.expire_all()
    stored = {r.id: r for r in committed.scalars(select(Run))}
    for (run_id, api_key), _count in claims.items():
        run = stored[run_id]
        assert run.enqueue_dts is not None
        assert next(w for w in workers if w.id == run.worker_id).api_key == api_key


def test_two_schedules_of_one_job_never_become_active_together(committed, app):
    factory = Factory(committed)
    first, second = factory.worker(), factory.worker()
    pool = factory.pool(workers=[first, second])
    project = factory.project(pools=[pool])
    template = factory.template(project)
    jobs = [factory.job(template, pool) for _ in range(20)]
    pairs = [
        (factory.run(job, schedule_dts=now() - timedelta(minutes=2)),
         factory.run(job, schedule_dts=now() - timedelta(minutes=1)))
        for job in jobs
    ]
    committed.commit()

    for early, late in pairs:
        barrier = threading.Barrier(2)
        statuses = {}

        def claim(worker, run):
            client = WorkerClient(webtest.TestApp(app), worker)
            barrier.wait()
            res = client.request("PATCH", uri("run", run), {"enqueue_dts": now().isoformat()})
            statuses[worker.id] = (res.status_int, res.text)

        threads = [threading.Thread(target=claim, args=(first, early)),
                   threading.Thread(target=claim, args=(second, late))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(status for status, _ in statuses.values()) == [202, 409], statuses

    committed.expire_all()
    for job in jobs:
        active = committed.scalars(
            select(Run).where(Run.job_id == job.id, Run.enqueue_dts.is_not(None))
        ).all()
        assert len(active) == 1


def test_ten_workers_claiming_several_at_once_take_each_run_once(committed, app):
    """`POST run/claim/` from ten workers at once, each returning what it
    got with its next claim: every run claimed, started and returned once."""
    workers, runs = workers_and_runs(committed, 10, 200)
    claims = Counter()
    refused = []

    def claim_until_none_left(worker, client):
        returns = []
        while True:
            res = client.post("/api/v1/run/claim/", {"limit": 8, "start": True, "returns": returns},
                              status=200)
            refused.extend(entry for entry in res.json["returns"] if entry["status"] != 202)
            got = res.json["objects"]
            for run in got:
                assert run["worker"] == uri("worker", worker) and run["start_dts"] is not None
                claims[run["id"]] += 1
            if not got and not returns:
                return
            returns = [{"run": run["resource_uri"], "return_dts": now().isoformat(),
                        "return_success": True} for run in got]

    assert race(app, workers, claim_until_none_left) == []
    assert refused == []
    assert sorted(claims) == sorted(r.id for r in runs)
    assert set(claims.values()) == {1}
    committed.expire_all()
    assert all(run.return_success for run in committed.scalars(select(Run)))
