#!/usr/bin/env python
"""The benchmark: the real stack on loopback, measurement by measurement.

    python bench/run.py                 # PostgreSQL and SQLite, writes docs/performance.md
    python bench/run.py --quick         # SQLite, small numbers, no docs (the smoke test)

1. End to end: trivial runs (`#!/bin/sh` + `true`) completed per second by two
   workers of concurrent_jobs = 8; dispatch latency (start_dts - schedule_dts)
   of runs that were due when they were scheduled, arriving at a steady rate;
   the machine's own process-start rate beside it.
2. API cost: requests per second of the worker's hot calls (HMAC-signed)
   against a bare Pyramid view under waitress with the same thread count.
3. History: latency of the hot lists and of the dashboard overview with
   1,000 and with 1,000,000 completed runs in the database.
4. Memory: peak RSS (VmHWM) of the server and of a worker during (1).
5. Purge: claim latency while retention deletes the history of (3) (about
   990,000 runs), batch after batch with no pause, against the same claims
   before the purge; and the purge's own rate.
6. Burst (bench/burst.py): 1,000 distinct one-line jobs due at one moment:
   runs/s and the server's CPU per completed run.
7. Latency (bench/latency.py): dispatch latency with the worker's defaults,
   runs arriving at 10/s and a run now and then.
8. Idle (bench/idle.py): the CPU that 200 idle worker daemons cost the
   server and PostgreSQL.
9. Two servers (bench/burst.py): (6) through two pserve processes on one
   database; every run exactly once.

Phases by name (--phases): e2e (1, 4), burst, latency, twoservers, idle,
api, history, purge.

The bench makes its own database (a fresh PostgreSQL database next to the
one --postgres-url names, dropped at the end; a SQLite file in a temporary
folder) and loads its own data: models through the ORM, runs in bulk.
"""
import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, ROOT)

from sqlalchemy import func, insert, select, text, update  # noqa: E402

from jobrunner.models import (  # noqa: E402
    Group,
    Job,
    JobTemplate,
    Project,
    Run,
    RunLog,
    User,
    Worker,
    WorkerPool,
)
from jobrunner.scheduling.wakeups import notify_waiters  # noqa: E402
from jobrunner.security.passwords import hash_password  # noqa: E402
from jobrunner.signing import compute_signature  # noqa: E402
from bench.common import (  # noqa: E402
    CpuMeter, iso, load_average, log, peak_rss_mb, percentile, utcnow)
from bench.stack import Stack, UserSession, free_port, wait_until  # noqa: E402
from bench import burst, idle, latency  # noqa: E402

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DOCS_PATH = os.path.join(ROOT, "docs", "performance.md")
BEGIN_MARK = "<!-- bench:begin (written by bench/run.py; edit around it) -->"
END_MARK = "<!-- bench:end -->"
PASSWORD = "bench-password"
PRODUCTION_INI = os.path.join(ROOT, "production.ini")
SCRIPT = "true"
TEMPLATE_BODY = "#!/bin/sh\n{{ content }}\n"

# Production's settings, not the tests' short intervals: the bench measures
# what an operator gets.
SERVER_SETTINGS = {
    "jobrunner.scheduler.interval": "5",
    "jobrunner.worker.ping_interval": "60",
    "jobrunner.worker.ping_margin": "15",
    "jobrunner.worker.unresponsive_after_intervals": "3",
}
WORKER_OPTIONS = {"concurrent_jobs": 8, "poll_interval": 1.0, "ping_interval": 60}


