"""Schedules with the real processes (server, scheduler, workers): a run
killed for its timeout with its whole process group, retries with one
failure mail, and the three overlap policies."""
from datetime import datetime

import pytest

from bench.stack import wait_until
from ..worker.test_executor import is_alive
from .test_end_to_end import max_overlap, read_pid, when

pytestmark = pytest.mark.e2e


def test_a_run_past_its_timeout_is_killed_with_its_children(scene):
    script_pid = scene.workdir / "script.pid"
    child_pid = scene.workdir / "child.pid"
    job = scene.job(f"echo $$ > {script_pid}\nsleep 300 &\necho $! > {child_pid}\n"
                    "echo waiting for the child\nwait", timeout=1)
    scene.schedule(job)
    scene.start_worker(1)
    script = wait_until(lambda: read_pid(script_pid), message="the script's pid")
    child = wait_until(lambda: read_pid(child_pid), message="the child's pid")
    returned = wait_until(lambda: scene.returned_runs(job, 1), message="the timed-out run's return")[0]
    assert returned["return_success"] is False and returned["timed_out"] is True
    log = scene.log_of(returned)
    assert "waiting for the child" in log
    assert log.endswith("[timed out after 1 s]\n")
    assert (when(returned["return_dts"]) - when(returned["start_dts"])).total_seconds() < 10
    wait_until(lambda: not is_alive(child) and not is_alive(script), timeout=10,
               message="the script and its child to be gone")


def test_a_failing_run_is_tried_three_times_and_mails_once(scene, mailbox):
    job = scene.job("echo attempt failed\nexit 3", retries=2, retry_delay=1)
    first = scene.schedule(job)
    scene.start_worker(1)
    runs = wait_until(lambda: scene.returned_runs(job, 3), timeout=60, message="three attempts")
    assert [run["attempt"] for run in runs] == [1, 2, 3]
    assert {run["schedule_id"] for run in runs} == {first.id}
    assert not any(run["return_success"] for run in runs)
    # Each retry waits its delay (1 s, then 2 s) after the return before.
    for before, retry, delay in ((runs[0], runs[1], 1), (runs[1], runs[2], 2)):
        assert (when(retry["schedule_dts"]) - when(before["return_dts"])).total_seconds() == delay
        assert when(retry["start_dts"]) >= when(retry["schedule_dts"])
    assert scene.job_state(job)["fail_times"] == 1
    subject = f"Run error for: {job.title}"
    wait_until(lambda: any(m["subject"] == subject for m in mailbox.messages), timeout=10,
               message="the failure mail")
    assert [m["subject"] for m in mailbox.messages].count(subject) == 1
    assert len(scene.runs_of(job)) == 3


def two_schedules(scene, job):
    now = datetime.now().astimezone()
    return [scene.schedule(job, schedule_dts=now), scene.schedule(job, schedule_dts=now)]


@pytest.mark.parametrize("policy, overlap", [("forbid", 1), ("allow", 2)])
def test_forbid_runs_schedules_one_after_the_other_and_allow_together(scene, policy, overlap):
    job = scene.job("sleep 1.5", concurrency_policy=policy)
    two_schedules(scene, job)
    scene.start_worker(1)
    runs = wait_until(lambda: scene.returned_runs(job, 2), timeout=60, message="both returns")
    assert all(run["return_success"] for run in runs)
    assert max_overlap(runs) == overlap


def test_allow_schedules_the_next_run_when_a_run_starts(scene):
    job = scene.job("sleep 2", concurrency_policy="allow", reschedule_interval=1,
                    reschedule_interval_type="HOUR")
    first = scene.schedule(job)
    scene.start_worker(1)
    runs = wait_until(lambda: len(scene.runs_of(job)) == 2 and scene.runs_of(job),
                      message="the next run at the start")
    started, following = runs
    assert started["id"] == first.id and started["return_dts"] is None
    assert when(following["schedule_dts"]) > when(started["schedule_dts"])


def test_replace_kills_the_started_run_and_then_runs_the_due_one(scene):
    marks = scene.workdir / "marks"
    job = scene.job(f"echo start $$ >> {marks}\nsleep 300", concurrency_policy="replace")
    old = scene.schedule(job)
    scene.start_worker(1)
    wait_until(lambda: any(run["start_dts"] for run in scene.runs_of(job)), message="the start")
    new = scene.schedule(job, is_manual=True)
    returned = wait_until(lambda: scene.returned_runs(job, 1), timeout=30,
                          message="the replaced run's return")[0]
    assert returned["id"] == old.id and returned["return_success"] is False
    assert f"replaced by run {new.id}" in scene.log_of(returned)
    started = wait_until(lambda: scene.run(new.id)["start_dts"] and scene.run(new.id),
                         message="the due run's start")
    assert when(started["start_dts"]) >= when(returned["return_dts"])
