"""Faults on the worker's side, on the real stack of processes: a worker
whose ini pings too rarely, a run the scheduler fails while its script still
runs, a full disk for the scripts, a worker clock ten minutes off.

Every job script appends its run id to a markers file: a run executed twice
shows as a repeated line. Each test prints one `FIGURES` line (runs
submitted, completed, executed twice, lost, seconds to recover), gathered
with `pytest -s tests/e2e/test_worker_faults.py | grep FIGURES`.
"""
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from bench.stack import wait_until
from ..worker.test_executor import is_alive

pytestmark = pytest.mark.e2e

FENCED_LINE = "is no longer this worker's"


def when(value):
    return datetime.fromisoformat(value) if value else None


def marked(markers, job_text):
    """`job_text` preceded by a line that records the run's id in `markers`."""
    return f'echo "$JOBRUNNER_RUN_ID" >> {markers}\n{job_text}'


def marks(markers):
    try:
        return Counter(markers.read_text().split())
    except FileNotFoundError:
        return Counter()


def figures(name, submitted, runs, markers, recover_seconds=None):
    """Prints the test's figures and checks the two that must be 0."""
    completed = sum(1 for run in runs if run["return_dts"])
    twice = sum(1 for count in marks(markers).values() if count > 1)
    lost = submitted - completed
    recover = "-" if recover_seconds is None else f"{recover_seconds:.2f}"
    print(f"\nFIGURES {name}: submitted={submitted} completed={completed} "
          f"executed_twice={twice} lost={lost} recover_s={recover}")
    assert (twice, lost) == (0, 0)


@pytest.fixture
def impatient_stack(make_stack):
    """Unresponsive after 1.5 s without a ping (pings expected every 0.5 s)."""
    stack = make_stack(**{
        "jobrunner.worker.ping_interval": "0.5",
        "jobrunner.worker.ping_margin": "0.5",
        "jobrunner.worker.unresponsive_after_intervals": "2",
    })
    stack.start_scheduler()
    return stack


# --- the ping interval --------------------------------------------------------------


def test_a_worker_whose_ini_says_60_s_pings_as_often_as_the_server_expects(
        impatient_stack, make_scene, tmp_path):
    scene = make_scene(impatient_stack)
    markers = tmp_path / "markers"
    # Four times the unresponsive limit: a worker pinging every 60 s would
    # see this run failed by the scheduler.
    job = scene.job(marked(markers, "sleep 6\necho done"))
    scene.schedule(job)
    worker = scene.start_worker(1, ping_interval=60)

    [run] = wait_until(lambda: scene.returned_runs(job, 1), timeout=40, message="the return")
    assert run["return_success"] is True, scene.log_of(run)
    assert scene.log_of(run) == "done\n"
    stack_log = impatient_stack.log_of(worker)
    assert "pinging every 0.5 s (the ini says 60 s, the server expects 0.5 s)" in stack_log
    figures("ping_interval", 1, [run], markers)


# --- a run that is no longer the worker's -------------------------------------------


