"""A live Job-Runner on loopback for end-to-end tests: the server under
waitress, the scheduler and workers as real processes, on SQLite or on a
fresh PostgreSQL database."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import closing

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from jobrunner.migrations import upgrade
from jobrunner.models import get_engine, normalize_url
from jobrunner.security.policies import compute_signature

BIN = os.path.dirname(sys.executable)


def free_port():
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout=30.0, interval=0.05, message="condition"):
    """Polls `condition` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class SignedClient:
    """What a worker sends: HMAC-signed JSON requests."""

    def __init__(self, base_url, api_key, secret):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.secret = secret
        self.session = requests.Session()

    def request(self, method, path, data=None, timeout=10):
        body = json.dumps(data).encode() if data is not None else b""
        signature = compute_signature(self.secret, method, path, body)
        headers = {"Authorization": f"ApiKey {self.api_key}:{signature}"}
        if body:
            headers["Content-Type"] = "application/json"
        return self.session.request(method, self.base_url + path, data=body, headers=headers,
                                    timeout=timeout)

    def get(self, path):
        response = self.request("GET", path)
        response.raise_for_status()
        return response.json()

    def objects(self, path):
        return self.get(path)["objects"]


class Stack:
    def __init__(self, workdir, database_url=None, settings=None, mail_port=None):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.created_database = None
        if database_url:
            self.database_url = self._fresh_postgres(database_url)
        else:
            self.database_url = f"sqlite:///{self.workdir}/jobrunner.sqlite"
        self.settings = {
            "sqlalchemy.url": self.database_url,
            "jobrunner.timezone": "Europe/Amsterdam",
            "jobrunner.session_secret": "e2e-secret",
            "jobrunner.base_url": self.base_url,
            "jobrunner.admin_emails": "admin@example.com",
            "jobrunner.scheduler.embedded": "false",
            "jobrunner.scheduler.interval": "0.2",
            "jobrunner.worker.ping_interval": "0.5",
            "jobrunner.worker.ping_margin": "0.5",
            "jobrunner.worker.unresponsive_after_intervals": "2",
            "mail.host": "127.0.0.1",
            "mail.port": str(mail_port or 1),
            "mail.default_sender": "jobrunner@example.com",
        }
        self.settings.update(settings or {})
        self.ini = os.path.join(self.workdir, "stack.ini")
        self.processes = []
        self._write_ini()
        upgrade(self.database_url)
        self.engine = get_engine({"sqlalchemy.url": self.database_url})
        self.Session = sessionmaker(bind=self.engine, expire_on_commit=False)

    def _fresh_postgres(self, base_url):
        url = make_url(normalize_url(base_url))
        name = f"{url.database}_e2e_{uuid.uuid4().hex[:10]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self.created_database = (url, name)
        return url.set(database=name).render_as_string(hide_password=False)

    def _write_ini(self):
        lines = ["[app:main]", "use = egg:jobrunner"]
        lines += [f"{key} = {value}" for key, value in self.settings.items()]
        lines += [
            "", "[server:main]", "use = egg:waitress#main", f"listen = 127.0.0.1:{self.port}",
            "threads = 8", "",
            "[loggers]", "keys = root", "", "[handlers]", "keys = console", "",
            "[formatters]", "keys = generic", "",
            "[logger_root]", "level = INFO", "handlers = console", "",
            "[handler_console]", "class = StreamHandler", "args = (sys.stderr,)", "level = NOTSET",
            "formatter = generic", "",
            "[formatter_generic]", "format = %(asctime)s %(levelname)s [%(name)s] %(message)s", "",
        ]
        with open(self.ini, "w") as f:
            f.write("\n".join(lines))

    # --- processes -------------------------------------------------------

    def spawn(self, name, argv, env=None):
        log_path = os.path.join(self.workdir, f"{name}.log")
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
        proc.name = name
        proc.log_path = log_path
        self.processes.append(proc)
        return proc

    def start_server(self):
        proc = self.spawn("server", [os.path.join(BIN, "pserve"), self.ini])
        wait_until(self._server_answers, timeout=60, message="the server to answer")
        assert proc.poll() is None, self.log_of(proc)
        return proc

    def _server_answers(self):
        try:
            return requests.get(self.base_url + "/login", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start_scheduler(self, name="scheduler"):
        return self.spawn(name, [os.path.join(BIN, "jobrunner-scheduler"), self.ini])

    def start_worker(self, api_key, secret, name=None, **options):
        name = name or f"worker-{api_key}"
        ini = os.path.join(self.workdir, f"{name}.ini")
        values = {
            "api_base_url": self.base_url + "/",
            "api_key": api_key,
            "secret": secret,
            "concurrent_jobs": 4,
            "poll_interval": 0.1,
            "ping_interval": 0.3,
            "log_level": "debug",
            "script_temp_path": os.path.join(self.workdir, "scripts"),
        }
        values.update(options)
        os.makedirs(values["script_temp_path"], exist_ok=True)
        with open(ini, "w") as f:
            f.write("[jobrunner_worker]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
        return self.spawn(name, [os.path.join(BIN, "jobrunner-worker"), ini])

    def stop(self, proc, sig=signal.SIGTERM, timeout=30):
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        return proc.returncode

    def log_of(self, proc):
        with open(proc.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def logs(self):
        return "\n".join(f"----- {p.name} -----\n{self.log_of(p)[-5000:]}" for p in self.processes)

    def close(self):
        for proc in reversed(self.processes):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.engine.dispose()
        if self.created_database:
            url, name = self.created_database
            admin = create_engine(url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    # --- data ------------------------------------------------------------

    def client(self, api_key, secret):
        return SignedClient(self.base_url, api_key, secret)