def production_options():
    """production.ini's waitress options (threads, limits), database pool
    and cap of waiting requests, for the bench's pserve: what an operator
    runs. The address and the proxy options are the bench's own."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(PRODUCTION_INI)
    server = {key: value for key, value in parser["server:main"].items()
              if key not in ("use", "listen", "host", "port") and "proxy" not in key}
    app = {key: value for key, value in parser["app:main"].items()
           if key.startswith(("sqlalchemy.pool", "sqlalchemy.max_overflow", "jobrunner.api.max_waiting"))}
    return server, app


SERVER_OPTIONS, POOL_SETTINGS = production_options()
SERVER_SETTINGS.update(POOL_SETTINGS)
WAITRESS_THREADS = int(SERVER_OPTIONS.get("threads", 4))  # the bare app's too

TARGET_RUNS_PER_SECOND = 100
TARGET_P99_SECONDS = 1.0
TARGET_API_RATIO = 0.5
TARGET_HISTORY_RATIO = 2.0
TARGET_SERVER_MB = 150
TARGET_WORKER_MB = 60


@dataclass
class Sizes:
    e2e_jobs: int = 64
    e2e_runs: int = 1000
    paced_runs: int = 300
    paced_rate: float = 20.0
    api_requests: int = 1500
    api_clients: int = 2
    api_threads: int = 2
    history_jobs: int = 100
    history: tuple = (1_000, 1_000_000)
    repeats: int = 40
    process_starts: int = 1000
    purge_claims: int = 200
    burst_jobs: int = 1000
    steady_runs: int = 300
    steady_rate: float = 10.0
    sparse_runs: int = 20
    sparse_gaps: tuple = (1.5, 3.0)
    idle_workers: int = 200
    idle_seconds: float = 60.0
    idle_settle: float = 5.0


QUICK = Sizes(e2e_jobs=8, e2e_runs=30, paced_runs=10, paced_rate=10.0, api_requests=40,
              history_jobs=10, history=(1_000,), repeats=3, process_starts=100, purge_claims=20,
              burst_jobs=30, steady_runs=10, sparse_runs=3, sparse_gaps=(0.3, 0.6), idle_workers=4,
              idle_seconds=3.0, idle_settle=1.0)


# --- the machine -----------------------------------------------------------------


def machine_facts(postgres_url):
    facts = {"nproc": os.cpu_count(), "python": platform.python_version(),
             "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            models = re.findall(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        facts["cpu"] = models[0].strip() if models else platform.processor()
    except OSError:
        facts["cpu"] = platform.processor()
    try:
        with open("/proc/meminfo") as f:
            total_kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
        facts["memory"] = f"{total_kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        facts["memory"] = "?"
    facts["postgresql"] = None
    if postgres_url:
        try:
            from sqlalchemy import create_engine

            from jobrunner.models import normalize_url

            engine = create_engine(normalize_url(postgres_url))
            with engine.connect() as conn:
                facts["postgresql"] = conn.scalar(text("SHOW server_version"))
            engine.dispose()
        except Exception as exc:  # the report says why it is missing
            facts["postgresql"] = f"unavailable ({type(exc).__name__})"
    return facts


def process_start_rate(count):
    """How many trivial processes this machine starts per second by itself."""
    for _ in range(10):
        subprocess.run(["/bin/true"])
    started = time.perf_counter()
    for _ in range(count):
        subprocess.run(["/bin/true"])
    return count / (time.perf_counter() - started)


# --- data ----------------------------------------------------------------------------


class Scene:
    """The models of the bench: one project, one pool, three workers (two
    daemons and one that the API phase speaks for), jobs."""

    def __init__(self, stack, sizes):
        self.stack = stack
        self.engine = stack.engine
        self.is_postgres = stack.database.is_postgres
        self.secrets = {}
        with stack.Session() as db:
            viewers = Group(name="bench-viewers")
            user = User(username="viewer", password_hash=hash_password(PASSWORD), email="v@example.com",
                        groups=[viewers])
            workers = [Worker(title=f"bench worker {i}", api_key=f"bench-{i}", secret=f"secret-{i}",
                              concurrent_jobs=WORKER_OPTIONS["concurrent_jobs"]) for i in (1, 2, 3)]
            pool = WorkerPool(title="bench pool", workers=workers)
            project = Project(title="bench", groups=[viewers], worker_pools=[pool])
            template = JobTemplate(title="sh", body=TEMPLATE_BODY, project=project)
            db.add_all([viewers, user, pool, project, template])
            db.flush()
            self.template_id, self.pool_id = template.id, pool.id
            self.workers = [(w.id, w.api_key, w.secret) for w in workers]
            db.commit()
        self.e2e_jobs = self.add_jobs("e2e", sizes.e2e_jobs)
        self.history_jobs = self.add_jobs("history", sizes.history_jobs)

    def write(self):
        """A connection in a writing transaction (BEGIN IMMEDIATE on SQLite)."""
        return self.engine.connect().execution_options(jobrunner_write=True)

    def add_jobs(self, prefix, count, content=SCRIPT):
        script = TEMPLATE_BODY.replace("{{ content }}", content)
        rows = [
            {"title": f"{prefix} {i:06d}", "job_template_id": self.template_id,
             "worker_pool_id": self.pool_id, "script_content_partial": content,
             "script_content": script}
            for i in range(count)
        ]
        with self.write() as conn:
            conn.execute(insert(Job.__table__), rows)
            ids = conn.scalars(
                select(Job.id).where(Job.title.like(f"{prefix} %")).order_by(Job.id)
            ).all()
            conn.commit()
        return ids

    def add_runs(self, job_ids, schedule_dts):
        """One due run per job id (ids may repeat), schedule_id = id."""
        with self.write() as conn:
            before = conn.scalar(select(func.coalesce(func.max(Run.id), 0)))
            conn.execute(insert(Run.__table__), [
                {"job_id": job_id, "schedule_dts": schedule_dts, "is_manual": False,
                 "schedule_children": True}
                for job_id in job_ids
            ])
            conn.execute(update(Run.__table__).where(Run.id > before).values(schedule_id=Run.id))
            ids = conn.scalars(select(Run.id).where(Run.id > before).order_by(Run.id)).all()
            # Made on a bare connection, as the scheduler's session would tell them.
            notify_waiters(conn)
            conn.commit()
        return ids

    def add_run_now(self, job_id):
        with self.write() as conn:
            run_id = conn.execute(
                insert(Run.__table__).values(job_id=job_id, schedule_dts=utcnow(), is_manual=False,
                                             schedule_children=True).returning(Run.id)
            ).scalar_one()
            conn.execute(update(Run.__table__).where(Run.id == run_id).values(schedule_id=run_id))
            notify_waiters(conn)
            conn.commit()
        return run_id

    def scalar(self, statement):
        with self.engine.connect() as conn:
            return conn.scalar(statement)

    def analyze(self):
        if self.is_postgres:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        else:
            with self.write() as conn:
                conn.execute(text("ANALYZE"))
                conn.commit()

    def clear_runs(self):
        with self.write() as conn:
            for table in ("run_log", "kill_request", "run"):
                conn.execute(text(f"DELETE FROM {table}"))
            conn.execute(update(Job.__table__).values(last_completed_schedule_id=None, fail_times=0))
            conn.commit()

    def load_completed(self, first, count, worker_id):
        """Completed runs number first .. first + count - 1 of the history
        jobs, each a minute older than the one before, each with a log; in
        bulk (generate_series on PostgreSQL, a recursive CTE on SQLite). The
        newest 100 belong to the first job, whose last 100 runs are measured:
        its page is full at every size, only the history behind it grows."""
        jobs = self.history_jobs
        assert jobs == list(range(jobs[0], jobs[0] + len(jobs))), "history jobs are not contiguous"
        base = (utcnow() - timedelta(hours=1)).replace(tzinfo=None, microsecond=0)
        params = {"first": first, "last": first + count - 1, "job0": jobs[0], "njobs": len(jobs),
                  "worker": worker_id, "base": base}
        with self.write() as conn:
            before = conn.scalar(select(func.coalesce(func.max(Run.id), 0)))
            if self.is_postgres:
                conn.execute(text("""
                    INSERT INTO run (id, schedule_id, job_id, worker_id, schedule_dts, enqueue_dts,
                                     start_dts, return_dts, return_success, pid, is_manual,
                                     schedule_children)
                    SELECT s.n, s.n, CASE WHEN s.g <= 100 THEN CAST(:job0 AS integer) ELSE CAST(:job0 AS integer) + s.g % CAST(:njobs AS integer) END, CAST(:worker AS integer), s.dts,
                           s.dts + interval '1 second', s.dts + interval '2 seconds',
                           s.dts + interval '3 seconds', s.g % 10 <> 0, 1000 + s.g % 30000,
                           false, true
                    FROM (SELECT nextval('run_id_seq') AS n, g,
                                 CAST(:base AS timestamp) - make_interval(mins => g) AS dts
                          FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g) AS s
                """), params)
            else:
                params["id0"] = before
                conn.execute(text("""
                    WITH RECURSIVE series(g) AS (
                        SELECT :first UNION ALL SELECT g + 1 FROM series WHERE g < :last)
                    INSERT INTO run (id, schedule_id, job_id, worker_id, schedule_dts, enqueue_dts,
                                     start_dts, return_dts, return_success, pid, is_manual,
                                     schedule_children)
                    SELECT :id0 + g - :first + 1, :id0 + g - :first + 1,
                           CASE WHEN g <= 100 THEN :job0 ELSE :job0 + g % :njobs END,
                           :worker, d || '.000000',
                           strftime('%Y-%m-%d %H:%M:%S', d, '+1 seconds') || '.000000',
                           strftime('%Y-%m-%d %H:%M:%S', d, '+2 seconds') || '.000000',
                           strftime('%Y-%m-%d %H:%M:%S', d, '+3 seconds') || '.000000',
                           g % 10 <> 0, 1000 + g % 30000, 0, 1
                    FROM (SELECT g, strftime('%Y-%m-%d %H:%M:%S', :base, printf('-%d minutes', g)) AS d
                          FROM series)
                """), {**params, "base": base.strftime("%Y-%m-%d %H:%M:%S")})
            conn.execute(text("INSERT INTO run_log (run_id, content) "
                              "SELECT id, 'ok' FROM run WHERE id > :before"), {"before": before})
            latest = (select(Run.schedule_id)
                      .where(Run.job_id == Job.id, Run.return_dts.is_not(None))
                      .order_by(Run.schedule_dts.desc()).limit(1).scalar_subquery())
            conn.execute(update(Job.__table__).where(Job.id.in_(jobs))
                         .values(last_completed_schedule_id=latest))
            conn.commit()


# --- HTTP ----------------------------------------------------------------------------


def signed(worker, method, path, data=None):
    """[method, path, body, headers] of a worker's request, as the daemon signs it."""
    _id, api_key, secret = worker
    body = json.dumps(data, separators=(",", ":")) if data is not None else ""
    headers = {"Authorization": f"ApiKey {api_key}:{compute_signature(secret, method, path, body.encode())}",
               "Accept": "application/json"}
    if body:
        headers["Content-Type"] = "application/json"
    return [method, path, body, headers]


