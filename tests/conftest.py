"""Fixtures and factories shared by the test suite.

Every functional test talks to the real WSGI app with WebTest, on a real
database: PostgreSQL when JOBRUNNER_TEST_DATABASE_URL is set, SQLite
otherwise. Each test runs inside one outer transaction that is rolled back;
the requests of a test commit savepoints inside it.
"""
import functools
import json
import os
import re
import socket
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import webtest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from jobrunner import main
from jobrunner.migrations import upgrade
from jobrunner.models import (
    Group,
    Job,
    JobTemplate,
    Project,
    RescheduleExclude,
    Run,
    RunLog,
    User,
    Worker,
    WorkerPool,
    get_engine,
    normalize_url,
)
from jobrunner.signing import compute_signature

REQUIRE_POSTGRES = os.environ.get("JOBRUNNER_REQUIRE_POSTGRES") == "1"


# --- databases -------------------------------------------------------------


def _worker_suffix():
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _create_postgres_database(base_url):
    """A database of its own for this test process (xdist runs several)."""
    url = make_url(normalize_url(base_url))
    # The pid too: two test runs on one machine (a developer's and CI's)
    # must never drop each other's databases.
    name = f"{url.database}_jr_{_worker_suffix()}_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(url):
    url = make_url(url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    base = os.environ.get("JOBRUNNER_TEST_DATABASE_URL")
    if not base:
        if REQUIRE_POSTGRES:
            pytest.fail("JOBRUNNER_REQUIRE_POSTGRES=1 but JOBRUNNER_TEST_DATABASE_URL is not set")
        path = tmp_path_factory.mktemp("db") / "test.sqlite"
        url = f"sqlite:///{path}"
    else:
        try:
            url = _create_postgres_database(base)
        except Exception as exc:  # the server is not there
            if REQUIRE_POSTGRES:
                pytest.fail(f"PostgreSQL required but not reachable: {exc}")
            pytest.skip(f"PostgreSQL not reachable: {exc}")
    upgrade(url)
    yield url
    if url.startswith("postgresql"):
        _drop_postgres_database(url)


@pytest.fixture(scope="session")
def is_postgres(database_url):
    return database_url.startswith("postgresql")


@pytest.fixture(scope="session")
def engine(database_url):
    engine = get_engine({"sqlalchemy.url": database_url})
    yield engine
    engine.dispose()


# --- mail --------------------------------------------------------------------


class MailSink:
    """A real SMTP server on a loopback port that keeps what it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages = []
        self.condition = threading.Condition()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        import email

        message = email.message_from_bytes(envelope.content)
        with self.condition:
            self.messages.append(
                {"rcpt": list(envelope.rcpt_tos), "message": message, "subject": message["Subject"],
                 "body": _mail_body(message)}
            )
            self.condition.notify_all()
        return "250 OK"

    def clear(self):
        with self.condition:
            self.messages.clear()

    def wait_for(self, count, timeout=10):
        with self.condition:
            self.condition.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            return list(self.messages)

    def stop(self):
        self.controller.stop()


def _mail_body(message):
    if message.is_multipart():
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                return part.get_payload(decode=True).decode()
        return ""
    return message.get_payload(decode=True).decode()


@pytest.fixture(scope="session")
def mail_sink():
    sink = MailSink()
    yield sink
    sink.stop()


@pytest.fixture
def mailbox(mail_sink):
    mail_sink.clear()
    return mail_sink


# --- the application ---------------------------------------------------------


def app_settings(database_url, mail_port, **overrides):
    settings = {
        "sqlalchemy.url": database_url,
        "jobrunner.timezone": "Europe/Amsterdam",
        "jobrunner.session_secret": "test-secret",
        "jobrunner.admin_emails": "admin@example.com",
        "jobrunner.base_url": "http://jobrunner.example",
        "mail.host": "127.0.0.1",
        "mail.port": str(mail_port),
        "mail.default_sender": "jobrunner@example.com",
        "jobrunner.max_body_bytes": str(1024 * 1024),
        # Mail within the commit: a test reads the mailbox at once.
        "jobrunner.mail_in_background": "false",
        # The longest a process keeps a signing worker: tests that count
        # statements find it kept however slow the machine (changes made in
        # the tests' process empty it at once anyway).
        "jobrunner.worker_cache_seconds": "10",
    }
    settings.update(overrides)
    return settings


@pytest.fixture(scope="session")
def app(database_url, mail_sink):
    return main({}, **app_settings(database_url, mail_sink.port))


@pytest.fixture
def connection(engine, app):
    """One rolled-back transaction around the whole test."""
    conn = engine.connect()
    outer = conn.begin()
    factory = sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    original = app.registry["dbsession_factory"]
    app.registry["dbsession_factory"] = factory
    yield conn
    app.registry["dbsession_factory"] = original
    outer.rollback()
    conn.close()


@pytest.fixture
def dbsession(connection):
    session = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")()
    yield session
    session.close()


@pytest.fixture
def testapp(app, connection):
    return webtest.TestApp(app)


# --- clients ------------------------------------------------------------------


class WorkerClient:
    """Signs requests the way a worker daemon does (with jobrunner.signing)."""

    def __init__(self, testapp, worker):
        self.testapp = testapp
        self.api_key = worker.api_key
        self.secret = worker.secret

    def headers(self, method, path, body=b""):
        signature = compute_signature(self.secret, method, path, body)
        return {"Authorization": f"ApiKey {self.api_key}:{signature}"}

    def request(self, method, path, data=None, status=None, raw=None, headers=None):
        body = raw if raw is not None else (json.dumps(data).encode() if data is not None else b"")
        all_headers = self.headers(method, path, body)
        all_headers.update(headers or {})
        if body:
            all_headers.setdefault("Content-Type", "application/json")
        return self.testapp.request(
            path, method=method, body=body, headers=all_headers, status=status, expect_errors=status is None
        )

    def get(self, path, status=200):
        return self.request("GET", path, status=status)

    def post(self, path, data, status=201):
        return self.request("POST", path, data, status=status)

    def patch(self, path, data, status=202):
        return self.request("PATCH", path, data, status=status)

    def put(self, path, data, status=202):
        return self.request("PUT", path, data, status=status)


def csrf_token_of(page):
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert match, "the page carries no csrf-token meta tag"
    return match.group(1)


class UserClient:
    """A logged-in dashboard user: session cookie plus CSRF header."""

    def __init__(self, testapp, username, password="secret"):
        self.testapp = testapp
        token = csrf_token_of(testapp.get("/login"))
        testapp.post("/login", {"username": username, "password": password, "csrf_token": token},
                     status=303)
        self.csrf_token = csrf_token_of(testapp.get("/login"))

    def get(self, path, status=200):
        return self.testapp.get(path, status=status, expect_errors=status is None)

    def _send(self, method, path, data, status, csrf=True):
        headers = {"X-CSRF-Token": self.csrf_token} if csrf else {}
        return self.testapp.request(
            path, method=method, body=json.dumps(data).encode(), headers=headers,
            content_type="application/json", status=status, expect_errors=status is None,
        )

    def post(self, path, data, status=201, csrf=True):
        return self._send("POST", path, data, status, csrf)

    def patch(self, path, data, status=202, csrf=True):
        return self._send("PATCH", path, data, status, csrf)

    def put(self, path, data, status=202, csrf=True):
        return self._send("PUT", path, data, status, csrf)


# --- factories ---------------------------------------------------------------


@functools.cache
def cheap_hash(password):
    """An argon2 hash of `password` at the lowest cost. The application's
    parameters spend about 0.3 s of CPU and 64 MiB per hash on purpose, and a
    login verifies with the parameters stored in the hash: this keeps the many
    users and logins of the tests cheap. The application's own hashing is
    exercised by tests/security/test_sessions.py."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(password)


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def now():
    return datetime.now(timezone.utc)


class Factory:
    def __init__(self, dbsession):
        self.db = dbsession

    def _add(self, obj):
        self.db.add(obj)
        self.db.flush()
        return obj

    def unique(self, prefix):
        return f"{prefix} {uuid.uuid4().hex[:8]}"

    def group(self, name=None):
        return self._add(Group(name=name or self.unique("group")))

    def user(self, username=None, password="secret", groups=(), is_admin=False, is_active=True,
             password_hash=None):
        return self._add(
            User(
                username=username or self.unique("user"),
                password_hash=password_hash or cheap_hash(password),
                email="user@example.com",
                groups=list(groups),
                is_admin=is_admin,
                is_active=is_active,
            )
        )

    def worker(self, api_key=None, secret="s3cret", **kw):
        api_key = api_key or uuid.uuid4().hex
        kw.setdefault("title", f"worker {api_key[:6]}")
        kw.setdefault("ping_response_dts", now())
        return self._add(Worker(api_key=api_key, secret=secret, **kw))

    def pool(self, workers=(), **kw):
        kw.setdefault("title", self.unique("pool"))
        return self._add(WorkerPool(workers=list(workers), **kw))

    def project(self, groups=(), auth_groups=(), pools=(), **kw):
        kw.setdefault("title", self.unique("project"))
        return self._add(
            Project(groups=list(groups), auth_groups=list(auth_groups), worker_pools=list(pools), **kw)
        )

    def template(self, project, body="#!/bin/sh\n{{ content }}\n", **kw):
        kw.setdefault("title", self.unique("template"))
        return self._add(JobTemplate(project=project, body=body, **kw))

    def job(self, template, pool, script="echo hello", excludes=(), **kw):
        kw.setdefault("title", self.unique("job"))
        with self.db.no_autoflush:
            job = Job(job_template=template, worker_pool=pool, script_content_partial=script, **kw)
            job.reschedule_excludes = [
                RescheduleExclude(start_time=s, end_time=e, note="") for s, e in excludes
            ]
            job.script_content = job.render_script()
        return self._add(job)

    def run(self, job, schedule_dts=None, **kw):
        run = self._add(Run(job=job, schedule_dts=schedule_dts or now() - timedelta(seconds=1), **kw))
        if run.schedule_id is None:
            run.schedule_id = run.id
            self.db.flush()
        return run

    def run_log(self, run, content=""):
        return self._add(RunLog(run=run, content=content))

    def world(self):
        """A project with a viewer group, an admin group, a pool of one worker,
        a template and a job: the usual cast of a test."""
        viewers = self.group()
        admins = self.group()
        worker = self.worker()
        pool = self.pool(workers=[worker])
        project = self.project(groups=[viewers], auth_groups=[admins], pools=[pool])
        template = self.template(project)
        job = self.job(template, pool)
        return World(viewers, admins, worker, pool, project, template, job)


class World:
    def __init__(self, viewers, admins, worker, pool, project, template, job):
        self.viewers = viewers
        self.admins = admins
        self.worker = worker
        self.pool = pool
        self.project = project
        self.template = template
        self.job = job


@pytest.fixture
def factory(dbsession):
    return Factory(dbsession)


@pytest.fixture
def world(factory):
    return factory.world()


@pytest.fixture
def as_worker(testapp):
    return lambda worker: WorkerClient(testapp, worker)


@pytest.fixture
def as_user(testapp, factory):
    def login(user=None, groups=(), is_admin=False):
        if user is None:
            user = factory.user(groups=groups, is_admin=is_admin)
        return UserClient(testapp, user.username)

    return login


def uri(resource, obj):
    return f"/api/v1/{resource}/{obj.id}/"




@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With JOBRUNNER_REQUIRE_POSTGRES=1 (CI) nothing may be skipped: a test
    skipped for lack of a database, a browser or a server is a failure."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_POSTGRES and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but CI requires every test to run: {report.longrepr}"
