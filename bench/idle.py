"""Phase `idle`: what idle workers cost. 200 workers, each registered as a
real worker (its own api key and secret, in the bench's pool), run the real
worker daemon with its defaults (bench/idle_workers.py: threads in a few
processes) while no run is due: each pings every ping_interval, lists its
kill requests and waits for runs as the daemon does when idle. Measured
over a minute: the CPU of the server and of the bench database's PostgreSQL
processes, in cores, and the requests the daemons made.
"""
import json
import os
import secrets
import subprocess
import sys
import time

from sqlalchemy import select

from jobrunner.models import Worker, WorkerPool

from bench.common import PostgresCpu, cpu_seconds, log, utcnow
from bench.stack import wait_until

TARGET_IDLE_CORES = 0.25
WORKERS_PER_PROCESS = 50
STARTUP_SECONDS = 120
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def register_workers(scene, count):
    """`count` workers in the bench's pool; [(id, api_key, secret)]."""
    with scene.stack.Session() as db:
        pool = db.get(WorkerPool, scene.pool_id)
        workers = [Worker(title=f"idle worker {i}", api_key=f"idle-{i:04d}",
                          secret=secrets.token_urlsafe(24), concurrent_jobs=4)
                   for i in range(count)]
        pool.workers.extend(workers)
        db.commit()
        return [(w.id, w.api_key, w.secret) for w in workers]


def start_simulators(stack, workers, workdir):
    procs = []
    for index in range(0, len(workers), WORKERS_PER_PROCESS):
        share = workers[index:index + WORKERS_PER_PROCESS]
        path = os.path.join(workdir, f"idle-{index}.json")
        with open(path, "w") as f:
            json.dump({"base_url": stack.base_url, "workdir": workdir,
                       "workers": [[key, secret] for _id, key, secret in share]}, f)
        log_file = open(os.path.join(workdir, f"idle-workers-{index}.log"), "ab")
        procs.append(subprocess.Popen([sys.executable, os.path.join(BENCH_DIR, "idle_workers.py"),
                                       path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=log_file, text=True))
        log_file.close()
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("an idle-worker process did not start (see its log)")
    return procs


def measure_idle(stack, scene, sizes, workdir, result):
    workers = register_workers(scene, sizes.idle_workers)
    started = utcnow()
    log(f"idle: {len(workers)} workers in {-(-len(workers) // WORKERS_PER_PROCESS)} processes")
    procs = start_simulators(stack, workers, workdir)
    try:
        ids = [w[0] for w in workers]

        def pinged():
            with scene.engine.connect() as conn:
                times = conn.scalars(select(Worker.ping_response_dts)
                                     .where(Worker.id.in_(ids))).all()
            return sum(1 for t in times if t is not None and t >= started)

        # A server that cannot carry them all is measured as it is, with
        # the number of workers it took in.
        try:
            wait_until(lambda: pinged() == len(ids), timeout=STARTUP_SECONDS, interval=0.5,
                       message="every idle worker to ping")
        except AssertionError:
            log(f"idle: {pinged()} of {len(ids)} workers pinged within {STARTUP_SECONDS} s")
        # Past the start-up (identify, settle leftovers, first lists).
        time.sleep(sizes.idle_settle)
        postgres = PostgresCpu(scene.engine) if scene.is_postgres else None
        if postgres:
            postgres.start()
        for proc in procs:
            proc.stdin.write("mark\n")
            proc.stdin.flush()
        first = {"server": cpu_seconds(stack.server.pid),
                 "simulators": sum(cpu_seconds(proc.pid) for proc in procs)}
        clock = time.perf_counter()
        time.sleep(sizes.idle_seconds)
        wall = time.perf_counter() - clock
        last = {"server": cpu_seconds(stack.server.pid),
                "simulators": sum(cpu_seconds(proc.pid) for proc in procs)}
        statuses = {}
        pinged_by_then = pinged()
        for proc in procs:
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            for status, count in json.loads(proc.stdout.readline()).items():
                statuses[status] = statuses.get(status, 0) + count
        cores = {name: (last[name] - first[name]) / wall for name in first}
        cores["postgresql"] = postgres.stop() / wall if postgres else 0.0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
    requests = sum(statuses.values())
    result["idle"] = {
        "workers": len(workers), "pinged": pinged_by_then, "seconds": wall, "cores": cores,
        "server_and_postgresql": cores["server"] + cores["postgresql"],
        "requests_per_second": requests / wall, "statuses": statuses,
        "server_ms_per_request": cores["server"] * wall * 1000 / max(requests, 1),
        "not_ok": sum(n for status, n in statuses.items() if not status.startswith("2")),
    }
    log(f"idle: server {cores['server']:.3f} + postgresql {cores['postgresql']:.3f} cores "
        f"(simulators {cores['simulators']:.2f}); {requests / wall:.0f} requests/s {statuses}")


# --- the report ----------------------------------------------------------------------


def rows(sizes):
    def cores(r):
        figures = r.get("idle")
        if not figures:
            return "-"
        total = figures["server_and_postgresql"]
        # A server that did not let every worker in, or failed requests,
        # spent less because it served less: that is no pass.
        served = figures["pinged"] == figures["workers"] and not figures["not_ok"]
        return (f"{total:.3f} ({figures['cores']['server']:.3f} + {figures['cores']['postgresql']:.3f}) "
                f"{'ok' if total < TARGET_IDLE_CORES and served else 'MISS'}")

    def requests(r):
        figures = r.get("idle")
        if not figures:
            return "-"
        return (f"{figures['requests_per_second']:.0f} ({figures['not_ok']} failed or not 2xx; "
                f"{figures['pinged']} of {figures['workers']} workers in; server "
                f"{figures['server_ms_per_request']:.1f} ms CPU per request)")

    return [
        (f"8. {sizes.idle_workers} idle workers: server + PostgreSQL, cores", f"< {TARGET_IDLE_CORES:g}",
         cores),
        (f"8. {sizes.idle_workers} idle workers: their requests/s", "-", requests),
    ]


def notes(results, sizes):
    parts = [(r["backend"], r["idle"]) for r in results if r.get("idle")]
    if not parts:
        return []
    lines = ["", f"Idle workers (8): {sizes.idle_workers} worker daemons with their defaults, threads of "
             f"{-(-sizes.idle_workers // WORKERS_PER_PROCESS)} processes, measured for "
             f"{sizes.idle_seconds:g} s:", ""]
    for backend, figures in parts:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(figures["statuses"].items()))
        lines.append(f"* {backend}: {figures['pinged']} of {figures['workers']} pinged since their start; "
                     f"server {figures['cores']['server']:.3f}, PostgreSQL "
                     f"{figures['cores']['postgresql']:.3f}, the simulating processes "
                     f"{figures['cores']['simulators']:.2f} cores; answers {statuses}.")
    return lines