class Client:
    """One keep-alive connection for sequential latency measurements."""

    def __init__(self, port):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def send(self, method, path, body, headers):
        self.connection.request(method, path, body=body.encode() if body else None, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.will_close:
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        return response.status, payload

    def timed(self, request, repeats, expect=200):
        for _ in range(3):
            status, payload = self.send(*request)
            if status != expect:
                raise RuntimeError(f"{request[0]} {request[1]} -> {status}: {payload[:300]!r}")
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            status, _payload = self.send(*request)
            seconds.append(time.perf_counter() - started)
            if status != expect:
                raise RuntimeError(f"{request[0]} {request[1]} -> {status}")
        return seconds

    def close(self):
        self.connection.close()


def hammer(port, requests, clients, threads, workdir, name):
    """Sends every request once from `clients` processes of `threads`
    connections each; returns (requests per second, statuses)."""
    procs = []
    for index in range(clients):
        path = os.path.join(workdir, f"load-{name}-{index}.json")
        with open(path, "w") as f:
            json.dump({"port": port, "requests": requests[index::clients]}, f)
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(BENCH_DIR, "loadgen.py"), path, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        ))
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    statuses = {}
    for proc in procs:
        result = json.loads(proc.stdout.readline())
        proc.wait(timeout=60)
        for status, count in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return len(requests) / (time.perf_counter() - started), statuses


