"""The one-command demo: `python -m jobrunner.demo development.ini`."""
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import jobrunner
from jobrunner.demo import prepare, server_address
from jobrunner.models import Job, Project, Run, User, Worker, get_engine
from jobrunner.security.passwords import check_password
from jobrunner.worker.config import load_config

from bench.stack import SignedClient, wait_until
from .conftest import write_ini

DEVELOPMENT_INI = Path(jobrunner.__file__).resolve().parent.parent / "development.ini"


def free_port():
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_address_from_the_ini(tmp_path):
    ini = tmp_path / "a.ini"
    for server, url in [
        ("listen = 127.0.0.1:6543", "http://127.0.0.1:6543"),
        ("listen = *:8000 [::1]:8001", "http://127.0.0.1:8000"),
        ("listen = [::]:8000", "http://[::1]:8000"),
        ("host = 0.0.0.0\nport = 7000", "http://127.0.0.1:7000"),
    ]:
        ini.write_text(f"[server:main]\nuse = egg:waitress#main\n{server}\n")
        assert server_address(str(ini)) == url


def test_preparing_the_demo_twice_adds_nothing(tmp_path, empty_database):
    ini = write_ini(tmp_path / "demo.ini", empty_database)
    with open(ini, "a") as f:
        f.write("\n[server:main]\nuse = egg:waitress#main\nlisten = 127.0.0.1:6599\n")
    messages = []
    first = prepare(ini, messages.append)
    assert len(first.changes) > 10
    assert messages == [f"Demo data loaded: {len(first.changes)} change(s)."]
    assert os.path.isdir(tmp_path / "var")

    config = load_config(first.worker_ini)
    assert stat.S_IMODE(os.stat(first.worker_ini).st_mode) == 0o600
    assert config.api_base_url == "http://127.0.0.1:6599"

    engine = get_engine({"sqlalchemy.url": empty_database})

    def state():
        with Session(engine) as session:
            return {model.__name__: session.scalar(select(func.count()).select_from(model))
                    for model in (User, Worker, Project, Job, Run)}

    before = state()
    # Every recurring job has its first run; the chain's children wait for their parent.
    assert before["Run"] == 4 and before["Job"] == 6
    second = prepare(ini, messages.append)
    assert second.changes == []
    assert messages[-1] == "Demo data present already: nothing to change."
    assert state() == before

    with Session(engine) as session:
        demo = session.scalar(select(User).where(User.username == "demo"))
        admin = session.scalar(select(User).where(User.username == "admin"))
        assert check_password(demo.password_hash, "demo") and not demo.is_admin
        assert check_password(admin.password_hash, "admin") and admin.is_admin
        project = session.scalar(select(Project).where(Project.title == "Demo"))
        assert set(demo.groups) & set(project.auth_groups)
        worker = session.scalar(select(Worker).where(Worker.api_key == config.api_key))
        assert worker.secret == config.secret
        assert [pool.title for pool in worker.pools] == ["Local"]
    engine.dispose()


class Output:
    """Collects a process's stdout lines (the pipe is always drained)."""

    def __init__(self, stream):
        self.lines = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line)

    @property
    def text(self):
        return "".join(self.lines)


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_mentioning(text):
    """Pids of live processes whose command line contains ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append((int(entry), cmdline))
    return found


@pytest.mark.e2e
def test_demo_runs_jobs_and_stops_everything_on_sigint(tmp_path):
    assert DEVELOPMENT_INI.exists(), "the demo test needs the repository's development.ini"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    ini = tmp_path / "development.ini"
    ini.write_text(DEVELOPMENT_INI.read_text()
                   .replace("127.0.0.1:6543", f"127.0.0.1:{port}")
                   .replace("http://localhost:6543", base_url))
    stderr = open(tmp_path / "demo.log", "w")
    demo = subprocess.Popen([sys.executable, "-m", "jobrunner.demo", str(ini)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=stderr, text=True)
    output = Output(demo.stdout)
    child_pids = []
    try:
        wait_until(lambda: "Press Ctrl-C to stop." in output.text or demo.poll() is not None,
                   timeout=120, message="the demo to start")
        assert demo.poll() is None, output.text + (tmp_path / "demo.log").read_text()[-5000:]
        assert f"Dashboard:  {base_url}/" in output.text
        assert "demo / demo" in output.text and "admin / admin" in output.text
        child_pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", output.text)]
        assert len(child_pids) == 2  # the web server (with its scheduler) and the worker

        client = SignedClient(base_url, "demo-local-worker", "demo-local-worker-secret")

        def completed(title, state="completed_successful"):
            path = f"/api/v1/run/?state={state}&job__title={title.replace(' ', '%20')}"
            return client.objects(path)

        wait_until(lambda: completed("Heartbeat"), timeout=90,
                   message="a run of the heartbeat job to succeed")
        # The chain: Fetch data -> Process data -> Publish report.
        wait_until(lambda: completed("Publish report", "completed"), timeout=90,
                   message="the end of the job chain to run")
        assert completed("Heartbeat")[0]["return_success"] is True

        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=90) == 0
        assert "Every process of the demo has stopped." in output.text
        for pid in child_pids:
            assert not process_alive(pid), pid
        assert processes_mentioning(str(tmp_path)) == []
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in child_pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        stderr.close()
