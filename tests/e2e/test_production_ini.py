"""production.ini serves two web processes from one file, each on the port
its systemd instance gives it (contrib/jobrunner-web@.service)."""
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_the_web_unit_runs_two_processes_of_production_ini_on_their_own_ports(tmp_path):
    unit = (REPO / "contrib" / "jobrunner-web@.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, flags=re.M).group(1).split()
    assert exec_start[1:] == ["/etc/jobrunner/production.ini", "http_port=%i"]
    nginx = (REPO / "contrib" / "nginx.conf").read_text()
    assert "server 127.0.0.1:6543" in nginx and "server 127.0.0.1:6544" in nginx
    assert "return 301 https://" in nginx and "ssl_certificate " in nginx

    env = dict(
        os.environ,
        JOBRUNNER_DATABASE_URL=f"sqlite:///{tmp_path / 'production.sqlite'}",
        JOBRUNNER_SESSION_SECRET=secrets.token_urlsafe(48),
        JOBRUNNER_BASE_URL="https://jobs.example.com",
        JOBRUNNER_ADMIN_EMAILS="",
        JOBRUNNER_SMTP_HOST="127.0.0.1",
        JOBRUNNER_MAIL_SENDER="jobrunner@example.com",
    )
    ini = str(REPO / "production.ini")
    subprocess.run([str(BIN / "jobrunner-admin"), ini, "init-db"], env=env, check=True,
                   capture_output=True, timeout=120)
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen([str(BIN / "pserve"), ini, f"http_port={port}"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in ports
    ]
    try:
        deadline = time.monotonic() + 60
        pending = set(ports)
        while pending and time.monotonic() < deadline:
            pending = {port for port in pending if not answers(f"http://127.0.0.1:{port}/login")}
            if pending:
                time.sleep(0.2)
        assert not pending, f"no answer on port(s) {sorted(pending)}"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
