"""Phases `burst` and `twoservers`: 1,000 distinct one-line jobs (`#!/bin/sh`
+ `true`), one run each, all due at the same moment, as at the top of an
hour; two worker daemons of concurrent_jobs = 8 with the worker's defaults.

The runs are made ahead of time by the run life cycle's own create_run, due
a few seconds later, and come due by the clock, as a scheduler's runs do.
Measured from that moment to the last return: runs/s, the server's CPU per
completed run (/proc utime + stime of the pserve processes), and where the
machine's CPU went.

`twoservers` runs the same case through two pserve processes on one
database (each worker speaks to its own), every script appending its run id
to one file: every run must have run exactly once, and none be lost.
"""
import os
import time
from collections import Counter
from datetime import timedelta

from bench.common import (CpuMeter, log, returned_runs, schedule_runs, start_default_workers,
                          utcnow)

TARGET_RUNS_PER_SECOND = 100
TARGET_SERVER_MS_PER_RUN = 8.0


def run_burst(stack, scheduler, scene, count, workdir, phase, servers, content="true"):
    """Makes `count` jobs with one run each due at once, waits for every
    return; returns (figures, the runs' rows)."""
    jobs = scene.add_jobs(phase, count, content=content)
    workers = start_default_workers(stack, scene, workdir, phase,
                                    base_urls=[server.base_url for server in servers])
    try:
        # Ahead, so that every run exists before they come due. They are
        # made in one transaction: if it commits late (a busy machine), they
        # all appear at once, due already, and the clock starts then.
        due = utcnow() + timedelta(seconds=2 + count * 0.01)
        log(f"{phase}: {count} runs of {count} distinct jobs due at {due:%H:%M:%S.%f}")
        run_ids = schedule_runs(scene, jobs, due)
        ahead = (due - utcnow()).total_seconds()
        if ahead > 0:
            time.sleep(ahead)
        else:
            log(f"{phase}: the runs were made {-ahead:.1f} s after their due time; measured from then")
            due = utcnow()
        procs = {name: server.pid for name, server in zip(server_names(servers), servers)}
        procs["scheduler"] = scheduler.pid
        procs.update({f"worker {i + 1}": proc.pid for i, proc in enumerate(workers)})
        meter = CpuMeter(procs, engine=scene.engine if scene.is_postgres else None)
        meter.start()
        rows = returned_runs(scene, run_ids, timeout=max(120, count))
        seconds, wall = meter.stop_seconds()
    finally:
        for proc in workers:
            stack.stop(proc)
    last_return = max(row.return_dts for row in rows)
    elapsed = (last_return - due).total_seconds()
    server_seconds = sum(seconds[name] for name in server_names(servers))
    machine = seconds.pop("machine")
    figures = {
        "runs": len(rows),
        "runs_per_second": len(rows) / elapsed,
        "seconds": elapsed,
        "server_ms_per_run": server_seconds * 1000 / len(rows),
        "cpu_cores": {name: value / wall for name, value in seconds.items()},
        "cpu_busy": machine / wall,
        "failed_runs": sum(1 for row in rows if not row.return_success),
        "first_start": min((row.start_dts - due).total_seconds() for row in rows),
    }
    log(f"{phase}: {len(rows)} runs in {elapsed:.1f} s = {figures['runs_per_second']:.1f} runs/s; "
        f"server {figures['server_ms_per_run']:.1f} ms CPU per run; cores busy "
        f"{figures['cpu_busy']:.2f}: " + ", ".join(
            f"{name} {cores:.2f}" for name, cores in figures["cpu_cores"].items()))
    return figures, rows


def server_names(servers):
    return ["server"] if len(servers) == 1 else [f"server {i + 1}" for i in range(len(servers))]


def measure_burst(stack, scheduler, scene, sizes, workdir, result):
    stack.server.base_url = stack.base_url
    result["burst"], _rows = run_burst(stack, scheduler, scene, sizes.burst_jobs, workdir,
                                       "burst", [stack.server])


