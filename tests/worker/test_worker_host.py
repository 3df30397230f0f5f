"""The worker's host: what a script sees, where it lies, what the worker
warns about, and a heartbeat that does not wait for anything else."""
import os
import stat
import threading

import pytest

from jobrunner.worker.config import ConfigError, load_config, security_warnings
from jobrunner.worker.daemon import WorkerDaemon
from jobrunner.worker.executor import run_script, script_environment, write_script
from jobrunner.worker.logbuffer import LogBuffer

from .test_executor import wait_for
from .test_hostile_server import serve


def test_a_script_gets_a_clean_documented_environment(tmp_path):
    base = {"PATH": os.environ["PATH"], "HOME": "/home/w", "CONFIG_PATH": "/etc/jobrunner/worker.ini",
            "JOBRUNNER_SECRET": "s3cret", "LC_ALL": "C.UTF-8", "AWS_SECRET_ACCESS_KEY": "x"}
    env = script_environment(42, "nightly backup", "https://jobs.example.com/", base=base)
    log = LogBuffer(100000)
    result = run_script("#!/bin/sh\nenv\n", str(tmp_path), log, env=env)
    assert result.success
    lines = dict(line.split("=", 1) for line in log.render().splitlines() if "=" in line)
    assert lines["JOBRUNNER_RUN_ID"] == "42"
    assert lines["JOBRUNNER_JOB_TITLE"] == "nightly backup"
    assert lines["JOBRUNNER_SERVER_URL"] == "https://jobs.example.com/"
    assert lines["HOME"] == "/home/w" and lines["LC_ALL"] == "C.UTF-8"
    for name in ("CONFIG_PATH", "JOBRUNNER_SECRET", "AWS_SECRET_ACCESS_KEY"):
        assert name not in lines
    assert "s3cret" not in log.render()


def test_script_files_lie_in_a_folder_of_the_workers_user_only(tmp_path):
    path = write_script("#!/bin/sh\ntrue\n", str(tmp_path), prefix="jobrunner-run-../../x-")
    folder = os.path.dirname(path)
    assert os.path.dirname(folder) == str(tmp_path)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert "/" not in os.path.basename(path)[len("jobrunner-run-"):] and ".." not in os.path.basename(path)


def test_an_open_script_folder_is_closed_again(tmp_path):
    folder = tmp_path / f"jobrunner-worker-{os.getuid()}"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    write_script("#!/bin/sh\ntrue\n", str(tmp_path))
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def write_ini(tmp_path, extra="", url="https://jobs.example.com/", mode=0o600):
    path = tmp_path / "worker.ini"
    path.write_text(f"[jobrunner_worker]\napi_base_url = {url}\napi_key = k\nsecret = s\n{extra}")
    os.chmod(path, mode)
    return str(path)


def test_warnings_for_plain_http_and_an_open_ini(tmp_path):
    assert security_warnings(load_config(write_ini(tmp_path))) == []
    assert security_warnings(load_config(write_ini(tmp_path, url="http://127.0.0.1:6543/"))) == []
    [warning] = security_warnings(load_config(write_ini(tmp_path, url="http://jobs.example.com/")))
    assert "plain HTTP" in warning
    [warning] = security_warnings(load_config(write_ini(tmp_path, mode=0o644)))
    assert "chmod 600" in warning


def test_ca_bundle_and_no_way_to_switch_verification_off(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    config = load_config(write_ini(tmp_path, f"ca_bundle = {bundle}\n"))
    assert config.ca_bundle == str(bundle)
    assert WorkerDaemon(config).client.session.verify == str(bundle)
    assert WorkerDaemon(load_config(write_ini(tmp_path))).client.session.verify is True
    with pytest.raises(ConfigError):
        load_config(write_ini(tmp_path, f"ca_bundle = {tmp_path}/missing.pem\n"))
    for option in ("verify = false", "insecure = true"):
        with pytest.raises(ConfigError):
            load_config(write_ini(tmp_path, option + "\n"))


def test_the_heartbeat_and_new_runs_go_on_while_settling_an_earlier_start_fails(tmp_path):
    # The server refuses to settle the left-over run (500 for ever); the
    # worker keeps retrying it, and keeps pinging and asking for new runs
    # meanwhile.
    def answer(method, path, body):
        if method == "GET" and path.startswith("/api/v1/worker/"):
            return 200, {"meta": {"next": None}, "objects": [
                {"id": 1, "resource_uri": "/api/v1/worker/1/", "api_key": "k"}]}
        if method == "PATCH" and path == "/api/v1/worker/1/":
            return 202, {"id": 1}
        if method == "GET" and "state=in_queue" in path:
            return 200, {"meta": {"next": None}, "objects": [{"id": 5, "resource_uri": "/api/v1/run/5/"}]}
        if method == "PATCH" and path == "/api/v1/run/5/":
            return 500, {"error": "down", "errors": {}}
        return 200, {"meta": {"next": None}, "objects": []}

    server = serve(answer)
    config = load_config(write_ini(tmp_path, "ping_interval = 0.1\npoll_interval = 0.05\n",
                                   url=server.url + "/"))
    daemon = WorkerDaemon(config)
    daemon.client.backoff_cap = 0.05
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        def count(method, path):
            with server.lock:
                return sum(1 for m, p, b in server.requests if m == method and p == path)

        def polls():
            with server.lock:
                return sum(1 for m, p, b in server.requests
                           if (m, p) == ("POST", "/api/v1/run/claim/")
                           or (m == "GET" and "state=enqueueable" in p))

        wait_for(lambda: count("PATCH", "/api/v1/run/5/") >= 3, timeout=20)
        pings = count("PATCH", "/api/v1/worker/1/")
        wait_for(lambda: count("PATCH", "/api/v1/worker/1/") >= pings + 3, timeout=20)
        asked = polls()
        wait_for(lambda: polls() >= asked + 3, timeout=20)
        assert count("PATCH", "/api/v1/run/5/") >= 4  # still retrying the left-over run
    finally:
        daemon.request_force_stop()
        thread.join(timeout=20)
        server.shutdown()
        server.server_close()
