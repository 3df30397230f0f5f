"""What every phase of the bench uses: time, logging, percentiles, and the
CPU meters (processes from /proc, PostgreSQL's processes of the bench's
database)."""
import os
import re
import sys
import threading
import time
from datetime import datetime, timezone

from sqlalchemy import text


def utcnow():
    return datetime.now(timezone.utc)


def iso(dts):
    return dts.isoformat(timespec="microseconds")


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]


def load_average():
    try:
        return tuple(round(x, 2) for x in os.getloadavg())
    except OSError:
        return None


def cpu_seconds(pid):
    """User + system CPU of a process and of its waited-for children."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / ticks


def machine_busy_seconds():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        match = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M)
    return int(match.group(1)) / 1024 if match else float("nan")


# The processes of the PostgreSQL server that work for the bench's database:
# its client backends (not this meter's own), and the background processes
# every database shares (checkpointer, WAL writer, autovacuum of this
# database...). Other databases of the same server (other work on the
# machine) are left out.
BENCH_BACKENDS = text("""
    SELECT pid FROM pg_stat_activity
    WHERE pid <> pg_backend_pid()
      AND ((backend_type = 'client backend' AND datname = current_database())
           OR (backend_type <> 'client backend'
               AND (datname IS NULL OR datname = current_database())))
""")


class PostgresCpu:
    """CPU seconds of the bench database's PostgreSQL processes between
    start() and stop(). A thread samples them every `interval` seconds, so
    a backend that ends in between (an overflow connection of a pool) counts
    up to its last sample, and one that begins counts from its birth."""

    def __init__(self, engine, interval=0.5):
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread = None

    def _sample(self, conn, first):
        for pid in conn.scalars(BENCH_BACKENDS):
            seconds = cpu_seconds(pid)
            if pid not in self.seen:
                self.seen[pid] = [seconds if first else 0.0, seconds]
            elif seconds >= self.seen[pid][1]:
                self.seen[pid][1] = seconds

    def _loop(self):
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            self._sample(conn, first=True)
            self._started.set()
            while not self._stop.wait(self.interval):
                self._sample(conn, first=False)
            self._sample(conn, first=False)

    def start(self):
        self.seen = {}
        self._stop.clear()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="postgres-cpu", daemon=True)
        self._thread.start()
        self._started.wait(30)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)
        return sum(last - first for first, last in self.seen.values())


class CpuMeter:
    """Where the machine's CPU went between start() and stop(): the server,
    the workers (with their scripts), the scheduler, PostgreSQL (the bench
    database's processes; `engine` on PostgreSQL, None on SQLite), the rest
    (other work on the machine included)."""

    def __init__(self, procs, engine=None):
        self.procs = procs  # name -> pid
        self.postgres = PostgresCpu(engine) if engine is not None else None

    def sample(self):
        values = {name: cpu_seconds(pid) for name, pid in self.procs.items()}
        values["machine"] = machine_busy_seconds()
        values["wall"] = time.perf_counter()
        return values

    def start(self):
        if self.postgres:
            self.postgres.start()
        self.first = self.sample()

    def stop_seconds(self):
        """CPU seconds per part, and the wall-clock seconds."""
        last = self.sample()
        used = {name: last[name] - self.first[name] for name in last}
        used["postgresql"] = self.postgres.stop() if self.postgres else 0.0
        wall = used.pop("wall")
        machine = used.pop("machine")
        used["everything else"] = max(0.0, machine - sum(used.values()))
        used["machine"] = machine
        return used, wall

    def stop(self):
        """Cores busy on average, per part; and the machine's cores busy."""
        used, wall = self.stop_seconds()
        machine = used.pop("machine")
        return {name: seconds / wall for name, seconds in used.items()}, machine / wall


# --- runs and workers of the newer phases ---------------------------------------------


def schedule_runs(scene, job_ids, schedule_dts, is_manual=False):
    """One run per job, due at `schedule_dts`, made by the run life cycle's
    own create_run (what a reschedule, the scheduler or `jobrunner-admin
    schedule` calls), in one transaction; the run ids."""
    from sqlalchemy import select

    from jobrunner.models import Job
    from jobrunner.scheduling.runs import create_run

    with scene.stack.Session() as db:
        jobs = {job.id: job for job in db.scalars(select(Job).where(Job.id.in_(job_ids)))}
        ids = [create_run(db, jobs[job_id], schedule_dts, is_manual=is_manual).id
               for job_id in job_ids]
        db.commit()
    return ids


def returned_runs(scene, run_ids, timeout):
    """Waits until every run of `run_ids` returned; their rows."""
    from sqlalchemy import func, select

    from jobrunner.models import Run

    from bench.stack import wait_until

    def chunks():
        ids = sorted(run_ids)
        return [ids[i:i + 500] for i in range(0, len(ids), 500)]

    def returned():
        return sum(scene.scalar(select(func.count()).where(Run.id.in_(chunk),
                                                           Run.return_dts.is_not(None)))
                   for chunk in chunks())

    wait_until(lambda: returned() == len(run_ids), timeout=timeout, interval=0.1,
               message=f"{len(run_ids)} runs to return")
    rows = []
    with scene.engine.connect() as conn:
        for chunk in chunks():
            rows += conn.execute(select(Run.id, Run.job_id, Run.worker_id, Run.schedule_dts,
                                        Run.start_dts, Run.return_dts, Run.return_success)
                                 .where(Run.id.in_(chunk))).all()
    return rows


# The bench's two daemons get concurrent_jobs = 8 and nothing else: poll and
# ping intervals (and whatever else the worker learns) are its defaults.
DEFAULT_WORKER_OPTIONS = {"concurrent_jobs": 8, "poll_interval": None, "ping_interval": None}


def start_default_workers(stack, scene, workdir, phase, base_urls=None):
    """The bench's two worker daemons (scene.workers[:2]) with the worker's
    defaults; `base_urls` names each one's server. Returns once both pinged."""
    from sqlalchemy import select

    from jobrunner.models import Worker

    from bench.stack import wait_until

    started = utcnow()
    procs = []
    for index, (_id, api_key, secret) in enumerate(scene.workers[:2]):
        options = dict(DEFAULT_WORKER_OPTIONS, script_temp_path=os.path.join(workdir, "scripts"))
        if base_urls:
            options["api_base_url"] = base_urls[index % len(base_urls)] + "/"
        procs.append(stack.start_worker(api_key, secret, name=f"{phase}-worker-{index + 1}",
                                        **options))
    ids = [w[0] for w in scene.workers[:2]]

    def pinged():
        with scene.engine.connect() as conn:
            times = conn.scalars(select(Worker.ping_response_dts).where(Worker.id.in_(ids))).all()
        return all(t is not None and t >= started for t in times)

    wait_until(pinged, timeout=60, message="both workers to ping")
    return procs
