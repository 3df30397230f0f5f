"""The daemon's loop against an in-memory fake of the REST API."""

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jobrunner.worker.config import WorkerConfig
from jobrunner.worker.daemon import KILLED_NOTE, RESTARTED_NOTE, WorkerDaemon

from .fake_api import FakeApi
from .test_executor import is_alive, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api():
    fake = FakeApi()
    fake.base_url = fake.start()
    yield fake
    fake.stop()


def make_config(api, tmp_path, **overrides):
    settings = dict(
        api_base_url=api.base_url,
        api_key="worker1",
        secret="verysecret",
        concurrent_jobs=4,
        max_log_bytes=10_000,
        script_temp_path=str(tmp_path),
        poll_interval=0.05,
        ping_interval=0.2,
    )
    settings.update(overrides)
    return WorkerConfig(**settings)


class RunningDaemon:
    def __init__(self, daemon):
        self.daemon = daemon
        self.exit_code = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.exit_code = self.daemon.run()

    def stop(self):
        self.daemon.request_stop()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive()
        return self.exit_code


@pytest.fixture
def start_daemon(api, tmp_path):
    running = []

    def start(**overrides):
        daemon = WorkerDaemon(
            make_config(api, tmp_path, **overrides),
            log_update_interval=0.1,
            kill_grace_seconds=2,
        )
        daemon.client.backoff_cap = 0.05
        running.append(RunningDaemon(daemon))
        return running[-1]

    yield start
    for daemon in running:
        if daemon.thread.is_alive():
            daemon.daemon.request_force_stop()
            daemon.thread.join(timeout=10)


def returned(api, run):
    return api.runs[run["id"]]["return_dts"] is not None


def test_claims_runs_reports_and_returns(api, start_daemon):
    job = api.add_job("#!/bin/sh\necho hello from the job\n")
    run = api.add_run(job)
    running = start_daemon()

    wait_for(lambda: returned(api, run))
    assert running.stop() == 0

    stored = api.runs[run["id"]]
    assert stored["return_success"] is True
    assert stored["worker"] == api.worker["resource_uri"]
    assert stored["pid"] > 0
    assert api.log_of(run) == "hello from the job\n"
    assert all(ok for _method, _path, _body, ok in api.requests)

    run_patches = [body for method, path, body, _ok in api.requests
                   if method == "PATCH" and path == run["resource_uri"]]
    assert set(run_patches[0]) == {"enqueue_dts", "worker"}
    assert set(run_patches[1]) == {"start_dts", "pid"}
    assert set(run_patches[-1]) == {"return_dts", "return_success"}
    for value in (run_patches[0]["enqueue_dts"], run_patches[-1]["return_dts"]):
        assert value.endswith("+00:00") and "." in value
    # The log is stored before the run is returned.
    order = [(method, path) for method, path, _body, _ok in api.requests]
    log_write = max(i for i, (m, p) in enumerate(order) if p.startswith("/api/v1/run_log/")
                    and m in ("POST", "PATCH"))
    last_return = max(i for i, entry in enumerate(order) if entry == ("PATCH", run["resource_uri"]))
    assert log_write < last_return


def test_pings_with_version_and_concurrency(api, start_daemon):
    running = start_daemon(concurrent_jobs=3)
    wait_for(lambda: len(api.requests_to("PATCH", "/api/v1/worker/1/")) >= 3)
    assert running.stop() == 0
    body = api.requests_to("PATCH", "/api/v1/worker/1/")[0][2]
    assert set(body) == {"ping_response_dts", "worker_version", "concurrent_jobs"}
    assert body["concurrent_jobs"] == 3
    assert body["worker_version"]


def test_script_without_shebang_is_a_failed_run(api, start_daemon):
    run = api.add_run(api.add_job("echo no shebang\n"))
    running = start_daemon()
    wait_for(lambda: returned(api, run))
    assert running.stop() == 0
    stored = api.runs[run["id"]]
    assert stored["return_success"] is False
    assert stored["start_dts"] is not None
    assert "shebang" in api.log_of(run)


def test_failing_script_is_a_failed_run_with_its_exit_code(api, start_daemon):
    run = api.add_run(api.add_job("#!/bin/sh\necho oops\nexit 4\n"))
    running = start_daemon()
    wait_for(lambda: returned(api, run))
    assert running.stop() == 0
    assert api.runs[run["id"]]["return_success"] is False
    assert api.log_of(run) == "oops\n[jobrunner-worker] exit code 4\n"


