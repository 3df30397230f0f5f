"""The README's step-by-step commands, in order, on a fresh copy of the
repository: init-db and load of the demo data, add-group, add-user,
add-worker writing var/worker2.ini, the server, and a second worker started
with that ini, which then runs a job. Real processes, nothing faked."""
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MARKER = "tests/e2e/test_readme.py runs the commands of this block"
LONG_RUNNING = ("pserve", "jobrunner-worker")


def readme_commands():
    """The commands of the README's marked block, as argument lists."""
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index(MARKER):]
    block = block[block.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    commands = []
    for line in block.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line:
            commands.append(shlex.split(line))
    return commands


def fresh_copy(target):
    """The repository's tracked files (what a clone holds), nothing built."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True)
    if listed.returncode != 0:
        shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(".venv", "var", ".git", "test-artifacts"))
        return
    for name in listed.stdout.decode().split("\0"):
        if name and (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_readme_walkthrough_ends_with_a_second_worker_running_a_job(tmp_path):
    repo = tmp_path / "job-runner"
    fresh_copy(repo)
    # The README's server port may be taken on this machine (a demo running):
    # the same ini on a free port.
    port = free_port()
    ini = repo / "development.ini"
    ini.write_text(ini.read_text().replace("6543", str(port)))
    commands = readme_commands()
    programs = [Path(command[0]).name for command in commands]
    assert programs[:2] == ["jobrunner-admin", "jobrunner-admin"] and "jobrunner-worker" in programs

    processes = []
    logs = []
    try:
        for command in commands:
            assert command[0].startswith(".venv/bin/"), command
            argv = [str(BIN / Path(command[0]).name)] + command[1:]
            name = Path(argv[0]).name
            if name in LONG_RUNNING:
                log = open(tmp_path / f"{name}.log", "w")
                logs.append((name, tmp_path / f"{name}.log", log))
                processes.append(subprocess.Popen(argv, cwd=repo, stdout=log, stderr=subprocess.STDOUT))
                if name == "pserve":
                    poll(lambda: _answers(f"http://127.0.0.1:{port}/login"), 60, "the server")
                continue
            stdin = "alice-password\n" if "add-user" in command else ""
            result = subprocess.run(argv, cwd=repo, input=stdin, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stdout}\n{result.stderr}"

        worker_ini = (repo / "var" / "worker2.ini").read_text()
        assert f"api_base_url = http://localhost:{port}" in worker_ini  # jobrunner.base_url
        assert "ping_interval = 10" in worker_ini  # development.ini's jobrunner.worker.ping_interval

        engine = create_engine(f"sqlite:///{repo / 'var' / 'jobrunner.sqlite'}")
        try:
            def heartbeat_run_on_build_2():
                with engine.connect() as conn:
                    return conn.execute(text(
                        "SELECT run.return_success FROM run JOIN job ON job.id = run.job_id "
                        "JOIN worker ON worker.id = run.worker_id "
                        "WHERE job.title = 'Heartbeat' AND worker.title = 'build-2' "
                        "AND run.return_dts IS NOT NULL"
                    )).first()

            row = poll(heartbeat_run_on_build_2, 90, "build-2 to run Heartbeat")
            assert row.return_success in (1, True)
            with engine.connect() as conn:
                alice = conn.execute(text(
                    "SELECT g.name FROM user u JOIN user_group ug ON ug.user_id = u.id "
                    "JOIN \"group\" g ON g.id = ug.group_id WHERE u.username = 'alice'"
                )).all()
            assert [tuple(r) for r in alice] == [("ops",)]
        finally:
            engine.dispose()
        # alice logs in with the password she was given on stdin.
        session = requests.Session()
        page = session.get(f"http://127.0.0.1:{port}/login", timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        answer = session.post(f"http://127.0.0.1:{port}/login", timeout=10, allow_redirects=False,
                              data={"username": "alice", "password": "alice-password", "csrf_token": token})
        assert answer.status_code == 303
    except BaseException:
        for name, path, log in logs:
            log.flush()
            print(f"--- {name} ---\n" + path.read_text()[-4000:])
        raise
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for _, _, log in logs:
            log.close()


def _answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