def test_a_run_the_scheduler_failed_is_killed_on_its_worker_which_keeps_working(
        impatient_stack, make_scene, tmp_path):
    """The issue's story: the worker could not ping for a while (stopped
    here with SIGSTOP), the scheduler failed its silent ten-minute run; once
    the worker runs again it finds the run is no longer its own and kills
    the script's process group at once."""
    scene = make_scene(impatient_stack)
    markers = tmp_path / "markers"
    pid_file = tmp_path / "script.pid"
    job = scene.job(marked(markers, f"echo $$ > {pid_file}\nsleep 600"))
    scene.schedule(job)
    worker = scene.start_worker(1)
    [started] = wait_until(lambda: [r for r in scene.runs_of(job) if r["pid"]],
                           message="the start and the pid")
    script_pid = wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(),
                            message="the script's pid")
    script_pid = int(script_pid)
    assert started["pid"] == script_pid
    # The script's child too: the whole group must go.
    sleeper = wait_until(lambda: children_of(script_pid), message="the script's child")[0]

    worker.send_signal(signal.SIGSTOP)
    try:
        [failed] = wait_until(lambda: scene.returned_runs(job, 1), timeout=30,
                              message="the scheduler's return")
    finally:
        worker.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    assert failed["return_success"] is False
    wait_until(lambda: not is_alive(script_pid) and not is_alive(sleeper), timeout=10,
               message="the script's process group to go")
    recovered = time.monotonic() - resumed

    log = impatient_stack.log_of(worker)
    assert f"run /api/v1/run/{started['id']}/ {FENCED_LINE}" in log
    assert "killed its process group" in log
    # The run's log keeps the scheduler's reason; the worker reported nothing more.
    run_log = scene.log_of(failed)
    assert "[jobrunner scheduler]" in run_log and "unresponsive" in run_log
    assert scene.run(started["id"])["return_success"] is False

    # The worker goes on: its next run runs.
    follow = scene.job(marked(markers, "echo next"))
    scene.schedule(follow)
    [next_run] = wait_until(lambda: scene.returned_runs(follow, 1), timeout=30,
                            message="the next run")
    assert next_run["return_success"] is True and scene.log_of(next_run) == "next\n"
    assert worker.poll() is None
    figures("fencing_kill", 2, [failed, next_run], markers, recovered)


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except FileNotFoundError:
        return []


# --- a full disk --------------------------------------------------------------------


def mount_small_tmpfs(path):
    """A 64 KiB tmpfs at `path`; the reason when this machine allows none."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"mount -t tmpfs failed: {done.stderr.strip()}"
    return None


def fill(path):
    """Writes into `path` until its filesystem is full; returns the file."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError as error:
            assert error.errno == 28, error  # ENOSPC
    return filler


def test_a_full_disk_for_the_scripts_fails_the_run_with_the_reason_and_the_worker_goes_on(
        scene, tmp_path):
    scripts = tmp_path / "small"
    reason = mount_small_tmpfs(scripts)
    if reason is not None:
        pytest.skip(f"no small filesystem on this machine ({reason}); "
                    "test_a_script_file_that_cannot_be_written_fails_the_run covers the reason")
    markers = tmp_path / "markers"
    try:
        # The worker's private folder is made before the disk fills up.
        os.makedirs(scripts / f"jobrunner-worker-{os.getuid()}", mode=0o700)
        filler = fill(str(scripts))
        worker = scene.start_worker(1, script_temp_path=str(scripts), max_log_bytes=100_000)
        job = scene.job(marked(markers, "echo never"))
        scene.schedule(job)
        [failed] = wait_until(lambda: scene.returned_runs(job, 1), timeout=30,
                              message="the failed run")
        assert failed["return_success"] is False
        log = scene.log_of(failed)
        assert "No space left on device" in log, log
        assert log.startswith("[jobrunner-worker] cannot write the script file "), log
        returned_line = f"run /api/v1/run/{failed['id']}/ returned (failure)"
        wait_until(lambda: returned_line in scene.stack.log_of(worker), message="the worker's log")

        # Space again: the next run runs, and a flood of output is no
        # trouble (the worker keeps a run's output in memory, not on disk).
        freed = time.monotonic()
        os.unlink(filler)
        flood = scene.job(marked(markers, "head -c 3000000 /dev/zero | tr '\\0' 'y' | fold -w 99"))
        scene.schedule(flood)
        [ran] = wait_until(lambda: scene.returned_runs(flood, 1), timeout=30,
                           message="the run after the disk had space")
        recovered = time.monotonic() - freed
        assert ran["return_success"] is True
        assert "[truncated]" in scene.log_of(ran)
        assert worker.poll() is None
        # Returned once: the worker did not try the failed run again.
        assert scene.stack.log_of(worker).count(returned_line) == 1
        figures("disk_full", 2, [failed, ran], markers, recovered)
    finally:
        scene.close()
        subprocess.run(["umount", "-l", str(scripts)], capture_output=True)


