"""A live Job-Runner on loopback, for the benchmark and the end-to-end tests: the server under
waitress, the scheduler and workers as real processes, on SQLite or on a
fresh PostgreSQL database.

`Stack` runs everything as processes (pserve, jobrunner-scheduler,
jobrunner-worker); `ThreadedServer` serves the real WSGI app from a thread of
the test process, for tests that drive the worker daemon in a thread.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import closing

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from jobrunner.migrations import upgrade
from jobrunner.models import WRITE_OPTION, get_engine, normalize_url
from jobrunner.signing import compute_signature

BIN = os.path.dirname(sys.executable)
DATABASE_URL_ENV = "JOBRUNNER_TEST_DATABASE_URL"


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


# --- databases -------------------------------------------------------------------


class FreshDatabase:
    """A migrated database of its own: a SQLite file in `workdir`, or a new
    PostgreSQL database next to the one `postgres_url` names."""

    def __init__(self, workdir, postgres_url=None):
        self.created = None
        if postgres_url:
            url = make_url(normalize_url(postgres_url))
            name = f"{url.database}_e2e_{uuid.uuid4().hex[:10]}"
            admin = create_engine(url, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
            finally:
                admin.dispose()
            self.created = (url, name)
            self.url = url.set(database=name).render_as_string(hide_password=False)
        else:
            os.makedirs(workdir, exist_ok=True)
            self.url = f"sqlite:///{workdir}/jobrunner.sqlite"
        upgrade(self.url)
        self.engine = get_engine({"sqlalchemy.url": self.url})
        # The tests' helpers read, then write: on SQLite such a transaction
        # must start as a writer (BEGIN IMMEDIATE), or a commit by the live
        # server in between (every signed request stores its nonce) makes
        # its first write fail at once with "database is locked".
        self.Session = sessionmaker(bind=self.engine.execution_options(**{WRITE_OPTION: True}),
                                    expire_on_commit=False)

    @property
    def is_postgres(self):
        return self.created is not None

    def drop(self):
        self.engine.dispose()
        if self.created:
            url, name = self.created
            self.created = None
            admin = create_engine(url, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            finally:
                admin.dispose()


def database_from_environment(workdir):
    """A FreshDatabase on PostgreSQL when JOBRUNNER_TEST_DATABASE_URL is set
    (skipped when that server does not answer), else on SQLite."""
    import pytest
    from sqlalchemy.exc import OperationalError

    base = os.environ.get(DATABASE_URL_ENV)
    if not base and os.environ.get("JOBRUNNER_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"JOBRUNNER_REQUIRE_POSTGRES=1 but {DATABASE_URL_ENV} is not set")
    try:
        return FreshDatabase(workdir, base)
    except OperationalError as exc:
        if not base:
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")


def stack_settings(database_url, base_url, mail_port=None, **overrides):
    """[app:main] settings of a test stack: short intervals everywhere."""
    settings = {
        "sqlalchemy.url": database_url,
        "jobrunner.timezone": "Europe/Amsterdam",
        "jobrunner.session_secret": "e2e-secret",
        "jobrunner.base_url": base_url,
        "jobrunner.admin_emails": "admin@example.com",
        "jobrunner.scheduler.embedded": "false",
        "jobrunner.scheduler.interval": "0.2",
        "jobrunner.worker.ping_interval": "0.5",
        "jobrunner.worker.ping_margin": "0.5",
        "jobrunner.worker.unresponsive_after_intervals": "2",
        "mail.host": "127.0.0.1",
        # Port 1: nothing listens, so a mail sent by mistake is an error in the log.
        "mail.port": str(mail_port or 1),
        "mail.default_sender": "jobrunner@example.com",
    }
    settings.update(overrides)
    return settings


# --- the app in a thread -----------------------------------------------------------


class ThreadedServer:
    """A WSGI app under waitress in a thread of this process, on a free port."""

    def __init__(self, app, threads=8):
        import waitress

        # As the inis: a waiting request notices a client that went away.
        self.server = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads,
                                             channel_request_lookahead=1)
        self.base_url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self._serve, name="waitress", daemon=True)
        self._closing = False
        self.thread.start()

    def _serve(self):
        try:
            self.server.run()
        except OSError:
            if not self._closing:
                raise

    def close(self):
        self._closing = True
        # What waitress's own test server does to stop from another thread.
        while self.server._map:
            for channel in list(self.server._map.values()):
                channel.handle_close()
        self.server.maintenance(0)
        self.server.task_dispatcher.shutdown()
        self.thread.join(timeout=10)


# --- clients ------------------------------------------------------------------------


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


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class UserSession:
    """A dashboard user: logged in through the /login form, with the CSRF
    token of the page's meta tag on every state-changing request."""

    def __init__(self, base_url, username, password):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        token = self._csrf_token("/login")
        response = self.session.post(
            self.base_url + "/login",
            data={"username": username, "password": password, "csrf_token": token},
            allow_redirects=False, timeout=10,
        )
        assert response.status_code in (302, 303), response.text[:500]
        self.csrf_token = self._csrf_token("/")

    def _csrf_token(self, path):
        response = self.session.get(self.base_url + path, timeout=10)
        response.raise_for_status()
        match = CSRF_META.search(response.text)
        assert match, f"{path} carries no csrf-token meta tag"
        return match.group(1)

    def get(self, path):
        response = self.session.get(self.base_url + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def request(self, method, path, data=None):
        return self.session.request(
            method, self.base_url + path, json=data, timeout=10,
            headers={"X-CSRF-Token": self.csrf_token, "Accept": "application/json"},
        )

    def post(self, path, data):
        return self.request("POST", path, data)


# --- the stack of processes -----------------------------------------------------------


class Stack:
    """`database_url` names a PostgreSQL server to make a fresh database on
    (SQLite in `workdir` without it); or pass a FreshDatabase as `database`.
    The stack drops its database when it is closed."""

    def __init__(self, workdir, database_url=None, settings=None, mail_port=None, database=None,
                 server_options=None):
        self.workdir = str(workdir)
        # waitress's [server:main] options besides `listen` (the bench takes
        # production.ini's); otherwise 24 threads (waiting lists hold a
        # thread each) and, as the inis, a waiting request sees its client go.
        self.server_options = server_options or {"threads": 24, "channel_request_lookahead": 1}
        os.makedirs(self.workdir, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.database = database or FreshDatabase(self.workdir, database_url)
        self.database_url = self.database.url
        self.engine = self.database.engine
        self.Session = self.database.Session
        self.settings = stack_settings(self.database_url, self.base_url, mail_port, **(settings or {}))
        self.ini = self._write_ini("stack", self.settings)
        self.processes = []
        self.server = None
        # More pserve processes on the same database (start_extra_server).
        self.extra_servers = []
        self._closed = False

    def _write_ini(self, name, settings, port=None):
        lines = ["[app:main]", "use = egg:jobrunner"]
        lines += [f"{key} = {value}" for key, value in settings.items()]
        lines += ["", "[server:main]", "use = egg:waitress#main",
                  f"listen = 127.0.0.1:{port or self.port}"]
        lines += [f"{key} = {value}" for key, value in self.server_options.items()]
        lines += [
            "",
            "[loggers]", "keys = root", "", "[handlers]", "keys = console", "",
            "[formatters]", "keys = generic", "",
            "[logger_root]", "level = INFO", "handlers = console", "",
            "[handler_console]", "class = StreamHandler", "args = (sys.stderr,)", "level = NOTSET",
            "formatter = generic", "",
            "[formatter_generic]", "format = %(asctime)s %(levelname)s [%(name)s] %(message)s", "",
        ]
        path = os.path.join(self.workdir, f"{name}.ini")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        return path

    # --- processes -------------------------------------------------------

    def spawn(self, name, argv, env=None):
        log_path = os.path.join(self.workdir, f"{name}.log")
        log = open(log_path, "ab")
        try:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                env={**os.environ, **(env or {})}, start_new_session=True,
            )
        finally:
            log.close()
        proc.name = name
        proc.log_path = log_path
        self.processes.append(proc)
        return proc

    def start_server(self, port=None, name="server"):
        """pserve on the stack's port (the same port every time), or a second
        server process on the same database at `port` (one more address)."""
        ini = self.ini if port is None else self._write_ini(name, self.settings, port)
        proc = self.spawn(name, [os.path.join(BIN, "pserve"), ini])
        if port is None:
            self.server = proc
        base_url = f"http://127.0.0.1:{port or self.port}"

        def answers():
            assert proc.poll() is None, f"the server exited:\n{self.log_of(proc)[-3000:]}"
            return self._server_answers(base_url)

        wait_until(answers, timeout=60, message="the server to answer")
        return proc

    def kill_server(self):
        """SIGKILL to the server: no clean-up, no answer to what it was doing."""
        if self.server is not None:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(timeout=10)
            self.server = None

    def stop_server(self):
        """Stops the server; its port is free again when this returns."""
        if self.server is not None:
            self.stop(self.server)
            self.server = None

    def start_extra_server(self, name):
        """One more pserve on the same database and settings, on a port of
        its own (`proc.port`), as behind a proxy that spreads the requests."""
        port = free_port()
        proc = self.start_server(port=port, name=name)
        proc.port = port
        proc.base_url = f"http://127.0.0.1:{port}"
        self.extra_servers.append(proc)
        return proc

    def _server_answers(self, base_url=None):
        try:
            return requests.get((base_url or self.base_url) + "/login", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start_scheduler(self, name="scheduler", **settings):
        """jobrunner-scheduler on the stack's ini, or on a copy with `settings`
        changed (dots in setting names written as double underscores)."""
        ini = self.ini
        if settings:
            changed = {key.replace("__", "."): str(value) for key, value in settings.items()}
            ini = self._write_ini(name, {**self.settings, **changed})
        return self.spawn(name, [os.path.join(BIN, "jobrunner-scheduler"), ini])

    def start_worker(self, api_key, secret, name=None, prefix=(), env=None, **options):
        """jobrunner-worker with an ini of `options`; `prefix` goes before
        the command (`faketime -f +10m` for a worker with a skewed clock)."""
        name = name or f"worker-{api_key}"
        ini = os.path.join(self.workdir, f"{name}.ini")
        values = {
            "api_base_url": self.base_url + "/",
            "api_key": api_key,
            "secret": secret,
            "concurrent_jobs": 4,
            "poll_interval": 0.1,
            "ping_interval": 0.3,
            "log_level": "info",
            "script_temp_path": os.path.join(self.workdir, "scripts"),
        }
        values.update(options)
        # None leaves an option out: the worker's own default applies.
        values = {key: value for key, value in values.items() if value is not None}
        os.makedirs(values["script_temp_path"], exist_ok=True)
        with open(ini, "w") as f:
            f.write("[jobrunner_worker]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
        return self.spawn(name, [*prefix, os.path.join(BIN, "jobrunner-worker"), ini], env=env)

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

    def logs(self, tail=8000):
        seen = set()
        parts = []
        for proc in self.processes:
            if proc.log_path in seen:
                continue
            seen.add(proc.log_path)
            parts.append(f"----- {os.path.basename(proc.log_path)} -----\n{self.log_of(proc)[-tail:]}")
        return "\n".join(parts)

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
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
            self.kill_strays()
        finally:
            self.database.drop()

    def kill_strays(self, directory=None):
        """Kills what outlived its worker (the scripts of a SIGKILLed worker
        run on in process groups of their own): every process whose command
        line names a file in `directory` (the stack's directory by default),
        with its group; the stack's own running processes are spared."""
        own = {proc.pid for proc in self.processes if proc.poll() is None}
        for pid in stray_processes(directory or self.workdir):
            try:
                group = os.getpgid(pid)
                if group not in own:
                    os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    # --- data ------------------------------------------------------------

    def client(self, api_key, secret):
        return SignedClient(self.base_url, api_key, secret)

    def login(self, username, password):
        return UserSession(self.base_url, username, password)


def stray_processes(workdir):
    marker = os.fsencode(os.path.join(workdir, ""))
    own = os.getpid()
    own_group = os.getpgid(0)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if marker in cmdline:
            try:
                if os.getpgid(int(entry)) != own_group:
                    found.append(int(entry))
            except ProcessLookupError:
                pass
    return found