# --- the measurements ----------------------------------------------------------------


def start_workers(stack, scene, workdir):
    procs = []
    for _id, api_key, secret in scene.workers[:2]:
        procs.append(stack.start_worker(api_key, secret, **WORKER_OPTIONS,
                                        script_temp_path=os.path.join(workdir, "scripts")))
    daemon_ids = [w[0] for w in scene.workers[:2]]
    wait_until(lambda: scene.scalar(select(func.count()).where(
        Worker.id.in_(daemon_ids), Worker.ping_response_dts.is_not(None))) == 2,
        timeout=60, message="both workers to ping")
    return procs


def wait_returned(scene, run_ids, timeout):
    first, last = min(run_ids), max(run_ids)
    in_range = (Run.id >= first, Run.id <= last)
    wait_until(lambda: scene.scalar(select(func.count()).where(*in_range, Run.return_dts.is_not(None)))
               == len(run_ids), timeout=timeout, interval=0.1, message=f"{len(run_ids)} runs to return")
    with scene.engine.connect() as conn:
        rows = conn.execute(select(Run.schedule_dts, Run.start_dts, Run.return_dts, Run.return_success)
                            .where(*in_range)).all()
    return rows


def measure_end_to_end(stack, scheduler, scene, sizes, workdir, result):
    workers = start_workers(stack, scene, workdir)
    jobs = scene.e2e_jobs
    log(f"end to end: {sizes.e2e_runs} runs due now over {len(jobs)} jobs")
    meter = CpuMeter({"server": stack.server.pid, "scheduler": scheduler.pid,
                      **{f"worker {i + 1}": proc.pid for i, proc in enumerate(workers)}},
                     engine=scene.engine if scene.is_postgres else None)
    meter.start()
    now = utcnow()
    run_ids = scene.add_runs([jobs[i % len(jobs)] for i in range(sizes.e2e_runs)], now)
    rows = wait_returned(scene, run_ids, timeout=max(120, sizes.e2e_runs))
    result["cpu_cores"], result["cpu_busy"] = meter.stop()
    log(f"cores busy {result['cpu_busy']:.2f}: " + ", ".join(
        f"{name} {cores:.2f}" for name, cores in result["cpu_cores"].items()))
    last_return = max(row.return_dts for row in rows)
    result["runs_per_second"] = len(rows) / (last_return - now).total_seconds()
    result["failed_runs"] = sum(1 for row in rows if not row.return_success)

    # Runs arrive at half the measured throughput (at most paced_rate): the
    # latency of a stack that keeps up, not of a queue that grows.
    rate = min(sizes.paced_rate, result["runs_per_second"] / 2)
    result["paced_rate"] = rate
    log(f"dispatch latency: {sizes.paced_runs} runs at {rate:.1f}/s")
    paced = []
    started = time.perf_counter()
    for i in range(sizes.paced_runs):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        paced.append(scene.add_run_now(jobs[i % len(jobs)]))
    rows = wait_returned(scene, paced, timeout=120)
    latencies = [(row.start_dts - row.schedule_dts).total_seconds() for row in rows]
    result["latency_p50"] = percentile(latencies, 0.50)
    result["latency_p99"] = percentile(latencies, 0.99)
    result["latency_max"] = max(latencies)
    result["failed_runs"] += sum(1 for row in rows if not row.return_success)

    result["server_mb"] = peak_rss_mb(stack.server.pid)
    result["worker_mb"] = max(peak_rss_mb(proc.pid) for proc in workers)
    for proc in workers:
        stack.stop(proc)


