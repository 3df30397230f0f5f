"""Listing takes a small constant number of SQL statements, not one per row."""
from datetime import time

import pytest

from jobrunner.models import Job, KillRequest, RescheduleExclude, Run, RunLog
from tests.conftest import utc

# The caller, the count, the page, one per relation loaded in bulk, and the
# test's own SAVEPOINT / ROLLBACK TO SAVEPOINT around each request.
MAX_STATEMENTS = 10


def add_runs(factory, world, count):
    """Runs of every kind, each with a log, every other one with a kill request."""
    runs = []
    for i in range(count):
        started = i % 2 == 0
        at = utc(2020, 1, 1) if started else None
        run = Run(job_id=world.job.id, schedule_dts=utc(2020, 1, 1),
                  worker_id=world.worker.id if started else None, enqueue_dts=at, start_dts=at)
        run.run_log = RunLog(content="output " * 50)
        if started:
            run.kill_requests = [KillRequest(schedule_dts=utc(2020, 1, 1))]
        runs.append(run)
    factory.db.add_all(runs)
    factory.db.flush()
    for run in runs:
        run.schedule_id = run.id
    factory.db.flush()


def add_jobs(factory, world, count):
    """Jobs in chains of two, each with two reschedule excludes (in a template
    of their own: titles are unique per template)."""
    template = factory.template(world.project)
    jobs = []
    for i in range(count):
        job = Job(title=f"job {i}", job_template_id=template.id, worker_pool_id=world.pool.id,
                  script_content="#!/bin/sh\n", parent=jobs[-1] if i % 2 else None)
        job.reschedule_excludes = [RescheduleExclude(start_time=time(1), end_time=time(2), note="a"),
                                   RescheduleExclude(start_time=time(3), end_time=time(4), note="b")]
        jobs.append(job)
    factory.db.add_all(jobs)
    factory.db.flush()


def statements_for(client, count_statements, path, expected_objects):
    client.get(path)  # anything a request keeps (a worker's identity) is kept now
    with count_statements:
        res = client.get(path)
    assert len(res.json["objects"]) == expected_objects
    return count_statements.count, count_statements.statements


@pytest.fixture(params=["admin", "viewer", "worker"])
def client(request, world, admin, session_for, as_worker):
    if request.param == "admin":
        return admin
    if request.param == "viewer":
        return session_for(groups=[world.viewers])
    worker = as_worker(world.worker)
    # Its first request looks the worker up; the next ones find it kept.
    worker.get("/api/v1/worker/")
    return worker


@pytest.mark.parametrize("resource, add", [("run", add_runs), ("job", add_jobs)])
def test_listing_costs_the_same_for_20_and_200_rows(world, factory, client, count_statements, resource, add):
    # The world has one job already.
    existing = 1 if resource == "job" else 0
    add(factory, world, 20 - existing)
    small, _ = statements_for(client, count_statements, f"/api/v1/{resource}/", 20)
    add(factory, world, 180)
    large, statements = statements_for(client, count_statements, f"/api/v1/{resource}/", 200)
    assert large == small, statements
    assert large <= MAX_STATEMENTS, statements


def test_other_lists_cost_a_constant_number_too(world, factory, admin, count_statements):
    def grow(count):
        for _ in range(count):
            group = factory.group()
            pool = factory.pool(workers=[factory.worker(), factory.worker()])
            project = factory.project(groups=[group], auth_groups=[group, world.admins],
                                      pools=[pool, world.pool])
            factory.template(project)

    grow(5)
    small = {name: statements_for(admin, count_statements, f"/api/v1/{name}/?limit=5", 5)[0]
             for name in ("group", "project", "worker_pool", "worker", "job_template")}
    grow(40)
    large = {name: statements_for(admin, count_statements, f"/api/v1/{name}/?limit=40", 40)[0]
             for name in ("group", "project", "worker_pool", "worker", "job_template")}
    assert large == small
    assert max(large.values()) <= MAX_STATEMENTS, large