def measure_two_servers(stack, scheduler, scene, sizes, workdir, result):
    """The burst through two pserve processes on one database; each script
    appends its run id to one file (lines shorter than PIPE_BUF are appended
    whole by O_APPEND)."""
    markers = os.path.join(workdir, "twoservers-markers.txt")
    open(markers, "w").close()
    stack.server.base_url = stack.base_url
    second = stack.start_extra_server("server-2")
    try:
        figures, rows = run_burst(stack, scheduler, scene, sizes.burst_jobs, workdir, "twoservers",
                                  [stack.server, second],
                                  content=f'echo "$JOBRUNNER_RUN_ID" >> {markers}')
    finally:
        stack.stop(second)
    with open(markers) as f:
        executed = Counter(int(line) for line in f if line.strip())
    expected = {row.id for row in rows}
    figures["executed_once"] = sum(1 for run_id in expected if executed[run_id] == 1)
    figures["executed_twice_or_more"] = sum(1 for run_id in expected if executed[run_id] > 1)
    figures["lost"] = sum(1 for run_id in expected if executed[run_id] == 0)
    figures["unknown"] = sum(n for run_id, n in executed.items() if run_id not in expected)
    figures["runs_per_worker"] = dict(Counter(f"worker {row.worker_id}" for row in rows))
    figures["correct"] = (figures["executed_once"] == len(rows) == sizes.burst_jobs
                          and not figures["failed_runs"] and not figures["unknown"])
    log(f"twoservers: executed once {figures['executed_once']}/{len(rows)}, twice or more "
        f"{figures['executed_twice_or_more']}, lost {figures['lost']}, per worker "
        f"{figures['runs_per_worker']}")
    result["twoservers"] = figures


# --- the report ----------------------------------------------------------------------


def verdict(ok):
    return "ok" if ok else "MISS"


def rows(sizes):
    """(label, target, cell) rows of the report's table."""
    n = f"{sizes.burst_jobs:,}"

    def runs_per_second(key):
        def cell(r):
            figures = r.get(key)
            if not figures:
                return "-"
            rate = figures["runs_per_second"]
            return f"{rate:.1f}" + (f" {verdict(rate >= TARGET_RUNS_PER_SECOND)}" if key == "burst" else "")
        return cell

    def server_ms(key):
        def cell(r):
            figures = r.get(key)
            if not figures:
                return "-"
            ms = figures["server_ms_per_run"]
            return f"{ms:.1f} ms" + (f" {verdict(ms <= TARGET_SERVER_MS_PER_RUN)}" if key == "burst" else "")
        return cell

    def exactly_once(r):
        figures = r.get("twoservers")
        if not figures:
            return "-"
        return (f"{figures['executed_once']:,} of {figures['runs']:,} (twice: "
                f"{figures['executed_twice_or_more']}, lost: {figures['lost']}) "
                f"{verdict(figures['correct'])}")

    return [
        (f"6. {n} distinct jobs due at once: runs completed per second", f">= {TARGET_RUNS_PER_SECOND}",
         runs_per_second("burst")),
        ("6. server CPU per completed run", f"<= {TARGET_SERVER_MS_PER_RUN:g} ms", server_ms("burst")),
        (f"9. two server processes, {n} distinct jobs: runs/s", "-", runs_per_second("twoservers")),
        ("9. two server processes: runs executed exactly once", "all", exactly_once),
        ("9. two server processes: server CPU per run (both)", "-", server_ms("twoservers")),
    ]


def notes(results):
    lines = []
    for key, title in (("burst", "(6)"), ("twoservers", "(9)")):
        parts = [(r["backend"], r[key]) for r in results if r.get(key)]
        if not parts:
            continue
        lines += ["", f"Where the CPU went during {title}, in cores busy on average:", ""]
        for backend, figures in parts:
            split = ", ".join(f"{name} {cores:.2f}" for name, cores in figures["cpu_cores"].items())
            extra = ""
            if key == "twoservers":
                extra = " Runs per worker (one per server): " + ", ".join(
                    f"{name} {count}" for name, count in sorted(figures["runs_per_worker"].items())) + "."
            lines.append(f"* {backend}: {figures['runs']:,} runs in {figures['seconds']:.1f} s, first start "
                         f"{figures['first_start'] * 1000:.0f} ms after due; {figures['cpu_busy']:.2f} busy: "
                         f"{split}.{extra}")
    return lines