def measure_api(stack, scene, sizes, workdir, result):
    worker = scene.workers[2]
    worker_uri = f"/api/v1/worker/{worker[0]}/"
    count = sizes.api_requests
    port = free_port()
    bare = subprocess.Popen([sys.executable, os.path.join(BENCH_DIR, "bare_app.py"), str(port),
                             str(WAITRESS_THREADS)])
    try:
        def bare_answers():
            try:
                return Client(port).send("GET", "/bare", "", {})[0] == 200
            except OSError:
                return False

        wait_until(bare_answers, timeout=30, message="the bare app")
        bare_request = ["GET", "/bare", "", {"Accept": "application/json"}]
        Client(port).timed(bare_request, 20)

        def load(name, target_port, requests, expect):
            rate, statuses = hammer(target_port, requests, sizes.api_clients, sizes.api_threads,
                                    workdir, name)
            wrong = {s: n for s, n in statuses.items() if s != str(expect)}
            if wrong:
                result.setdefault("errors", []).append(f"{name}: unexpected statuses {wrong}")
            log(f"api: {name} {rate:.0f} req/s {statuses}")
            return rate

        bare_rates = [load("bare", port, [bare_request] * count, 200)]

        # The list a worker with 8 free slots asks for, with 8 runs due.
        scene.add_runs(scene.e2e_jobs[:8], utcnow())
        listing = signed(worker, "GET", "/api/v1/run/?state=enqueueable&limit=8")
        Client(stack.port).timed(listing, 10)
        result["api_list"] = load("list", stack.port, [listing] * count, 200)

        # Claims: one due run per job, so that no claim waits for another.
        jobs = scene.add_jobs("api", count)
        run_ids = scene.add_runs(jobs, utcnow())
        claims = [signed(worker, "PATCH", f"/api/v1/run/{run_id}/",
                         {"enqueue_dts": iso(utcnow()), "worker": worker_uri}) for run_id in run_ids]
        result["api_claim"] = load("claim", stack.port, claims, 202)

        # The claimed runs start and get a log, as the daemon's do.
        with scene.write() as conn:
            conn.execute(update(Run.__table__).where(Run.id.in_(run_ids))
                         .values(start_dts=utcnow(), pid=4242))
            conn.execute(insert(RunLog.__table__), [{"run_id": r, "content": ""} for r in run_ids])
            log_ids = conn.scalars(select(RunLog.id).where(RunLog.run_id.in_(run_ids))
                                   .order_by(RunLog.id)).all()
            conn.commit()
        content = "".join(f"line {i} of the script's output\n" for i in range(10))
        patches = [signed(worker, "PATCH", f"/api/v1/run_log/{log_id}/", {"content": content})
                   for log_id in log_ids]
        result["api_run_log"] = load("run_log", stack.port, patches, 202)

        returns = [signed(worker, "PATCH", f"/api/v1/run/{run_id}/",
                          {"return_dts": iso(utcnow()), "return_success": True}) for run_id in run_ids]
        result["api_return"] = load("return", stack.port, returns, 202)

        bare_rates.append(load("bare", port, [bare_request] * count, 200))
        # The better of two (before and after): load from elsewhere on the
        # machine cannot flatter the ratio.
        result["api_bare"] = max(bare_rates)
    finally:
        bare.terminate()
        bare.wait(timeout=10)


HISTORY_QUERIES = ("scheduled", "enqueueable", "job_last_100", "overview", "job_history")
PHASES = ("e2e", "burst", "latency", "twoservers", "idle", "api", "history", "purge")


def measure_history(stack, scene, sizes, result):
    worker = scene.workers[2]
    scene.clear_runs()
    now = utcnow()
    # What the lists show: 8 runs due now, 20 scheduled for the next hours.
    scene.add_runs(scene.e2e_jobs[:8], now)
    for hours in range(1, 21):
        scene.add_runs([scene.history_jobs[hours % len(scene.history_jobs)]], now + timedelta(hours=hours))
    viewer = UserSession(stack.base_url, "viewer", PASSWORD)
    cookie = "; ".join(f"{c.name}={c.value}" for c in viewer.session.cookies)
    job_id = scene.history_jobs[0]
    requests = {
        "scheduled": signed(worker, "GET", "/api/v1/run/?state=scheduled"),
        "enqueueable": signed(worker, "GET", "/api/v1/run/?state=enqueueable&limit=8"),
        "job_last_100": signed(worker, "GET",
                               f"/api/v1/run/?job={job_id}&order_by=-schedule_dts&limit=100"),
        "overview": ["GET", "/dashboard/overview.json", "", {"Cookie": cookie,
                                                             "Accept": "application/json"}],
        # The first page of the job's whole history (/jobs/<id>/runs).
        "job_history": ["GET", f"/jobs/{job_id}/runs", "", {"Cookie": cookie}],
    }
    loaded = 0
    client = Client(stack.port)
    for size in sizes.history:
        log(f"history: loading {size - loaded} completed runs")
        started = time.perf_counter()
        scene.load_completed(loaded + 1, size - loaded, scene.workers[0][0])
        loaded = size
        scene.analyze()
        log(f"history: loaded and analysed in {time.perf_counter() - started:.0f} s")
        for name in HISTORY_QUERIES:
            seconds = client.timed(requests[name], sizes.repeats)
            result.setdefault("history", {}).setdefault(name, {})[size] = {
                "p50": statistics.median(seconds), "p90": percentile(seconds, 0.9)}
            log(f"history: {name} at {size}: {statistics.median(seconds) * 1000:.1f} ms")
    client.close()


# Every history run is at least an hour old: all but each job's newest 100 go.
PURGE_SETTINGS = {"jobrunner.retention_days": str(50 / (24 * 60)),
                  "jobrunner.retention_keep_per_job": "100"}


def claim_latencies(stack, scene, job_ids):
    """Seconds of sequential claims of one due run per job; the claimed runs
    are then marked returned in the database, so the jobs can take the next
    round (a job whose run is in queue has nothing enqueueable)."""
    worker = scene.workers[2]
    worker_uri = f"/api/v1/worker/{worker[0]}/"
    run_ids = scene.add_runs(job_ids, utcnow())
    client = Client(stack.port)
    seconds = []
    for run_id in run_ids:
        request = signed(worker, "PATCH", f"/api/v1/run/{run_id}/",
                         {"enqueue_dts": iso(utcnow()), "worker": worker_uri})
        started = time.perf_counter()
        status, payload = client.send(*request)
        seconds.append(time.perf_counter() - started)
        if status != 202:
            raise RuntimeError(f"claim during the purge -> {status}: {payload[:300]!r}")
    client.close()
    with scene.write() as conn:
        done = utcnow()
        conn.execute(update(Run.__table__).where(Run.id.in_(run_ids))
                     .values(start_dts=done, return_dts=done, return_success=True))
        conn.commit()
    return seconds