def test_live_log_is_updated_while_the_script_runs(api, start_daemon, tmp_path):
    go_on = tmp_path / "go-on"
    run = api.add_run(api.add_job(
        f"#!/bin/sh\necho first\nwhile [ ! -e {go_on} ]; do sleep 0.05; done\necho second\n"
    ))
    running = start_daemon()
    wait_for(lambda: api.log_of(run) == "first\n")
    go_on.touch()
    wait_for(lambda: returned(api, run))
    assert running.stop() == 0
    assert api.log_of(run) == "first\nsecond\n"
    assert len(api.requests_to("POST", "/api/v1/run_log/")) == 1


def test_never_more_than_concurrent_jobs_at_once(api, start_daemon):
    runs = [api.add_run(api.add_job("#!/bin/sh\nsleep 0.3\n")) for _ in range(5)]
    running = start_daemon(concurrent_jobs=2)
    wait_for(lambda: all(returned(api, run) for run in runs), timeout=20)
    assert running.stop() == 0
    assert api.max_started_at_once == 2
    assert all(api.runs[run["id"]]["return_success"] for run in runs)
    for method, path, _body, _ok in api.requests:
        if path.startswith("/api/v1/run/?state=enqueueable"):
            assert "limit=0" not in path


def test_a_run_taken_by_another_worker_is_skipped(api, start_daemon):
    run = api.add_run(api.add_job("#!/bin/sh\nexit 0\n"))
    api.stolen_on_claim.add(run["id"])
    other = api.add_run(api.add_job("#!/bin/sh\necho mine\n"))
    running = start_daemon()
    wait_for(lambda: returned(api, other))
    assert running.stop() == 0
    stolen = api.runs[run["id"]]
    assert stolen["start_dts"] is None and stolen["return_dts"] is None
    assert len(api.requests_to("PATCH", run["resource_uri"])) == 1


def test_return_is_retried_through_server_errors(api, start_daemon):
    run = api.add_run(api.add_job("#!/bin/sh\necho ok\n"))
    api.fail("PATCH", run["resource_uri"], [503, 502, 500], body_key="return_dts")
    running = start_daemon()
    wait_for(lambda: returned(api, run))
    assert running.stop() == 0
    returns = [body for method, path, body, _ok in api.requests
               if method == "PATCH" and path == run["resource_uri"] and "return_dts" in body]
    assert len(returns) == 4
    assert api.runs[run["id"]]["return_success"] is True


def test_lost_claim_answer_is_recognised_as_our_claim(api, start_daemon):
    run = api.add_run(api.add_job("#!/bin/sh\necho once >> \"$0.count\"\necho ran\n"))
    original_handle = api.handle
    state = {"dropped": False}

    def handle_and_lose_first_claim_answer(method, path, raw_body, authorization):
        status, payload = original_handle(method, path, raw_body, authorization)
        if method == "PATCH" and path == run["resource_uri"] and not state["dropped"]:
            state["dropped"] = True
            return 502, {"error": "proxy lost the answer"}
        return status, payload

    api.handle = handle_and_lose_first_claim_answer
    running = start_daemon()
    wait_for(lambda: returned(api, run))
    assert running.stop() == 0
    assert api.runs[run["id"]]["return_success"] is True
    assert api.log_of(run) == "ran\n"
    starts = [body for method, path, body, _ok in api.requests
              if method == "PATCH" and path == run["resource_uri"] and "pid" in body]
    assert len(starts) == 1


def test_kill_request_kills_the_run(api, start_daemon):
    run = api.add_run(api.add_job(
        "#!/bin/sh\nsleep 300 &\necho child $!\nwait\n"
    ))
    running = start_daemon()
    wait_for(lambda: (api.log_of(run) or "").startswith("child "))
    child = int(api.log_of(run).split()[1])
    kill_request = api.add_kill_request(api.runs[run["id"]])

    wait_for(lambda: returned(api, run))
    assert running.stop() == 0
    stored_kill = api.kill_requests[kill_request["id"]]
    assert stored_kill["enqueue_dts"] is not None
    assert stored_kill["execute_dts"] is not None
    assert api.runs[run["id"]]["return_success"] is False
    assert KILLED_NOTE in api.log_of(run)
    wait_for(lambda: not is_alive(child))
    # enqueue_dts, then execute_dts, then the return.
    order = [(method, path, tuple(body or ())) for method, path, body, _ok in api.requests
             if method == "PATCH"]
    kill_enqueue = order.index(("PATCH", kill_request["resource_uri"], ("enqueue_dts",)))
    kill_execute = order.index(("PATCH", kill_request["resource_uri"], ("execute_dts",)))
    run_return = order.index(("PATCH", run["resource_uri"], ("return_dts", "return_success")))
    assert kill_enqueue < kill_execute < run_return


