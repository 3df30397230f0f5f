"""The benchmark harness runs: `bench/run.py --quick` (SQLite, a few runs,
1,000 runs of history, no docs written) prints its table. No timings are
judged here; the figures belong in docs/performance.md."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.e2e

ROWS = (
    "trivial runs completed per second",
    "process starts per second",
    "dispatch latency p99",
    "bare Pyramid view, requests/s",
    "list enqueueable (GET)",
    "claim (PATCH)",
    "return (PATCH)",
    "run_log (PATCH)",
    "3. scheduled",
    "3. enqueueable",
    "3. job_last_100",
    "3. overview",
    "3. job_history",
    "server peak RSS",
    "worker peak RSS",
    "6. 30 distinct jobs due at once: runs completed per second",
    "6. server CPU per completed run",
    "7. dispatch latency p50 / p99, runs arriving at",
    "7. dispatch latency p50 / p99, a run every",
    "8. 4 idle workers: server + PostgreSQL, cores",
    "9. two server processes, 30 distinct jobs: runs/s",
    "9. two server processes: runs executed exactly once",
)


def test_the_quick_bench_prints_its_table(tmp_path):
    docs = os.path.join(ROOT, "docs", "performance.md")
    before = os.path.getmtime(docs) if os.path.exists(docs) else None
    raw = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "run.py"), "--quick", "--json", str(raw)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    lines = done.stdout.splitlines()
    assert "| measurement | target | SQLite |" in lines
    for row in ROWS:
        assert any(line.startswith("| ") and row in line for line in lines), row
    assert "Errors:" not in done.stdout, done.stdout
    assert "(5) Claims while retention purges" in done.stdout
    assert any(line.startswith("* sqlite: ") and "runs deleted" in line for line in lines)
    # Two server processes on one database ran every run exactly once.
    assert any(line.startswith("| 9. two server processes: runs executed exactly once")
               and "30 of 30 (twice: 0, lost: 0) ok" in line for line in lines), done.stdout
    assert raw.exists()
    # The quick mode leaves the docs alone.
    assert (os.path.getmtime(docs) if os.path.exists(docs) else None) == before