def measure_purge(stack, scene, sizes, result):
    """The retention duty's own code, in a loop without the scheduler's
    pause, on the history that (3) loaded; claims go on meanwhile."""
    import threading

    from jobrunner.models import get_session_factory
    from jobrunner.scheduling.daemon import in_own_transaction
    from jobrunner.scheduling.retention import Retention

    if "history" not in result:
        scene.load_completed(1, sizes.history[-1], scene.workers[0][0])
    claim_jobs = scene.add_jobs("purge", sizes.purge_claims)
    before = claim_latencies(stack, scene, claim_jobs)
    session_factory = get_session_factory(stack.engine)
    from jobrunner.settings import Settings

    duty = Retention(Settings.from_mapping(PURGE_SETTINGS))
    deleted = []
    failure = []

    def purge():
        try:
            while True:
                deleted.append(duty.run(lambda work, write=True: in_own_transaction(
                    session_factory, work, write)))
                if duty.after_job_id == 0 and duty.next_pass is not None:
                    return
        except BaseException as exc:  # reported, not lost in the thread
            failure.append(exc)

    thread = threading.Thread(target=purge, name="purge")
    started = time.perf_counter()
    thread.start()
    during = []
    while thread.is_alive():
        during += claim_latencies(stack, scene, claim_jobs)
    thread.join()
    seconds = time.perf_counter() - started
    if failure:
        raise failure[0]
    result["purge"] = {
        "deleted": sum(deleted), "seconds": seconds,
        "claims_before": len(before), "claim_p50_before": statistics.median(before),
        "claim_p99_before": percentile(before, 0.99),
        "claims_during": len(during), "claim_p50_during": statistics.median(during),
        "claim_p99_during": percentile(during, 0.99), "claim_max_during": max(during),
    }
    log(f"purge: {sum(deleted)} runs in {seconds:.1f} s; claims p99 "
        f"{result['purge']['claim_p99_before'] * 1000:.1f} ms before, "
        f"{result['purge']['claim_p99_during'] * 1000:.1f} ms during")


def purge_report(results):
    """Section (5) of the report."""
    lines = ["", "(5) Claims while retention purges the history of (3) (sequential claims of one "
             "worker; the purge loops without the scheduler's pause between iterations):", ""]
    for r in results:
        p = r.get("purge")
        if not p:
            continue
        lines.append(
            f"* {r['backend']}: {p['deleted']:,} runs deleted in {p['seconds']:.1f} s "
            f"({p['deleted'] / max(p['seconds'], 1e-9):,.0f} runs/s, in transactions of at most 1,000); "
            f"claim p50 / p99: {p['claim_p50_before'] * 1000:.1f} / {p['claim_p99_before'] * 1000:.1f} ms "
            f"before ({p['claims_before']} claims), {p['claim_p50_during'] * 1000:.1f} / "
            f"{p['claim_p99_during'] * 1000:.1f} ms during ({p['claims_during']} claims, slowest "
            f"{p['claim_max_during'] * 1000:.0f} ms).")
    return lines


class Profiler:
    """py-spy sampling the server's busy threads during a phase (--profile
    DIR): raw collapsed stacks, summarised by bench/profile_summary.py."""

    def __init__(self, directory, backend):
        self.directory = directory
        self.backend = backend
        self.proc = None

    def start(self, phase, pid):
        if not self.directory:
            return
        os.makedirs(self.directory, exist_ok=True)
        py_spy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
        if py_spy is None:
            raise SystemExit("--profile needs py-spy (pip install py-spy)")
        output = os.path.join(self.directory, f"{self.backend}-{phase}-server.txt")
        self.proc = subprocess.Popen([py_spy, "record", "--pid", str(pid), "--format", "raw",
                                      "--rate", "100", "--threads", "--gil", "--output", output],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)
            self.proc = None


def bench_backend(name, sizes, postgres_url, keep, phases, profile_dir):
    workdir = tempfile.mkdtemp(prefix=f"jobrunner-bench-{name}-")
    result = {"backend": name}
    stack = Stack(workdir, database_url=postgres_url if name == "postgresql" else None,
                  settings=SERVER_SETTINGS, server_options=SERVER_OPTIONS)
    profiler = Profiler(profile_dir, name)
    try:
        stack.start_server()
        scheduler = stack.start_scheduler()
        scene = Scene(stack, sizes)
        if "e2e" in phases:
            profiler.start("e2e", stack.server.pid)
            measure_end_to_end(stack, scheduler, scene, sizes, workdir, result)
            profiler.stop()
        # The newer phases: the worker's defaults, the scheduler running.
        for phase, measure in (("burst", burst.measure_burst),
                               ("twoservers", burst.measure_two_servers)):
            if phase in phases:
                profiler.start(phase, stack.server.pid)
                measure(stack, scheduler, scene, sizes, workdir, result)
                profiler.stop()
        for phase, measure in (("latency", latency.measure_latency), ("idle", idle.measure_idle)):
            if phase in phases:
                profiler.start(phase, stack.server.pid)
                measure(stack, scene, sizes, workdir, result)
                profiler.stop()
        # The API and history phases measure the server alone.
        stack.stop(scheduler)
        if "api" in phases:
            profiler.start("api", stack.server.pid)
            measure_api(stack, scene, sizes, workdir, result)
            profiler.stop()
        if "history" in phases:
            profiler.start("history", stack.server.pid)
            measure_history(stack, scene, sizes, result)
            profiler.stop()
        if "purge" in phases:
            profiler.start("purge", stack.server.pid)
            measure_purge(stack, scene, sizes, result)
            profiler.stop()
    except BaseException:
        print(stack.logs(tail=4000), file=sys.stderr)
        raise
    finally:
        profiler.stop()
        stack.close()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


