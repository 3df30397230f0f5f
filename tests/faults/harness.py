"""The fault suite's load and its accounting.

`Load` puts a project, a pool of two workers and a set of jobs on a live
`Stack`, and schedules a steady stream of short runs (one every
1/`rate` seconds, each due at its own moment, inserted before the fault so
that what was submitted does not depend on the fault). Every execution of a
script appends `start <run id>` and, when it gets to its end, `end <run id>`
to a trace file outside the database (the worker gives each script its run
id as JOBRUNNER_RUN_ID). At the end the trace is compared with the database:

* submitted: the runs scheduled;
* completed: returned as successful;
* failed: returned as failed (a run interrupted by the fault: its worker was
  killed, say);
* executed twice: more than one `start` line for one run;
* lost: not returned within the allowed time, returned without ever having
  run (except, where the fault kills workers, a run whose start was stored
  and that was returned failed: its worker died between storing the start
  and spawning the script, and the run is reported, not lost), or run to
  its end (an `end` line) and then recorded as failed when its worker lived
  on to report it;
* recovery: seconds from the fault's end until the first run returns after it.
"""
import collections
import os
import re
import signal
import statistics
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import requests
from sqlalchemy import select

from jobrunner.models import Job, JobTemplate, Project, Run, RunLog, Worker, WorkerPool

from bench.stack import SignedClient, wait_until

# The worker is judged unresponsive after 1 + 1 * 3 = 4 s without a ping.
FAULT_SETTINGS = {
    "jobrunner.scheduler.interval": "0.2",
    "jobrunner.worker.ping_interval": "1",
    "jobrunner.worker.ping_margin": "1",
    "jobrunner.worker.unresponsive_after_intervals": "3",
}
UNRESPONSIVE_LIMIT = 4.0


def epoch(value):
    return value.timestamp() if value is not None else None


