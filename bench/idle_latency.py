#!/usr/bin/env python
"""Dispatch latency of a run made while the worker is idle.

    python bench/idle_latency.py [--runs 30] [--postgres-url postgresql://...]

A live stack on loopback (pserve, one jobrunner-worker with its default
poll settings, concurrent_jobs 4); a run "now" is posted through the API
every 0.5 to 1.5 s, each once the one before has returned, and its dispatch
latency (start_dts - schedule_dts) is taken from the database, and the
part of it until the worker claimed the run (enqueue_dts - schedule_dts).
"""
import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH_DIR))

from jobrunner.models import Job, JobTemplate, Project, Run, Worker, WorkerPool  # noqa: E402
from bench.stack import SignedClient, Stack, wait_until  # noqa: E402

SECRET = "idle-latency-secret"


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        stack = Stack(workdir, database_url=args.postgres_url)
        try:
            api_key = "idle-" + uuid.uuid4().hex[:8]
            with stack.Session() as session:
                worker = Worker(api_key=api_key, secret=SECRET, title="idle worker")
                pool = WorkerPool(title="idle pool", workers=[worker])
                project = Project(title="idle", worker_pools=[pool])
                template = JobTemplate(title="sh", body="{{ content }}", project=project)
                job = Job(title="true", job_template=template, worker_pool=pool,
                          script_content_partial="#!/bin/sh\ntrue\n",
                          script_content="#!/bin/sh\ntrue\n")
                session.add_all([worker, pool, project, template, job])
                session.commit()
                job_id = job.id
            stack.start_server()
            # The worker's defaults but the ping (which only keeps it alive).
            stack.start_worker(api_key, SECRET, poll_interval="1", ping_interval="60")
            client = SignedClient(stack.base_url, api_key, SECRET)

            def pinged():
                with stack.Session() as session:
                    return session.get(Worker, worker.id).ping_response_dts

            wait_until(pinged, timeout=60, message="the worker's first ping")
            latencies, claims = [], []
            for _ in range(args.runs):
                time.sleep(random.uniform(0.5, 1.5))
                now = datetime.now(timezone.utc).isoformat()
                response = client.request("POST", "/api/v1/run/",
                                          {"job": f"/api/v1/job/{job_id}/", "schedule_dts": now})
                assert response.status_code == 201, response.text
                run_id = response.json()["id"]

                def returned():
                    with stack.Session() as session:
                        run = session.get(Run, run_id)
                        return run if run.return_dts is not None else None

                run = wait_until(returned, timeout=60, interval=0.02, message="the run to return")
                latencies.append((run.start_dts - run.schedule_dts).total_seconds())
                claims.append((run.enqueue_dts - run.schedule_dts).total_seconds())
            print(f"database: {'PostgreSQL' if args.postgres_url else 'SQLite'}; "
                  f"{len(latencies)} runs; load average {os.getloadavg()[0]:.2f}")
            print(f"dispatch latency p50 {percentile(latencies, 0.5):.3f} s, "
                  f"p99 {percentile(latencies, 0.99):.3f} s, max {max(latencies):.3f} s")
            print(f"until the claim: p50 {percentile(claims, 0.5):.3f} s, "
                  f"p99 {percentile(claims, 0.99):.3f} s, max {max(claims):.3f} s")
        finally:
            stack.close()


if __name__ == "__main__":
    main()