# --- the report ------------------------------------------------------------------------


def verdict(ok):
    return "ok" if ok else "MISS"


def table(results, process_starts, sizes):
    """The Markdown table: one column per database."""
    names = [r["backend"] for r in results]
    header = "| measurement | target | " + " | ".join(
        {"postgresql": "PostgreSQL", "sqlite": "SQLite"}[n] for n in names) + " |"
    lines = [header, "|---|---|" + "---|" * len(names)]

    def row(label, target, cell):
        def safe(r):
            try:
                return cell(r)
            except KeyError:  # a phase left out (--phases)
                return "-"

        cells = [safe(r) for r in results]
        if any(c != "-" for c in cells):
            lines.append(f"| {label} | {target} | " + " | ".join(cells) + " |")

    row("1. trivial runs completed per second", f">= {TARGET_RUNS_PER_SECOND}",
        lambda r: f"{r['runs_per_second']:.1f} {verdict(r['runs_per_second'] >= TARGET_RUNS_PER_SECOND)}")
    row("1. machine's process starts per second (/bin/true)", "-", lambda r: f"{process_starts:.0f}")
    row("1. runs/s as a fraction of process starts/s", "-",
        lambda r: f"{r['runs_per_second'] / process_starts:.1%}")
    row("1. dispatch latency p50 (runs arriving at half the throughput)", "-",
        lambda r: f"{r['latency_p50']:.3f} s at {r['paced_rate']:.1f}/s")
    row("1. dispatch latency p99", f"< {TARGET_P99_SECONDS:g} s",
        lambda r: f"{r['latency_p99']:.3f} s {verdict(r['latency_p99'] < TARGET_P99_SECONDS)}")
    row("2. bare Pyramid view, requests/s", "-", lambda r: f"{r['api_bare']:.0f}")
    for key, label in (("api_list", "list enqueueable (GET)"), ("api_claim", "claim (PATCH)"),
                       ("api_return", "return (PATCH)"), ("api_run_log", "run_log (PATCH)")):
        row(f"2. {label}: req/s (ratio to bare)", f">= {TARGET_API_RATIO:.2f}",
            lambda r, key=key: f"{r[key]:.0f} ({r[key] / r['api_bare']:.2f}) "
                               f"{verdict(r[key] / r['api_bare'] >= TARGET_API_RATIO)}")
    small, big = sizes.history[0], sizes.history[-1]
    for name in HISTORY_QUERIES:
        def cell(r, name=name):
            times = r["history"][name]
            text_ = " / ".join(f"{times[size]['p50'] * 1000:.1f}" for size in sizes.history)
            if big != small:
                ratio = times[big]["p50"] / times[small]["p50"]
                text_ += f" ms (x{ratio:.2f}) {verdict(ratio <= TARGET_HISTORY_RATIO)}"
            else:
                text_ += " ms"
            return text_

        sizes_text = " / ".join(f"{size:,}" for size in sizes.history)
        row(f"3. {name}, p50 at {sizes_text} runs", f"<= {TARGET_HISTORY_RATIO:g}x", cell)
    row("4. server peak RSS", f"< {TARGET_SERVER_MB} MB",
        lambda r: f"{r['server_mb']:.0f} MB {verdict(r['server_mb'] < TARGET_SERVER_MB)}")
    row("4. worker peak RSS", f"< {TARGET_WORKER_MB} MB",
        lambda r: f"{r['worker_mb']:.0f} MB {verdict(r['worker_mb'] < TARGET_WORKER_MB)}")
    newer = burst.rows(sizes) + latency.rows(sizes) + idle.rows(sizes)
    for label, target, cell in sorted(newer, key=lambda item: item[0][:2]):
        row(label, target, cell)
    return "\n".join(lines)


