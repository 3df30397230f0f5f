"""A live server for the browser tests: pserve of a temporary ini on a free
loopback port, its own database (a SQLite file, or a fresh PostgreSQL
database when JOBRUNNER_TEST_DATABASE_URL is set), demo data loaded through
the models, and a test worker that drives runs over the signed REST API.
"""
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from jobrunner.migrations import upgrade
from jobrunner.models import (
    Group,
    IntervalType,
    Job,
    JobTemplate,
    Project,
    RescheduleExclude,
    Run,
    RunLog,
    User,
    Worker,
    WorkerPool,
    begin_write,
    get_engine,
    normalize_url,
)
from jobrunner.signing import compute_signature
from tests.conftest import cheap_hash

PASSWORD = "correct horse"
TIMEZONE = "Europe/Amsterdam"


def utcnow():
    return datetime.now(timezone.utc)


def iso(value):
    return value.astimezone(timezone.utc).isoformat()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- databases ---------------------------------------------------------------


@contextmanager
def fresh_database(tmp_dir):
    """A migrated database of the browser tests' own, dropped afterwards."""
    base = os.environ.get("JOBRUNNER_TEST_DATABASE_URL")
    if not base:
        url = f"sqlite:///{tmp_dir / 'browser.sqlite'}"
        upgrade(url)
        yield url
        return
    server_url = make_url(normalize_url(base))
    # The process id too: two test sessions on one server must not share it.
    name = f"{server_url.database}_jr_browser_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server_url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Data:
    """Writes through the models, committed at once so the server sees them."""

    def __init__(self, database_url):
        self.engine = get_engine({"sqlalchemy.url": database_url})
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)

    @contextmanager
    def session(self):
        session = self.session_factory()
        begin_write(session)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self):
        self.engine.dispose()

    # --- objects the tests make for themselves ------------------------------

    def job(self, title=None, project="Billing", **fields):
        """A job of its own for one test, in the project's template and pool."""
        with self.session() as session:
            template = session.query(JobTemplate).join(Project).filter(Project.title == project).first()
            pool = session.query(WorkerPool).filter(WorkerPool.title == "Linux pool").one()
            job = Job(
                title=title or f"Test job {uuid.uuid4().hex[:6]}",
                job_template=template,
                worker_pool=pool,
                script_content_partial=fields.pop("script", "echo hello"),
                **fields,
            )
            job.script_content = job.render_script()
            session.add(job)
            session.flush()
            return job.id

    def run(self, job_id, schedule_dts=None, **fields):
        with self.session() as session:
            run = Run(job_id=job_id, schedule_dts=schedule_dts or utcnow() - timedelta(seconds=1), **fields)
            session.add(run)
            session.flush()
            run.schedule_id = run.schedule_id or run.id
            return run.id


# --- demo data ---------------------------------------------------------------

SCRIPT_BODY = "#!/bin/bash\nset -euo pipefail\n\n{{ content }}\n"


def seed(data):
    """Two projects, their groups and users, a worker, and some history."""
    now = utcnow()
    with data.session() as s:
        admins = Group(name="Billing admins")
        viewers = Group(name="Billing viewers")
        reports_group = Group(name="Reports team")
        s.add_all([admins, viewers, reports_group])
        s.add_all(
            [
                User(username="alice", password_hash=cheap_hash(PASSWORD), email="alice@example.com",
                     groups=[admins, reports_group]),
                User(username="victor", password_hash=cheap_hash(PASSWORD), email="victor@example.com",
                     groups=[viewers]),
                User(username="nora", password_hash=cheap_hash(PASSWORD), email="nora@example.com"),
                User(username="root", password_hash=cheap_hash(PASSWORD), email="root@example.com",
                     is_admin=True),
            ]
        )
        worker = Worker(title="build-01", api_key="build-01", secret="worker-secret",
                        ping_response_dts=now, worker_version="1.0", concurrent_jobs=4)
        worker2 = Worker(title="build-02", api_key="build-02", secret="worker-secret-2",
                         ping_response_dts=now, worker_version="1.0", concurrent_jobs=4)
        pool = WorkerPool(title="Linux pool", workers=[worker, worker2])
        billing = Project(title="Billing", description="Invoices and payments",
                          groups=[viewers], auth_groups=[admins], worker_pools=[pool])
        reports = Project(title="Reports", description="Management reports",
                          groups=[reports_group], auth_groups=[reports_group], worker_pools=[pool])
        s.add_all([worker, worker2, pool, billing, reports])
        billing_template = JobTemplate(title="Bash", body=SCRIPT_BODY, project=billing)
        reports_template = JobTemplate(title="Bash", body=SCRIPT_BODY, project=reports)
        s.add_all([billing_template, reports_template])
        s.flush()

        def job(title, template, script, **fields):
            new = Job(title=title, job_template=template, worker_pool=pool,
                      script_content_partial=script, **fields)
            new.script_content = new.render_script()
            s.add(new)
            s.flush()
            return new

        export = job("Export ledger", billing_template, "python3 -m ledger.export --since yesterday",
                     description="Exports yesterday's ledger for the accountants.",
                     reschedule_interval=1, reschedule_interval_type=IntervalType.DAY,
                     notification_addresses="finance@example.com")
        export.reschedule_excludes = [RescheduleExclude(start_time=datetime(2000, 1, 1, 22).time(),
                                                        end_time=datetime(2000, 1, 1, 23, 59).time(),
                                                        note="backups")]
        invoices = job("Send invoices", billing_template, "python3 -m billing.send_invoices",
                       parent=export, reschedule_interval=None)
        job("Archive invoices", billing_template, "tar czf /backup/invoices.tgz /srv/invoices",
            parent=invoices)
        sync = job("Sync payments", billing_template, "python3 -m billing.sync_payments",
                   reschedule_interval=2, reschedule_interval_type=IntervalType.HOUR,
                   disable_enqueue_after_fails=3)
        cleanup = job("Clean temp files", billing_template, "find /tmp -mtime +7 -delete",
                      reschedule_interval=15, reschedule_interval_type=IntervalType.MINUTE)
        weekly = job("Weekly sales report", reports_template, "python3 -m reports.sales --week",
                     reschedule_interval=1, reschedule_interval_type=IntervalType.WEEK)
        job("Old importer", reports_template, "python3 -m reports.legacy_import",
            enqueue_is_enabled=False, fail_times=4)

        def history(target, count, step, base_seconds, fail_every=0, last_fails=False):
            last = None
            for index in range(count):
                start = now - step * (count - index)
                seconds = base_seconds * (0.7 + 0.6 * ((index * 37) % 10) / 10)
                ok = not (fail_every and index % fail_every == fail_every - 1)
                if last_fails and index == count - 1:
                    ok = False
                run = Run(job_id=target.id, schedule_dts=start, enqueue_dts=start + timedelta(seconds=1),
                          start_dts=start + timedelta(seconds=2),
                          return_dts=start + timedelta(seconds=2 + seconds), return_success=ok,
                          pid=10000 + index, worker_id=worker.id)
                s.add(run)
                s.flush()
                run.schedule_id = run.id
                s.add(RunLog(run_id=run.id, content=f"run {index}\n" + ("done\n" if ok else "error: timeout\n")))
                last = run
            s.flush()
            target.last_completed_schedule_id = last.schedule_id
            target.fail_times = 0 if last.return_success else 1

        history(export, 40, timedelta(days=1), 340, fail_every=9)
        history(sync, 60, timedelta(hours=2), 75, fail_every=7, last_fails=True)
        history(cleanup, 30, timedelta(minutes=15), 4)
        history(weekly, 12, timedelta(days=7), 1500)

        for target, delta in ((export, timedelta(hours=20)), (sync, timedelta(minutes=50)),
                              (cleanup, timedelta(minutes=9)), (weekly, timedelta(days=3))):
            run = Run(job_id=target.id, schedule_dts=now + delta)
            s.add(run)
            s.flush()
            run.schedule_id = run.id


