"""The whole system as real processes on loopback: the server under pserve
(waitress), the scheduler and two workers, on SQLite or on PostgreSQL
(JOBRUNNER_TEST_DATABASE_URL), with short intervals; mail goes to a real
SMTP server on loopback.

Most tests share one server and scheduler (the module's `stack`) and have a
project, pool and workers of their own (`scene`). The tests of unresponsive
workers and of a server outage build stacks of their own.
"""
import os
import re
import signal
import time
from datetime import datetime, timedelta

import pytest

from jobrunner.worker.logbuffer import TRUNCATED_MARKER
from jobrunner.worker.run import KILLED_NOTE, RESTARTED_NOTE

from bench.stack import wait_until
from ..worker.test_executor import is_alive
from .conftest import PASSWORD

pytestmark = pytest.mark.e2e


def when(value):
    return datetime.fromisoformat(value) if value else None


def read_pid(path):
    """The pid a script wrote to `path`, once it is there."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") else None


def max_overlap(runs):
    """The most runs that were between start and return at one moment."""
    events = sorted([(when(run["start_dts"]), 1) for run in runs]
                    + [(when(run["return_dts"]), -1) for run in runs])
    running = highest = 0
    for _at, step in events:
        running += step
        highest = max(highest, running)
    return highest


def test_a_recurring_job_runs_returns_and_is_scheduled_again(scene):
    job = scene.job('echo "hello from $(basename $0)"', reschedule_interval=1,
                    reschedule_interval_type="MINUTE")
    first = scene.schedule(job)
    scene.start_worker(1)

    returned = wait_until(lambda: scene.returned_runs(job, 1), message="the run's return")[0]
    assert returned["id"] == first.id
    assert returned["return_success"] is True
    assert returned["worker"] == f"/api/v1/worker/{scene.workers[0].id}/"
    assert re.fullmatch(r"hello from jobrunner-run-\d+-\w+\n", scene.log_of(returned))
    assert when(returned["enqueue_dts"]) <= when(returned["start_dts"]) <= when(
        returned["return_dts"])

    runs = scene.runs_of(job)
    assert len(runs) == 2
    following = runs[1]
    assert when(following["schedule_dts"]) == when(returned["schedule_dts"]) + timedelta(minutes=1)
    assert following["enqueue_dts"] is None and following["is_manual"] is False
    assert scene.job_state(job)["last_completed_schedule_id"] == first.id


def test_a_failing_run_sends_the_failure_mail_and_a_script_without_shebang_fails(
        scene, mailbox):
    failing = scene.job("echo something went wrong\nexit 1")
    bare = scene.job("echo no shebang here", template=scene.template_without_shebang())
    scene.schedule(failing)
    scene.schedule(bare)
    scene.start_worker(1)

    failed_run = wait_until(lambda: scene.returned_runs(failing, 1))[0]
    bare_run = wait_until(lambda: scene.returned_runs(bare, 1))[0]
    assert failed_run["return_success"] is False
    assert scene.log_of(failed_run) == "something went wrong\n[jobrunner-worker] exit code 1\n"
    assert scene.job_state(failing)["fail_times"] == 1

    assert bare_run["return_success"] is False
    assert bare_run["start_dts"] is not None
    bare_log = scene.log_of(bare_run)
    assert "first line must be a shebang" in bare_log
    assert "echo no shebang here" in bare_log
    assert scene.job_state(bare)["fail_times"] == 1

    def mail_about(job):
        return [m for m in mailbox.messages if m["subject"] == f"Run error for: {job.title}"]

    wait_until(lambda: mail_about(failing) and mail_about(bare), timeout=10,
               message="both failure mails")
    [mail] = mail_about(failing)
    assert sorted(mail["rcpt"]) == sorted([
        f"job-{scene.tag}@example.com", f"pool-{scene.tag}@example.com", "admin@example.com"])
    assert "something went wrong" in mail["body"]
    assert len(mail_about(bare)) == 1


def test_output_beyond_max_log_bytes_is_truncated_with_the_marker(scene):
    job = scene.job('i=1; while [ $i -le 1000 ]; do echo "line $i of the output"; '
                    'i=$((i+1)); done')
    run = scene.schedule(job)
    scene.start_worker(1, max_log_bytes=2000)

    returned = wait_until(lambda: scene.returned_runs(job, 1))[0]
    assert returned["return_success"] is True
    content = scene.log_of(returned)
    assert len(content.encode()) <= 2000
    assert content.count(TRUNCATED_MARKER) == 1
    head, tail = content.split(TRUNCATED_MARKER)
    assert head.startswith("line 1 of the output\nline 2 of the output\n")
    assert len(head.encode()) <= 401
    assert tail.endswith("line 999 of the output\nline 1000 of the output\n")
    assert returned["id"] == run.id


def test_the_log_of_a_running_job_shows_through_the_api_before_it_returns(scene):
    stop = scene.workdir / "stop"
    job = scene.job(f'i=1; while [ ! -e {stop} ]; do echo "tick $i"; i=$((i+1)); sleep 1; done; '
                    'echo finished')
    scene.schedule(job)
    scene.start_worker(1)

    def partial_log():
        [run] = scene.runs_of(job)
        content = scene.log_of(run) if run["run_log"] else None
        if content and content.startswith("tick 1\n"):
            # Read after the log: the run was still going when the log was.
            assert scene.run(run["id"])["return_dts"] is None
            return content
        return None

    partial = wait_until(partial_log, timeout=20, message="a partial log")
    assert "finished" not in partial
    stop.touch()
    returned = wait_until(lambda: scene.returned_runs(job, 1))[0]
    final = scene.log_of(returned)
    assert final.startswith(partial) and final.endswith("finished\n")


def test_a_run_killed_by_a_project_admin_stops_with_its_children(scene, mailbox):
    script_pid = scene.workdir / "script.pid"
    child_pid = scene.workdir / "child.pid"
    job = scene.job(f"echo $$ > {script_pid}\nsleep 300 &\necho $! > {child_pid}\n"
                    "echo waiting for the child\nwait")
    scene.schedule(job)
    scene.start_worker(1)
    script = wait_until(lambda: read_pid(script_pid), message="the script's pid")
    child = wait_until(lambda: read_pid(child_pid), message="the child's pid")
    # The start is stored before the script runs, its pid a moment later.
    [run] = wait_until(lambda: [r for r in scene.runs_of(job) if r["pid"]], message="the pid")
    assert run["start_dts"] and run["pid"] == script

    admin = scene.stack.login(scene.admin.username, PASSWORD)
    response = admin.post("/api/v1/kill_request/", {"run": run["resource_uri"]})
    assert response.status_code == 201, response.text
    kill_request = response.json()

    returned = wait_until(lambda: scene.returned_runs(job, 1), message="the killed run's return")[0]
    assert returned["return_success"] is False
    assert KILLED_NOTE in scene.log_of(returned)
    assert "waiting for the child" in scene.log_of(returned)
    wait_until(lambda: not is_alive(child) and not is_alive(script), timeout=10,
               message="the script and its child to be gone")
    executed = admin.get(kill_request["resource_uri"])
    assert executed["enqueue_dts"] and executed["execute_dts"]
    assert when(executed["enqueue_dts"]) <= when(executed["execute_dts"]) <= when(
        returned["return_dts"])
    assert scene.job_state(job)["fail_times"] == 1
    wait_until(lambda: any(m["subject"] == f"Run error for: {job.title}"
                           and "Killed:     yes" in m["body"] for m in mailbox.messages),
               timeout=10, message="the failure mail of the killed run")


def test_concurrent_jobs_is_never_exceeded(scene):
    jobs = [scene.job("sleep 1") for _ in range(6)]
    for job in jobs:
        scene.schedule(job)
    scene.start_worker(1, concurrent_jobs=1)
    scene.start_worker(2, concurrent_jobs=2)

    runs = wait_until(lambda: all(scene.returned_runs(job, 1) for job in jobs)
                      and [scene.runs_of(job)[0] for job in jobs], timeout=60)
    assert all(run["return_success"] for run in runs)
    for number, limit in ((1, 1), (2, 2)):
        uri = f"/api/v1/worker/{scene.workers[number - 1].id}/"
        mine = [run for run in runs if run["worker"] == uri]
        assert mine, f"worker {number} ran nothing"
        assert max_overlap(mine) <= limit
    assert max_overlap(runs) <= 3
    second = scene.stack.client(scene.workers[1].api_key, scene.workers[1].secret)
    assert second.objects("/api/v1/worker/")[0]["concurrent_jobs"] == 2


def test_run_on_all_workers_runs_once_on_each_and_the_child_once_after_both(scene):
    marks = scene.workdir / "marks"
    parent = scene.job(f"echo parent $(date +%s%N) >> {marks}\nsleep 0.5", run_on_all_workers=True)
    child = scene.job(f"echo child $(date +%s%N) >> {marks}", parent=parent)
    scene.start_worker(1)
    scene.start_worker(2)
    original = scene.schedule(parent)

    child_runs = wait_until(lambda: scene.returned_runs(child, 1), timeout=30,
                            message="the child's run")
    parent_runs = scene.runs_of(parent)
    assert len(parent_runs) == 2
    assert original.id not in [run["id"] for run in parent_runs]
    assert sorted(run["worker"] for run in parent_runs) == sorted(
        f"/api/v1/worker/{worker.id}/" for worker in scene.workers)
    assert {run["schedule_id"] for run in parent_runs} == {original.id}
    assert all(run["return_success"] for run in parent_runs)

    # Everything of the schedule has returned: nothing more can come of it.
    assert len(scene.runs_of(child)) == 1 and len(child_runs) == 1
    [child_run] = child_runs
    assert child_run["return_success"] is True
    assert when(child_run["schedule_dts"]) >= max(when(run["return_dts"]) for run in parent_runs)
    lines = marks.read_text().split()
    assert lines[0::2] == ["parent", "parent", "child"]


def test_a_chain_of_parent_and_children_runs_in_order(scene):
    marks = scene.workdir / "marks"
    first = scene.job(f"echo first >> {marks}\nsleep 0.2")
    second = scene.job(f"echo second >> {marks}\nsleep 0.2", parent=first)
    third = scene.job(f"echo third >> {marks}", parent=second)
    scene.start_worker(1)
    scene.start_worker(2)
    scene.schedule(first)

    wait_until(lambda: scene.returned_runs(third, 1), timeout=30, message="the third job's run")
    assert marks.read_text() == "first\nsecond\nthird\n"
    [run1], [run2], [run3] = (scene.runs_of(job) for job in (first, second, third))
    assert all(run["return_success"] for run in (run1, run2, run3))
    assert when(run1["return_dts"]) <= when(run2["schedule_dts"]) <= when(run2["start_dts"])
    assert when(run2["return_dts"]) <= when(run3["schedule_dts"]) <= when(run3["start_dts"])


def test_a_worker_restarted_mid_run_returns_its_run_as_failed(scene):
    script_pid = scene.workdir / "script.pid"
    job = scene.job(f"echo $$ > {script_pid}\necho working\nsleep 300")
    scene.schedule(job)
    worker = scene.start_worker(1)
    script = wait_until(lambda: read_pid(script_pid))
    [started] = wait_until(lambda: [r for r in scene.runs_of(job) if r["pid"]], message="the pid")
    wait_until(lambda: scene.log_of(started) == "working\n", message="the live log")

    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    scene.start_worker(1, name=f"worker-{scene.workers[0].api_key}-again")

    returned = wait_until(lambda: scene.returned_runs(job, 1), message="the return on restart")[0]
    assert returned["return_success"] is False
    assert scene.log_of(returned) == "working\n" + RESTARTED_NOTE + "\n"
    assert scene.job_state(job)["fail_times"] == 1
    # Nothing of the run is started again.
    assert len(scene.runs_of(job)) == 1
    assert scene.run(returned["id"])["pid"] == script


@pytest.fixture
def impatient_stack(make_stack):
    """Unresponsive after 3 s without a ping (the workers ping every 0.3 s)."""
    stack = make_stack(**{
        "jobrunner.worker.ping_interval": "1",
        "jobrunner.worker.ping_margin": "1",
        "jobrunner.worker.unresponsive_after_intervals": "2",
    })
    stack.start_scheduler()
    return stack


def test_a_killed_worker_s_run_is_failed_by_the_scheduler(impatient_stack, make_scene, mailbox):
    scene = make_scene(impatient_stack)
    job = scene.job("echo working\nsleep 300")
    scene.schedule(job)
    worker = scene.start_worker(1)
    [started] = wait_until(lambda: [r for r in scene.runs_of(job) if r["pid"]], message="the pid")
    wait_until(lambda: scene.log_of(started) == "working\n", message="the live log")

    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    returned = wait_until(lambda: scene.returned_runs(job, 1), timeout=30,
                          message="the scheduler's return")[0]
    assert returned["id"] == started["id"]
    assert returned["return_success"] is False
    # Not before the threshold: 2 intervals of 1 s plus a margin of 1 s.
    last_ping = when(scene.api.objects("/api/v1/worker/")[0]["ping_response_dts"])
    assert when(returned["return_dts"]) >= last_ping + timedelta(seconds=3)
    log = scene.log_of(returned)
    assert log.startswith("working\n[jobrunner scheduler] ")
    assert "[jobrunner scheduler]" in log and "unresponsive" in log
    assert scene.workers[0].title in log
    assert scene.job_state(job)["fail_times"] == 1
    wait_until(lambda: any(m["subject"] == f"Run error for: {job.title}"
                           for m in mailbox.messages), timeout=10, message="the failure mail")


def test_the_workers_deliver_every_result_after_a_server_outage(make_stack, make_scene):
    # The scheduler judges workers by their pings, which cannot arrive while
    # the server is down; as in production, the threshold outlasts the outage.
    stack = make_stack(**{
        "jobrunner.worker.ping_interval": "1",
        "jobrunner.worker.ping_margin": "1",
        "jobrunner.worker.unresponsive_after_intervals": "60",
    })
    stack.start_scheduler()
    scene = make_scene(stack)
    counts = scene.workdir / "counts"
    counts.mkdir()
    jobs = []
    for number in range(8):
        outcome = "exit 1" if number % 2 else "exit 0"
        jobs.append(scene.job(f"echo ran >> {counts}/{number}\necho start {number}\nsleep 2\n"
                              f"echo end {number}\n{outcome}",
                              reschedule_interval=1, reschedule_interval_type="HOUR"))
    child = scene.job(f"echo ran >> {counts}/child", parent=jobs[0])
    for job in jobs:
        scene.schedule(job)
    scene.start_worker(1)
    scene.start_worker(2)
    wait_until(lambda: all(scene.runs_of(job)[0]["start_dts"] for job in jobs), timeout=30,
               message="every run to start")

    stack.stop_server()
    # Time must pass here: the outage itself. The scripts end meanwhile.
    time.sleep(10)
    back_at = datetime.now().astimezone()
    stack.start_server()

    wait_until(lambda: all(scene.returned_runs(job, 1) for job in jobs)
               and scene.returned_runs(child, 1), timeout=60, message="every result")
    for number, job in enumerate(jobs):
        runs = scene.runs_of(job)
        # One run returned; the next one scheduled once, an hour on.
        assert len(runs) == 2, runs
        done, following = runs
        assert done["return_success"] is (number % 2 == 0)
        # Dated when the script ended, during the outage, and delivered later.
        assert when(done["return_dts"]) < back_at
        assert scene.log_of(done).startswith(f"start {number}\nend {number}\n")
        assert following["enqueue_dts"] is None
        assert when(following["schedule_dts"]) == when(done["schedule_dts"]) + timedelta(hours=1)
        assert scene.job_state(job)["fail_times"] == number % 2
        assert (counts / str(number)).read_text() == "ran\n"
    assert len(scene.runs_of(child)) == 1
    assert (counts / "child").read_text() == "ran\n"

    # Each result reported by exactly one worker, once (a return whose answer
    # was lost in the outage is answered 409 on retry: still one report).
    reports = "".join(stack.log_of(proc) for proc in scene.processes.values())
    assert "Connection refused" in reports and "retry" in reports
    for job in jobs:
        run_uri = scene.runs_of(job)[0]["resource_uri"]
        lines = re.findall(
            rf"run {re.escape(run_uri)} (?:returned|had already been returned)", reports)
        assert len(lines) == 1, (run_uri, lines)