def report(results, process_starts, sizes, facts, loads):
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        f"Measured {when} by `bench/run.py`.",
        "",
        f"* Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']} memory, "
        f"Python {facts['python']}, PostgreSQL {facts['postgresql'] or '-'}, {facts['platform']}.",
        f"* Load average (1, 5, 15 min) before: {loads[0]}, after: {loads[1]}.",
        f"* Set-up: pserve (waitress, {WAITRESS_THREADS} threads), jobrunner-scheduler, two "
        f"jobrunner-workers (concurrent_jobs = {WORKER_OPTIONS['concurrent_jobs']}, poll_interval = "
        f"{WORKER_OPTIONS['poll_interval']:g} s), all on this machine with the database.",
        f"* (1): {sizes.e2e_runs} runs due at once over {sizes.e2e_jobs} jobs; latency from "
        f"{sizes.paced_runs} runs inserted one by one, each due when inserted, at half the "
        f"measured throughput (at most {sizes.paced_rate:g}/s).",
        f"* (2): {sizes.api_requests} requests per call from {sizes.api_clients} client processes x "
        f"{sizes.api_threads} keep-alive connections.",
        f"* (3): median of {sizes.repeats} sequential requests after ANALYZE; "
        f"{sizes.history_jobs} jobs share the history.",
        f"* (6) to (9): workers with the worker's defaults but concurrent_jobs = 8 (the bench "
        f"sets no poll or ping interval), the scheduler running. (6): {sizes.burst_jobs:,} distinct "
        f"one-line jobs, one run each, made ahead and due at one moment; from that moment to the "
        f"last return. (9): the same through two pserve processes on one database, one worker on "
        f"each, every script appending its run id to one file.",
        "",
        table(results, process_starts, sizes),
    ]
    if any("cpu_cores" in r for r in results):
        lines += ["", "Where the CPU went during the throughput run of (1), in cores busy on average "
                  f"(the machine has {facts['nproc']}):", ""]
    for r in results:
        if "cpu_cores" in r:
            parts = ", ".join(f"{name} {cores:.2f}" for name, cores in r["cpu_cores"].items())
            lines.append(f"* {r['backend']}: {r['cpu_busy']:.2f} busy: {parts}.")
    if any(r.get("purge") for r in results):
        lines += purge_report(results)
    lines += burst.notes(results) + latency.notes(results, sizes) + idle.notes(results, sizes)
    errors = [f"{r['backend']}: {e}" for r in results for e in r.get("errors", [])]
    errors += [f"{r['backend']}: {r['failed_runs']} runs failed" for r in results if r.get("failed_runs")]
    for r in results:
        for name, figures in [("burst", r.get("burst")), ("twoservers", r.get("twoservers"))] + [
                (f"latency {case}", figures) for case, figures in (r.get("latency") or {}).items()]:
            if figures and figures["failed_runs"]:
                errors.append(f"{r['backend']}: {name}: {figures['failed_runs']} runs failed")
        if r.get("twoservers") and not r["twoservers"]["correct"]:
            errors.append(f"{r['backend']}: twoservers: not every run executed exactly once")
    if errors:
        lines += ["", "Errors:", ""] + [f"* {e}" for e in errors]
    return "\n".join(lines)


def write_docs(block):
    if os.path.exists(DOCS_PATH):
        with open(DOCS_PATH) as f:
            current = f.read()
    else:
        current = "# Performance\n\n" + BEGIN_MARK + "\n" + END_MARK + "\n"
    if BEGIN_MARK not in current or END_MARK not in current:
        current = current.rstrip("\n") + "\n\n" + BEGIN_MARK + "\n" + END_MARK + "\n"
    head, rest = current.split(BEGIN_MARK, 1)
    _old, tail = rest.split(END_MARK, 1)
    with open(DOCS_PATH, "w") as f:
        f.write(head + BEGIN_MARK + "\n" + block + "\n" + END_MARK + tail)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small numbers on SQLite only, no docs (the smoke test)")
    parser.add_argument("--backends", default=None,
                        help="comma-separated: postgresql,sqlite (default both; --quick: sqlite)")
    parser.add_argument("--postgres-url", default=os.environ.get("JOBRUNNER_BENCH_DATABASE_URL",
                                                                 DEFAULT_POSTGRES_URL))
    parser.add_argument("--history", default=None,
                        help="comma-separated history sizes (default 1000,1000000)")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/performance.md")
    parser.add_argument("--json", help="also write the raw figures to this file")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated subset of {','.join(PHASES)} (a partial run writes "
                             "no docs)")
    parser.add_argument("--profile", metavar="DIR",
                        help="sample the server with py-spy during each phase into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the work folders (logs)")
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else Sizes()
    if args.history:
        sizes.history = tuple(int(x) for x in args.history.split(","))
    backends = (args.backends or ("sqlite" if args.quick else "postgresql,sqlite")).split(",")
    unknown = set(backends) - {"postgresql", "sqlite"}
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    facts = machine_facts(args.postgres_url if "postgresql" in backends else None)
    loads = [load_average()]
    log(f"machine: {facts}; load {loads[0]}")
    process_starts = process_start_rate(sizes.process_starts)
    log(f"process starts: {process_starts:.0f}/s")
    phases = set(args.phases.split(","))
    if phases - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(phases - set(PHASES)))}")
    results = [bench_backend(name, sizes, args.postgres_url, args.keep, phases, args.profile)
               for name in backends]
    loads.append(load_average())
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"facts": facts, "loads": loads, "process_starts": process_starts,
                       "results": results}, f, indent=2, default=str)
    block = report(results, process_starts, sizes, facts, loads)
    if phases != set(PHASES):
        # A partial run: the raw figures and the rows of its phases, no docs.
        print(json.dumps(results, indent=2, default=str))
        print(block)
        return 0
    print(block)
    if not (args.quick or args.no_docs):
        write_docs(block)
        log(f"wrote {DOCS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