def test_a_script_file_that_cannot_be_written_fails_the_run(scene, tmp_path):
    """The same failure where no filesystem can be mounted: the worker runs
    with a file size limit of 1 byte (RLIMIT_FSIZE), so writing the script
    file fails in the kernel ("File too large")."""
    markers = tmp_path / "markers"
    worker = scene.start_worker(1, prefix=("prlimit", "--fsize=1"))
    job = scene.job(marked(markers, "echo never"))
    scene.schedule(job)
    [failed] = wait_until(lambda: scene.returned_runs(job, 1), timeout=30,
                          message="the failed run")
    assert failed["return_success"] is False
    log = scene.log_of(failed)
    assert log.startswith("[jobrunner-worker] cannot write the script file "), log
    assert "File too large" in log
    assert worker.poll() is None
    figures("unwritable_script", 1, [failed], markers)


# --- clock skew ---------------------------------------------------------------------

FAKETIME = shutil.which("faketime")


@pytest.mark.skipif(FAKETIME is None, reason="needs faketime (Debian package faketime)")
@pytest.mark.parametrize("skew", ["+10m", "-10m"])
def test_a_worker_whose_clock_is_ten_minutes_off_runs_jobs_on_the_servers_time(
        impatient_stack, make_scene, tmp_path, skew):
    scene = make_scene(impatient_stack)
    markers = tmp_path / "markers"
    times = tmp_path / "times"
    # The script runs on the machine's true clock (the worker passes no
    # LD_PRELOAD on), so it tells when it really ran.
    script = marked(markers, f'echo "$JOBRUNNER_RUN_ID $(date +%s.%N)" >> {times}\nsleep 2')
    now_job = scene.job(script)
    later_job = scene.job(script)
    now_run = scene.schedule(now_job)
    due_at = datetime.now(timezone.utc) + timedelta(seconds=8)
    later_run = scene.schedule(later_job, schedule_dts=due_at)
    # Only the wall clock is moved: faked monotonic clocks make timed waits hang.
    worker = scene.start_worker(1, prefix=(FAKETIME, "-f", skew),
                                env={"FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    [first] = wait_until(lambda: scene.returned_runs(now_job, 1), timeout=30,
                         message="the run due now")
    [second] = wait_until(lambda: scene.returned_runs(later_job, 1), timeout=40,
                          message="the run due later")
    log = scene.stack.log_of(worker)
    assert f"this machine's clock is {skew[0]}6" in log, log[-3000:]
    # No request refused as unsigned or stale (not a pid or a timestamp's
    # milliseconds that happen to read 401).
    assert not re.search(r"(?<!pid )(?<![\w.,:])401(?![\w.])", log), log[-3000:]
    started_at = {int(line.split()[0]): float(line.split()[1])
                  for line in times.read_text().splitlines()}
    for run in (first, second):
        assert run["return_success"] is True, scene.log_of(run)
        # The times the worker reported are the server's: within a second
        # of when the script really ran, and the duration is true.
        start, back = when(run["start_dts"]), when(run["return_dts"])
        assert abs(start.timestamp() - started_at[run["id"]]) < 1.5, (skew, run)
        assert 1.9 <= (back - start).total_seconds() < 4, (skew, run)
        # The claim is stamped by the server's clock, the start by the
        # worker's estimate of it, good to the Date header's second.
        assert when(run["enqueue_dts"]) <= start + timedelta(seconds=1.5)
    # Not claimed before it was due by the server's clock.
    assert started_at[later_run.id] >= due_at.timestamp()
    # The worker knows the server's time to about a second (the Date header
    # has whole seconds): its claim time may read up to that much early.
    assert when(second["enqueue_dts"]) >= due_at - timedelta(seconds=1)
    worker_object = scene.api.objects("/api/v1/worker/")[0]
    assert abs(when(worker_object["ping_response_dts"]) - datetime.now(timezone.utc)) < timedelta(
        seconds=3)
    figures(f"clock_skew_{skew}", 2, [first, second], markers)
    assert now_run.id in started_at