def test_kill_request_for_a_run_not_running_here_is_closed(api, start_daemon):
    run = api.add_run(api.add_job("#!/bin/sh\n"), worker=api.worker["resource_uri"],
                      enqueue_dts="2020-01-01T00:00:00+00:00",
                      start_dts="2020-01-01T00:00:01+00:00",
                      return_dts="2020-01-01T00:00:02+00:00", return_success=True)
    kill_request = api.add_kill_request(run)
    running = start_daemon()
    wait_for(lambda: api.kill_requests[kill_request["id"]]["execute_dts"] is not None)
    assert running.stop() == 0
    assert api.runs[run["id"]]["return_success"] is True


def test_restart_settles_runs_left_by_an_earlier_process(api, start_daemon):
    worker_uri = api.worker["resource_uri"]
    job = api.add_job("#!/bin/sh\necho again\n")
    in_queue = api.add_run(job, worker=worker_uri, enqueue_dts="2020-01-01T00:00:00+00:00")
    started = api.add_run(job, worker=worker_uri, enqueue_dts="2020-01-01T00:00:00+00:00",
                          start_dts="2020-01-01T00:00:01+00:00", pid=12345)
    api.add_run_log(started, "partial output\n")
    started_without_log = api.add_run(
        api.add_job("#!/bin/sh\n"), worker=worker_uri,
        enqueue_dts="2020-01-01T00:00:00+00:00", start_dts="2020-01-01T00:00:01+00:00")

    running = start_daemon()
    # The run put back in the queue is then claimed and run afresh.
    wait_for(lambda: returned(api, in_queue) and returned(api, started)
             and returned(api, started_without_log))
    assert running.stop() == 0

    resets = [body for method, path, body, _ok in api.requests
              if method == "PATCH" and path == in_queue["resource_uri"]]
    assert resets[0] == {"enqueue_dts": None, "start_dts": None}
    assert api.runs[in_queue["id"]]["return_success"] is True
    assert api.log_of(in_queue) == "again\n"

    assert api.runs[started["id"]]["return_success"] is False
    assert api.log_of(started) == "partial output\n" + RESTARTED_NOTE + "\n"
    assert api.runs[started_without_log["id"]]["return_success"] is False
    assert api.log_of(started_without_log) == RESTARTED_NOTE + "\n"


def test_stop_lets_running_runs_finish_and_claims_nothing_more(api, start_daemon, tmp_path):
    go_on = tmp_path / "go-on"
    run = api.add_run(api.add_job(
        f"#!/bin/sh\nwhile [ ! -e {go_on} ]; do sleep 0.05; done\necho finished\n"
    ))
    running = start_daemon()
    wait_for(lambda: api.runs[run["id"]]["start_dts"] is not None)

    running.daemon.request_stop()
    later = api.add_run(api.add_job("#!/bin/sh\necho too late\n"))
    # Still waiting for the running script, and pinging meanwhile.
    pings = len(api.requests_to("PATCH", "/api/v1/worker/1/"))
    wait_for(lambda: len(api.requests_to("PATCH", "/api/v1/worker/1/")) > pings)
    assert running.thread.is_alive()
    go_on.touch()
    running.thread.join(timeout=20)
    assert running.exit_code == 0
    assert api.runs[run["id"]]["return_success"] is True
    assert api.log_of(run) == "finished\n"
    assert api.runs[later["id"]]["enqueue_dts"] is None


def test_sigterm_on_the_command_line_daemon(api, tmp_path):
    go_on = tmp_path / "go-on"
    run = api.add_run(api.add_job(
        f"#!/bin/sh\nwhile [ ! -e {go_on} ]; do sleep 0.05; done\necho done\n"
    ))
    ini = tmp_path / "worker.ini"
    ini.write_text(
        "[jobrunner_worker]\n"
        f"api_base_url = {api.base_url}\n"
        "api_key = worker1\nsecret = verysecret\n"
        f"script_temp_path = {tmp_path}\n"
        "poll_interval = 0.05\nping_interval = 0.5\nlog_level = debug\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "jobrunner.worker", "--config-path", str(ini)],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: api.runs[run["id"]]["start_dts"] is not None, timeout=30)
        process.send_signal(signal.SIGTERM)
        go_on.touch()
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read()
    assert "SIGTERM" in stderr
    assert api.runs[run["id"]]["return_success"] is True
    assert api.log_of(run) == "done\n"


def test_wrong_secret_is_an_error_exit(api, tmp_path):
    daemon = WorkerDaemon(make_config(api, tmp_path, secret="wrong"))
    assert daemon.run() == 1
    assert not any(ok for _m, _p, _b, ok in api.requests)
