"""Phase `latency`: dispatch latency (start_dts - schedule_dts) with the
worker's default settings, in two cases:

(a) steady: runs arriving at 10 a second for about 30 s;
(b) now and then: a run every 1.5 to 3 s (at random) on idle workers.

Runs come in both ways a deployment makes them, alternately: "run now" (the
run is made when it is due, as `jobrunner-admin schedule` or a user's run
now does) and "by the clock" (the run is made two seconds ahead and comes
due when its time passes, as the runs a scheduler makes ahead do). Each run
belongs to a job of its own, so no run waits for another of its job; every
run is made by the run life cycle's own create_run.
"""
import random
import time
from datetime import timedelta

from bench.common import (log, percentile, returned_runs, schedule_runs, start_default_workers,
                          utcnow)

TARGET_P99_SECONDS = 0.100
# How far ahead a run "by the clock" is made.
AHEAD_SECONDS = 2.0


def plan(gaps):
    """(seconds from the start when to act, seconds from the start when due,
    kind) for runs due one after the other with the given gaps."""
    steps = []
    due = AHEAD_SECONDS + 0.5
    for index, gap in enumerate(gaps):
        due += gap
        if index % 2:
            steps.append((due - AHEAD_SECONDS, due, "clock"))
        else:
            steps.append((due, due, "now"))
    return sorted(steps)


def paced_runs(scene, jobs, steps):
    """Makes the runs of `steps` on time; returns {run id: kind}."""
    kinds = {}
    late = 0
    started = time.perf_counter()
    origin = utcnow()
    for job_id, (act, due, kind) in zip(jobs, steps):
        delay = started + act - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        schedule_dts = utcnow() if kind == "now" else origin + timedelta(seconds=due)
        (run_id,) = schedule_runs(scene, [job_id], schedule_dts, is_manual=kind == "now")
        kinds[run_id] = kind
        if time.perf_counter() - started - act > 0.1:
            late += 1
    if late:
        log(f"latency: {late} of {len(steps)} runs made over 100 ms after their time (a busy machine)")
    return kinds


def summary(rows, kinds):
    latencies = {row.id: (row.start_dts - row.schedule_dts).total_seconds() for row in rows}
    figures = {"runs": len(rows),
               "failed_runs": sum(1 for row in rows if not row.return_success)}
    for kind in ("all", "now", "clock"):
        values = [v for run_id, v in latencies.items() if kind == "all" or kinds[run_id] == kind]
        figures[kind] = {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
                         "max": max(values), "count": len(values)}
    return figures


def measure_latency(stack, scene, sizes, workdir, result):
    jobs = scene.add_jobs("latency", max(sizes.steady_runs, sizes.sparse_runs))
    workers = start_default_workers(stack, scene, workdir, "latency")
    try:
        cases = {
            "steady": [1 / sizes.steady_rate] * sizes.steady_runs,
            "sparse": [random.uniform(*sizes.sparse_gaps) for _ in range(sizes.sparse_runs)],
        }
        for case, gaps in cases.items():
            # The workers are idle when the case begins.
            time.sleep(max(sizes.sparse_gaps))
            log(f"latency {case}: {len(gaps)} runs over {sum(gaps):.0f} s")
            kinds = paced_runs(scene, jobs, plan(gaps))
            rows = returned_runs(scene, list(kinds), timeout=max(120, len(gaps)))
            figures = result.setdefault("latency", {})[case] = summary(rows, kinds)
            log(f"latency {case}: p50 {figures['all']['p50'] * 1000:.0f} ms, p99 "
                f"{figures['all']['p99'] * 1000:.0f} ms (run now: p99 "
                f"{figures['now']['p99'] * 1000:.0f} ms; by the clock: p99 "
                f"{figures['clock']['p99'] * 1000:.0f} ms)")
    finally:
        for proc in workers:
            stack.stop(proc)


# --- the report ----------------------------------------------------------------------


def rows(sizes):
    def cell(case):
        def text(r):
            figures = (r.get("latency") or {}).get(case)
            if not figures:
                return "-"
            p50, p99 = figures["all"]["p50"], figures["all"]["p99"]
            mark = "ok" if p99 <= TARGET_P99_SECONDS else "MISS"
            return f"{p50 * 1000:.0f} / {p99 * 1000:.0f} ms {mark}"
        return text

    return [
        (f"7. dispatch latency p50 / p99, runs arriving at {sizes.steady_rate:g}/s",
         f"p99 <= {TARGET_P99_SECONDS * 1000:.0f} ms", cell("steady")),
        (f"7. dispatch latency p50 / p99, a run every {sizes.sparse_gaps[0]:g}-{sizes.sparse_gaps[1]:g} s",
         f"p99 <= {TARGET_P99_SECONDS * 1000:.0f} ms", cell("sparse")),
    ]


def notes(results, sizes):
    parts = [(r["backend"], r["latency"]) for r in results if r.get("latency")]
    if not parts:
        return []
    lines = ["", f"Dispatch latency (7) by how the run came (p50 / p99 / slowest; {sizes.steady_runs} "
             f"runs at {sizes.steady_rate:g}/s, {sizes.sparse_runs} runs "
             f"{sizes.sparse_gaps[0]:g}-{sizes.sparse_gaps[1]:g} s apart; half \"run now\", half "
             "made ahead and due by the clock):", ""]
    for backend, cases in parts:
        for case, label in (("steady", f"{sizes.steady_rate:g}/s"), ("sparse", "now and then")):
            figures = cases[case]
            kinds = "; ".join(
                f"{name}: {figures[kind]['p50'] * 1000:.0f} / {figures[kind]['p99'] * 1000:.0f} / "
                f"{figures[kind]['max'] * 1000:.0f} ms"
                for kind, name in (("now", "run now"), ("clock", "by the clock")))
            lines.append(f"* {backend}, {label}: {kinds}.")
    return lines