# --- the server ----------------------------------------------------------------

INI = """\
[app:main]
use = egg:jobrunner
sqlalchemy.url = {url}
jobrunner.timezone = {timezone}
jobrunner.session_secret = browser-test-secret
jobrunner.base_url = {base_url}
jobrunner.admin_emails = admin@example.com
jobrunner.scheduler.embedded = false
mail.host = 127.0.0.1
mail.port = {mail_port}
mail.default_sender = jobrunner@example.com

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:{port}
threads = 8
"""


class LiveServer:
    def __init__(self, database_url, mail_port, tmp_dir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ini = tmp_dir / "browser-test.ini"
        self.ini.write_text(
            INI.format(url=database_url.replace("%", "%%"), timezone=TIMEZONE, base_url=self.url,
                       mail_port=mail_port, port=self.port)
        )
        self.log_path = tmp_dir / "server.log"
        self.process = None

    def start(self, timeout=60):
        pserve = Path(sys.executable).with_name("pserve")
        command = [str(pserve), str(self.ini)] if pserve.exists() else [
            sys.executable, "-m", "pyramid.scripts.pserve", str(self.ini)]
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/login", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer within {timeout} s: {self.log_path.read_text()[-3000:]}")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- clients -----------------------------------------------------------------


class TestWorker:
    """Plays the worker daemon's part over the REST API, signed with HMAC."""

    __test__ = False

    def __init__(self, base_url, api_key="build-01", secret="worker-secret"):
        self.base_url = base_url
        self.api_key = api_key
        self.secret = secret
        self.http = requests.Session()
        self.worker_uri = None

    def request(self, method, path, data=None, expect=(200, 201, 202)):
        body = json.dumps(data).encode() if data is not None else b""
        signature = compute_signature(self.secret, method, path, body)
        headers = {"Authorization": f"ApiKey {self.api_key}:{signature}"}
        if body:
            headers["Content-Type"] = "application/json"
        response = self.http.request(method, self.base_url + path, data=body, headers=headers, timeout=10)
        if expect and response.status_code not in expect:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def me(self):
        if self.worker_uri is None:
            self.worker_uri = self.request("GET", "/api/v1/worker/")["objects"][0]["resource_uri"]
        return self.worker_uri

    def claim(self, run_id):
        return self.request("PATCH", f"/api/v1/run/{run_id}/", {"enqueue_dts": iso(utcnow()), "worker": self.me()})

    def start(self, run_id, pid=4242):
        return self.request("PATCH", f"/api/v1/run/{run_id}/", {"start_dts": iso(utcnow()), "pid": pid})

    def write_log(self, run_id, content):
        existing = self.request("GET", f"/api/v1/run_log/?run={run_id}")["objects"]
        if existing:
            return self.request("PATCH", existing[0]["resource_uri"], {"content": content})
        return self.request("POST", "/api/v1/run_log/", {"run": f"/api/v1/run/{run_id}/", "content": content})

    def finish(self, run_id, success=True):
        return self.request(
            "PATCH", f"/api/v1/run/{run_id}/", {"return_dts": iso(utcnow()), "return_success": success}
        )

    def kill_requests(self):
        path = f"/api/v1/kill_request/?run__worker__api_key={self.api_key}&execute_dts__isnull=true"
        return self.request("GET", path)["objects"]

    def execute_kill(self, kill_request):
        self.request("PATCH", kill_request["resource_uri"], {"enqueue_dts": iso(utcnow())})
        self.request("PATCH", kill_request["resource_uri"], {"execute_dts": iso(utcnow())})