class Load:
    def __init__(self, stack, workdir, workers=2, jobs=10, script_seconds=0.3, failing=False,
                 webhook_url=None):
        self.stack = stack
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.trace = os.path.join(self.workdir, "trace")
        self.tag = uuid.uuid4().hex[:8]
        self.run_ids = []
        self.processes = {}
        self.failing = failing
        exit_line = "exit 1" if failing else "exit 0"
        script = (f'echo "start $JOBRUNNER_RUN_ID" >> {self.trace}\n'
                  f"sleep {script_seconds}\n"
                  f'echo "end $JOBRUNNER_RUN_ID" >> {self.trace}\n{exit_line}')
        with stack.Session() as session:
            now = datetime.now(timezone.utc)
            self.workers = [Worker(title=f"fault worker {i} {self.tag}", api_key=f"f{i}-{self.tag}",
                                   secret=f"secret-{i}-{self.tag}", ping_response_dts=now)
                            for i in range(1, workers + 1)]
            pool = WorkerPool(title=f"pool {self.tag}", workers=list(self.workers),
                              notification_addresses=f"pool-{self.tag}@example.com",
                              webhook_urls=webhook_url or "")
            project = Project(title=f"project {self.tag}", worker_pools=[pool])
            template = JobTemplate(title=f"template {self.tag}", project=project,
                                   body="#!/bin/sh\n{{ content }}\n")
            self.jobs = []
            for i in range(jobs):
                job = Job(title=f"fault job {i} {self.tag}", job_template=template,
                          worker_pool=pool, script_content_partial=script)
                job.script_content = job.render_script()
                self.jobs.append(job)
            session.add_all([*self.workers, pool, project, template, *self.jobs])
            session.commit()
        self.api = SignedClient(stack.base_url, self.workers[0].api_key, self.workers[0].secret)

    # --- the load ----------------------------------------------------------------

    def schedule(self, seconds, rate, start_in=0.5):
        """Runs due from `start_in` s from now, `rate` a second for `seconds` s,
        spread over the jobs in turn. Returns the moment the last is due."""
        count = int(seconds * rate)
        first = datetime.now(timezone.utc) + timedelta(seconds=start_in)
        with self.stack.Session() as session:
            runs = []
            for i in range(count):
                run = Run(job_id=self.jobs[i % len(self.jobs)].id,
                          schedule_dts=first + timedelta(seconds=i / rate), is_manual=True)
                session.add(run)
                runs.append(run)
            session.flush()
            for run in runs:
                run.schedule_id = run.id
            session.commit()
            self.run_ids += [run.id for run in runs]
        return epoch(first) + (count - 1) / rate

    def add_job(self, script, **fields):
        """One more job of the load's pool (outside the accounting)."""
        with self.stack.Session() as session:
            template = session.scalar(select(JobTemplate).where(
                JobTemplate.title == f"template {self.tag}"))
            job = Job(title=f"extra job {uuid.uuid4().hex[:8]} {self.tag}", job_template=template,
                      worker_pool_id=self.jobs[0].worker_pool_id, script_content_partial=script,
                      **fields)
            job.script_content = job.render_script()
            session.add(job)
            session.commit()
            return job.id

    def run_now(self, job_id, worker_id=None):
        """A run due now; with `worker_id`, pinned to that worker."""
        with self.stack.Session() as session:
            run = Run(job_id=job_id, schedule_dts=datetime.now(timezone.utc), is_manual=True,
                      worker_id=worker_id)
            session.add(run)
            session.flush()
            run.schedule_id = run.id
            session.commit()
            return run.id

    def runs_of_job(self, job_id):
        with self.stack.Session() as session:
            return list(session.scalars(select(Run).where(Run.job_id == job_id).order_by(Run.id)))

    def log_of(self, run_id):
        with self.stack.Session() as session:
            log = session.scalar(select(RunLog).where(RunLog.run_id == run_id))
            return log.content if log else ""

    def scheduler_expands(self, timeout=30):
        """The scheduler does its duties: a run-on-all-workers run due now is
        expanded into one run per worker, and each of them returns."""
        job_id = self.add_job("true", run_on_all_workers=True)
        self.run_now(job_id)
        wait_until(lambda: sum(1 for run in self.runs_of_job(job_id) if run.return_success)
                   >= len(self.workers), timeout=timeout, interval=0.2,
                   message="the scheduler's expansion of a run-on-all-workers run")

    # --- workers ---------------------------------------------------------------------

    def start_worker(self, number, base_url=None, **options):
        worker = self.workers[number - 1]
        if base_url:
            options["api_base_url"] = base_url + "/"
        options.setdefault("script_temp_path", os.path.join(self.workdir, "scripts"))
        options.setdefault("ping_interval", 0.5)
        proc = self.stack.start_worker(worker.api_key, worker.secret,
                                       name=f"worker-{number}-{self.tag}", **options)
        self.processes[number] = proc
        return proc

    def wait_pinged(self, since, numbers=None):
        """Waits until the workers (all, or those `numbers`) pinged after `since`."""
        chosen = [self.workers[n - 1] for n in (numbers or range(1, len(self.workers) + 1))]

        def pinged():
            with self.stack.Session() as session:
                workers = [session.get(Worker, w.id) for w in chosen]
                return all(w.worker_version and w.ping_response_dts.timestamp() >= since
                           for w in workers)

        wait_until(pinged, timeout=60, message="the workers' pings")

    def kill_worker(self, number):
        """SIGKILL to the worker alone: its scripts run on in their own groups."""
        proc = self.processes[number]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def close(self):
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=15)
            except Exception:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.stack.kill_strays(self.workdir)

    # --- accounting ------------------------------------------------------------------

    def runs(self):
        with self.stack.Session() as session:
            return {run.id: run for run in session.scalars(
                select(Run).where(Run.id.in_(self.run_ids)))}

    def settled(self):
        runs = self.runs()
        return len(runs) == len(self.run_ids) and all(
            run.return_dts is not None for run in runs.values())

    def wait_settled(self, timeout):
        try:
            wait_until(self.settled, timeout=timeout, interval=0.25, message="every run's return")
        except AssertionError:
            pass  # what is not returned by now counts as lost

    def executions(self):
        starts, ends = collections.Counter(), collections.Counter()
        if os.path.exists(self.trace):
            with open(self.trace) as f:
                for line in f:
                    kind, _, run_id = line.strip().partition(" ")
                    if run_id.isdigit():
                        (starts if kind == "start" else ends)[int(run_id)] += 1
        return starts, ends

    def figures(self, fault_end, interrupted_ok=False):
        """The figures of the module's docstring; with `interrupted_ok`, a run
        that ran to its end while its worker was down may be recorded failed,
        and a started run whose worker died before its script ran is
        returned failed without a trace."""
        runs = self.runs()
        starts, ends = self.executions()
        completed = sum(1 for run in runs.values() if run.return_success)
        failed = [run for run in runs.values() if run.return_dts and not run.return_success]
        twice = sorted(run_id for run_id in self.run_ids if starts[run_id] > 1)
        lost = sorted(
            run.id for run in runs.values()
            if run.return_dts is None
            or (starts[run.id] == 0
                and not (interrupted_ok and run.start_dts is not None and not run.return_success))
            or (not interrupted_ok and not self.failing and ends[run.id] and not run.return_success)
        )
        after = [epoch(run.return_dts) for run in runs.values()
                 if run.return_dts is not None and epoch(run.return_dts) >= fault_end]
        latencies = [epoch(run.enqueue_dts) - epoch(run.schedule_dts) for run in runs.values()
                     if run.enqueue_dts is not None]
        return {
            "submitted": len(self.run_ids),
            "completed": completed,
            "failed": len(failed),
            "executed_twice": len(twice),
            "lost": len(lost),
            "recovery_s": round(min(after) - fault_end, 2) if after else None,
            "claim_latency_max_s": round(max(latencies), 2) if latencies else None,
            "claim_latency_median_s": round(statistics.median(latencies), 2) if latencies else None,
            "twice_ids": twice,
            "lost_ids": lost,
            "failed_ids": sorted(run.id for run in failed),
        }

    def failure_mails(self, mail_sink):
        """Run ids named by this load's failure mails, one entry per mail."""
        ids = []
        for message in list(mail_sink.messages):
            if message["subject"] and self.tag in message["subject"] and \
                    message["subject"].startswith("Run error for:"):
                match = re.search(r"Run id:\s+(\d+)", message["body"])
                if match:
                    ids.append(int(match.group(1)))
        return ids


class Probe(threading.Thread):
    """Asks the server every `interval` s what a worker asks most (its
    enqueueable runs) and keeps each answer's status, so a test sees every
    500 and every 503 without a JSON error."""

    def __init__(self, base_url, worker, interval=0.1):
        super().__init__(name="probe", daemon=True)
        self.client = SignedClient(base_url, worker.api_key, worker.secret)
        self.interval = interval
        self.answers = []
        self._stop_requested = threading.Event()

    def run(self):
        path = "/api/v1/run/?state=enqueueable&limit=1"
        while not self._stop_requested.is_set():
            at = time.time()
            try:
                response = self.client.request("GET", path, timeout=10)
                try:
                    body = response.json()
                except ValueError:
                    body = None
                self.answers.append((at, response.status_code, body,
                                     response.headers.get("Retry-After"), response.text[:300]))
            except requests.RequestException:
                self.answers.append((at, None, None, None, "no answer"))
            self._stop_requested.wait(self.interval)

    def stop(self):
        self._stop_requested.set()
        self.join(timeout=15)

    def statuses(self):
        return collections.Counter(status for _at, status, *_ in self.answers)

    def bad_answers(self):
        """Answers that are neither a success, nor a 503 with a JSON error and
        Retry-After, nor no answer at all (the server down)."""
        bad = []
        for at, status, body, retry_after, text in self.answers:
            if status is None or status == 200:
                continue
            if status == 503 and isinstance(body, dict) and body.get("error") and retry_after:
                continue
            bad.append((status, text))
        return bad


class Silent(threading.Thread):
    """A TCP server that accepts connections and never says a word: an SMTP
    server or a webhook endpoint that hangs."""

    def __init__(self):
        import socket

        super().__init__(name="silent", daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = []
        self._closed = False
        self.start()

    def run(self):
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self):
        self._closed = True
        self.sock.close()
        for conn in self.connections:
            conn.close()
