"""The worker daemon's loop against the real server.

The daemon runs in a thread of the test; the server is the real WSGI app
under waitress in another thread, on a database of this module's own
(PostgreSQL when JOBRUNNER_TEST_DATABASE_URL is set, SQLite otherwise). A
`Tap` sits in the HTTP path in front of the app: it records every request
with the status the worker got, and can fail chosen requests as a faulty
network or proxy would. Each test has a worker, pool and project of its own.
"""

import http
import io
import json
import signal
import subprocess
import sys
import threading
import uuid
from collections import namedtuple
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import selectinload

from jobrunner import main
from jobrunner.api import waiting
from jobrunner.models.meta import utcnow
from jobrunner.models import Job, JobTemplate, KillRequest, Run, RunLog, Worker, WorkerPool
from jobrunner.signing import parse_header
from jobrunner.worker.config import WorkerConfig
from jobrunner.worker.daemon import WorkerDaemon
from jobrunner.worker.run import KILLED_NOTE, RESTARTED_NOTE

from ..conftest import Factory
from bench.stack import SignedClient, ThreadedServer, database_from_environment, stack_settings
from .test_executor import is_alive, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "verysecret"

Request = namedtuple("Request", "method path body status api_key")


class Tap:
    """WSGI middleware in front of the real app: records each request and
    the status its sender got; `add_rule` fails chosen requests."""

    def __init__(self, app):
        self.app = app
        self._lock = threading.Lock()
        self.requests = []
        self._rules = []

    def reset(self):
        with self._lock:
            self.requests.clear()
            self._rules.clear()

    def add_rule(self, method, path, *, body_key=None, answers=(None,), forward=False,
                 before=None, after=None, answer_body=None):
        """The next len(answers) matching requests: `before()` is called
        first; the request reaches the app only with `forward`, and `after()`
        is called once the app answered; a status in `answers` replaces the
        app's answer (None keeps it), with `answer_body` as its JSON if given."""
        with self._lock:
            self._rules.append({
                "method": method, "path": path, "body_key": body_key,
                "answers": list(answers), "forward": forward, "before": before,
                "after": after, "answer_body": answer_body,
            })

    def _take_rule(self, method, path, body):
        with self._lock:
            for rule in self._rules:
                if (
                    rule["answers"]
                    and rule["method"] == method
                    and path.startswith(rule["path"])
                    and (rule["body_key"] is None
                         or (isinstance(body, dict) and rule["body_key"] in body))
                ):
                    return rule, rule["answers"].pop(0)
        return None, None

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        signed = parse_header(authorization)
        api_key = signed.api_key if signed is not None else None

        rule, answer = self._take_rule(method, path, body)
        if rule is not None and rule["before"] is not None:
            rule["before"]()
        status, headers, chunks = None, [], []
        if rule is None or rule["forward"]:
            status, headers, chunks = self._call_app(environ)
            if rule is not None and rule["after"] is not None:
                rule["after"]()
        if answer is not None:
            phrase = http.HTTPStatus(answer).phrase
            status = f"{answer} {phrase}"
            chunks = [json.dumps(rule["answer_body"] or {"error": f"{phrase} (injected by the test)"}
                                 ).encode()]
            headers = [("Content-Type", "application/json")]
        with self._lock:
            self.requests.append(Request(method, path, body, int(status.split()[0]), api_key))
        start_response(status, headers)
        return chunks

    def _call_app(self, environ):
        answer = {}
        written = []

        def capture(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, headers
            return written.append

        result = self.app(environ, capture)
        try:
            written.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return answer["status"], answer["headers"], [b"".join(written)]

    def of(self, api_key, method=None, path=None):
        with self._lock:
            return [
                r for r in self.requests
                if r.api_key == api_key
                and (method is None or r.method == method)
                and (path is None or r.path.startswith(path))
            ]


class Live:
    def __init__(self, database, server, tap):
        self.database = database
        self.Session = database.Session
        self.server = server
        self.base_url = server.base_url
        self.tap = tap


@pytest.fixture(scope="module")
def live(tmp_path_factory, mail_sink):
    database = database_from_environment(tmp_path_factory.mktemp("worker-live"))
    try:
        app = main({}, **stack_settings(database.url, "http://jobrunner.example", mail_sink.port))
        tap = Tap(app)
        # As the inis size it: above the 16 requests that may wait at once
        # (a stopped daemon's waiting claim may still hold a thread until
        # its wait ends), with 8 for the rest.
        server = ThreadedServer(tap, threads=24)
        try:
            yield Live(database, server, tap)
        finally:
            server.close()
    finally:
        database.drop()


class World:
    """This test's worker, pool, project and template, and the data helpers."""

    def __init__(self, live):
        self.live = live
        self.api_key = "worker-" + uuid.uuid4().hex[:12]
        with live.Session() as session:
            factory = Factory(session)
            self.worker = factory.worker(api_key=self.api_key, secret=SECRET)
            self.pool = factory.pool(workers=[self.worker])
            self.project = factory.project(pools=[self.pool])
            # The job's script is all there is: no shebang added.
            self.template = factory.template(self.project, body="{{ content }}")
            session.commit()
        self.worker_uri = f"/api/v1/worker/{self.worker.id}/"

    def without_claim_of_several(self):
        """The server answers as one without `POST run/claim/` (404): the
        worker lists and claims each run, the original steps."""
        self.live.tap.add_rule("POST", "/api/v1/run/claim/", answers=[404],
                               answer_body={"error": "Not found."})

    def claims(self):
        return [r.body for r in self.requests("POST", "/api/v1/run/claim/")]

    def add_worker(self):
        """Another worker in the same pool (no daemon of its own)."""
        api_key = "other-" + uuid.uuid4().hex[:12]
        with self.live.Session() as session:
            factory = Factory(session)
            other = factory.worker(api_key=api_key, secret=SECRET)
            pool = session.get(WorkerPool, self.pool.id)
            pool.workers.append(other)
            session.commit()
        return other

    def add_job(self, script):
        with self.live.Session() as session:
            factory = Factory(session)
            template = session.get(JobTemplate, self.template.id)
            pool = session.get(WorkerPool, self.pool.id)
            job = factory.job(template, pool, script=script)
            session.commit()
            return job

    def add_run(self, job, log=None, **fields):
        if "worker" in fields:
            fields["worker_id"] = fields.pop("worker").id
        with self.live.Session() as session:
            run = Factory(session).run(session.get(Job, job.id), **fields)
            if log is not None:
                session.add(RunLog(run_id=run.id, content=log))
            session.commit()
            return run

    def run(self, run):
        with self.live.Session() as session:
            return session.get(Run, run.id, options=[selectinload(Run.run_log)],
                               populate_existing=True)

    def log_of(self, run):
        stored = self.run(run)
        return stored.run_log.content if stored.run_log else None

    def returned(self, run):
        return self.run(run).return_dts is not None

    def stored_worker(self):
        with self.live.Session() as session:
            return session.get(Worker, self.worker.id)

    def job(self, job):
        with self.live.Session() as session:
            return session.get(Job, job.id)

    def requests(self, method=None, path=None):
        return self.live.tap.of(self.api_key, method, path)

    def run_patches(self, run):
        return [r.body for r in self.requests("PATCH", f"/api/v1/run/{run.id}/")]


@pytest.fixture
def world(live):
    live.tap.reset()
    return World(live)


def make_config(live, world, tmp_path, **overrides):
    settings = dict(
        api_base_url=live.base_url + "/",
        api_key=world.api_key,
        secret=SECRET,
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
def start_daemon(live, world, tmp_path):
    running = []

    def start(**overrides):
        daemon = WorkerDaemon(
            make_config(live, world, tmp_path, **overrides),
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


def parse(value):
    return datetime.fromisoformat(value)


def run_hello_once(world, start_daemon):
    """One run of a job that prints a line, through a daemon that stops once
    it is returned: (the job, the run, the run as stored)."""
    job = world.add_job("#!/bin/sh\necho hello from the job\n")
    run = world.add_run(job)
    running = start_daemon()
    wait_for(lambda: world.returned(run))
    assert running.stop() == 0
    return job, run, world.run(run)


def test_claims_runs_reports_and_returns(world, start_daemon):
    job, run, stored = run_hello_once(world, start_daemon)
    assert stored.return_success is True
    assert stored.worker_id == world.worker.id
    assert stored.pid > 0
    assert stored.enqueue_dts <= stored.start_dts <= stored.return_dts
    assert stored.run_log.content == "hello from the job\n"
    assert world.job(job).fail_times == 0
    # Nothing refused: the fast path throughout.
    assert [r for r in world.requests() if r.status not in (200, 201, 202)] == []

    # One request claimed and started the run (its start stored before the
    # script ran); its return, with the pid and the final log, went once:
    # with the next claim, or by itself while that claim waited.
    claims = world.claims()
    assert claims and all(body["start"] is True and 1 <= body["limit"] <= 4 for body in claims)
    assert world.requests("GET", "/api/v1/run/?state=enqueueable") == []
    returns = [entry for body in claims for entry in body.get("returns", [])]
    returns += world.run_patches(run)
    assert len(returns) == 1
    (sent,) = returns
    assert set(sent) - {"run"} == {"return_dts", "return_success", "log_content", "pid"}
    assert sent.get("run", f"/api/v1/run/{run.id}/") == f"/api/v1/run/{run.id}/"
    assert sent["log_content"] == "hello from the job\n"
    assert sent["pid"] == stored.pid
    assert sent["return_dts"].endswith("+00:00") and "." in sent["return_dts"]
    assert stored.return_dts == parse(sent["return_dts"])
    # The claim's answer carried the job: the worker never asked for it.
    assert world.requests("GET", f"/api/v1/job/{job.id}/") == []


def test_a_full_worker_returns_its_run_with_the_next_claim(world, start_daemon):
    """With every slot busy nothing is claimed; the run that ends hands its
    return to the claimer, whose next request carries it and claims the
    next run for the slot it freed."""
    job = world.add_job("#!/bin/sh\necho one of two\n")
    first = world.add_run(job, schedule_dts=utcnow() - timedelta(seconds=2))
    second = world.add_run(job, schedule_dts=utcnow() - timedelta(seconds=1))
    running = start_daemon(concurrent_jobs=1)
    wait_for(lambda: world.returned(first) and world.returned(second))
    assert running.stop() == 0

    assert world.run(first).run_log.content == "one of two\n"
    claims = world.claims()
    carried = [(index, entry["run"]) for index, body in enumerate(claims)
               for entry in body.get("returns", [])]
    first_uri = f"/api/v1/run/{first.id}/"
    assert (1, first_uri) in carried
    # That claim freed the slot it asked for and took the second run.
    assert claims[1]["limit"] == 1
    assert [r for r in world.run_patches(first) if "return_dts" in r] == []
    assert world.run(second).start_dts >= world.run(first).return_dts


def test_an_older_server_gets_the_original_steps(world, start_daemon):
    """A server without the claim of several runs: the worker lists, claims
    each run, stores its start before the script runs, and returns it."""
    world.without_claim_of_several()
    job, run, stored = run_hello_once(world, start_daemon)
    assert stored.return_success is True
    assert stored.run_log.content == "hello from the job\n"
    assert [r.status for r in world.requests("POST", "/api/v1/run/claim/")] == [404]

    run_patches = world.run_patches(run)
    assert set(run_patches[0]) == {"enqueue_dts", "worker"}
    assert run_patches[0]["worker"] == world.worker_uri
    # The start is stored before the script runs; a script this short has
    # its pid sent with the return, and the final log with it.
    assert set(run_patches[1]) == {"start_dts"}
    assert set(run_patches[2]) == {"return_dts", "return_success", "log_content", "pid"}
    assert run_patches[2]["log_content"] == "hello from the job\n"
    assert run_patches[2]["pid"] == stored.pid
    assert len(run_patches) == 3
    for value in (run_patches[0]["enqueue_dts"], run_patches[-1]["return_dts"]):
        assert value.endswith("+00:00") and "." in value
    # What the worker sent is what the server stored, microseconds included.
    assert stored.enqueue_dts == parse(run_patches[0]["enqueue_dts"])
    assert stored.start_dts == parse(run_patches[1]["start_dts"])
    assert stored.return_dts == parse(run_patches[-1]["return_dts"])
    # The claim's answer carried the job: the worker never asked for it.
    assert world.requests("GET", f"/api/v1/job/{job.id}/") == []


def test_pings_with_version_and_concurrency(world, start_daemon):
    before = datetime.now(timezone.utc)
    running = start_daemon(concurrent_jobs=3)
    wait_for(lambda: len(world.requests("PATCH", world.worker_uri)) >= 3)
    assert running.stop() == 0
    pings = world.requests("PATCH", world.worker_uri)
    assert all(r.status == 202 for r in pings)
    assert set(pings[0].body) == {"ping_response_dts", "worker_version", "concurrent_jobs"}
    stored = world.stored_worker()
    assert stored.concurrent_jobs == 3
    assert stored.worker_version and stored.worker_version == pings[0].body["worker_version"]
    assert stored.ping_response_dts >= before
    # The server stores its own clock's time of the last ping, not the worker's.
    assert stored.ping_response_dts >= parse(pings[-1].body["ping_response_dts"])


def test_script_without_shebang_is_a_failed_run(world, start_daemon):
    run = world.add_run(world.add_job("echo no shebang\n"))
    running = start_daemon()
    wait_for(lambda: world.returned(run))
    assert running.stop() == 0
    stored = world.run(run)
    assert stored.return_success is False
    assert stored.start_dts is not None
    assert "shebang" in stored.run_log.content


def test_failing_script_is_a_failed_run_with_its_exit_code(world, start_daemon):
    job = world.add_job("#!/bin/sh\necho oops\nexit 4\n")
    run = world.add_run(job)
    running = start_daemon()
    wait_for(lambda: world.returned(run))
    assert running.stop() == 0
    assert world.run(run).return_success is False
    assert world.log_of(run) == "oops\n[jobrunner-worker] exit code 4\n"
    assert world.job(job).fail_times == 1


def test_live_log_is_updated_while_the_script_runs(world, start_daemon, tmp_path):
    go_on = tmp_path / "go-on"
    run = world.add_run(world.add_job(
        f"#!/bin/sh\necho first\nwhile [ ! -e {go_on} ]; do sleep 0.05; done\necho second\n"
    ))
    running = start_daemon()
    wait_for(lambda: world.log_of(run) == "first\n")
    assert world.run(run).return_dts is None
    go_on.touch()
    wait_for(lambda: world.returned(run))
    assert running.stop() == 0
    assert world.log_of(run) == "first\nsecond\n"
    assert len(world.requests("POST", "/api/v1/run_log/")) == 1


def max_overlap(runs):
    events = sorted([(run.start_dts, 1) for run in runs] + [(run.return_dts, -1) for run in runs])
    running = highest = 0
    for _when, step in events:
        running += step
        highest = max(highest, running)
    return highest


def test_never_more_than_concurrent_jobs_at_once(world, start_daemon):
    runs = [world.add_run(world.add_job("#!/bin/sh\nsleep 0.3\n")) for _ in range(5)]
    running = start_daemon(concurrent_jobs=2)
    wait_for(lambda: all(world.returned(run) for run in runs), timeout=20)
    assert running.stop() == 0
    stored = [world.run(run) for run in runs]
    assert all(run.return_success for run in stored)
    assert max_overlap(stored) == 2
    listings = world.requests("GET", "/api/v1/run/?")
    assert listings and all("limit=0" not in r.path for r in listings)


def test_a_run_taken_by_another_worker_is_skipped(world, start_daemon):
    world.without_claim_of_several()
    run = world.add_run(world.add_job("#!/bin/sh\nexit 0\n"))
    other_worker = world.add_worker()
    other = SignedClient(world.live.base_url, other_worker.api_key, SECRET)

    def other_claims_first():
        response = other.request("PATCH", f"/api/v1/run/{run.id}/", {
            "enqueue_dts": datetime.now(timezone.utc).isoformat(),
            "worker": f"/api/v1/worker/{other_worker.id}/",
        })
        assert response.status_code == 202, response.text

    world.live.tap.add_rule("PATCH", f"/api/v1/run/{run.id}/", body_key="enqueue_dts",
                            forward=True, before=other_claims_first)
    mine = world.add_run(world.add_job("#!/bin/sh\necho mine\n"))
    running = start_daemon()
    wait_for(lambda: world.returned(mine))
    assert running.stop() == 0
    taken = world.run(run)
    assert taken.worker_id == other_worker.id
    assert taken.start_dts is None and taken.return_dts is None
    assert [r.status for r in world.requests("PATCH", f"/api/v1/run/{run.id}/")] == [409]
    assert world.log_of(mine) == "mine\n"


def test_return_is_retried_through_server_errors(world, start_daemon):
    job = world.add_job("#!/bin/sh\necho ok\n")
    run = world.add_run(job)
    world.live.tap.add_rule("PATCH", f"/api/v1/run/{run.id}/", body_key="return_dts",
                            answers=[503, 502, 500])
    # Should the return travel with a claim, that claim fails: the handler
    # returns the run itself.
    world.live.tap.add_rule("POST", "/api/v1/run/claim/", body_key="returns", answers=[503])
    running = start_daemon()
    wait_for(lambda: world.returned(run), timeout=30)
    assert running.stop() == 0
    returns = [r for r in world.requests("PATCH", f"/api/v1/run/{run.id}/")
               if "return_dts" in r.body]
    # The return with the log, retried through the errors until it is taken.
    assert [r.status for r in returns] == [503, 502, 500, 202]
    assert all("log_content" in r.body for r in returns)
    assert world.log_of(run) == "ok\n"
    # Every attempt carries the time the script ended.
    assert len({r.body["return_dts"] for r in returns}) == 1
    stored = world.run(run)
    assert stored.return_success is True
    assert stored.return_dts == parse(returns[0].body["return_dts"])
    assert world.job(job).fail_times == 0


def test_lost_claim_answer_is_recognised_as_our_claim(world, start_daemon, tmp_path):
    world.without_claim_of_several()
    count = tmp_path / "count"
    run = world.add_run(world.add_job(f"#!/bin/sh\necho once >> {count}\necho ran\n"))
    # The claim reaches the server; its answer is lost on the way back.
    world.live.tap.add_rule("PATCH", f"/api/v1/run/{run.id}/", body_key="enqueue_dts",
                            forward=True, answers=[502])
    running = start_daemon()
    wait_for(lambda: world.returned(run))
    assert running.stop() == 0
    assert world.run(run).return_success is True
    assert world.log_of(run) == "ran\n"
    assert count.read_text() == "once\n"
    claims = [r.status for r in world.requests("PATCH", f"/api/v1/run/{run.id}/")
              if "enqueue_dts" in r.body]
    # The worker sends the very same claim again; the server takes it as the
    # claim it already holds.
    assert claims == [502, 202]
    assert len([body for body in world.run_patches(run) if "pid" in body]) == 1


def test_a_lost_claim_of_several_is_settled_from_the_servers_lists(world, start_daemon, tmp_path):
    """The claim's answer is lost after the server claimed and started the
    run: the worker finds it among its started runs and runs it, once."""
    count = tmp_path / "count"
    run = world.add_run(world.add_job(f"#!/bin/sh\necho once >> {count}\n"))
    world.live.tap.add_rule("POST", "/api/v1/run/claim/", forward=True, answers=[502])
    running = start_daemon()
    wait_for(lambda: world.returned(run))
    assert running.stop() == 0
    assert world.run(run).return_success is True
    assert count.read_text() == "once\n"
    assert world.requests("GET", "/api/v1/run/?state=started")


def test_runs_a_lost_waiting_claim_only_claimed_go_back_and_run(world, start_daemon, tmp_path):
    """The answer of a claim that waited is lost after the server claimed
    (not started) the run that came: the worker gives it back, and claims
    it again."""
    count = tmp_path / "count"
    # The first claim finds nothing due, waits for the run's time, claims it
    # (not started) and answers 502.
    world.live.tap.add_rule("POST", "/api/v1/run/claim/", forward=True, answers=[502])
    run = world.add_run(world.add_job(f"#!/bin/sh\necho once >> {count}\n"),
                        schedule_dts=utcnow() + timedelta(seconds=3))
    running = start_daemon()
    wait_for(lambda: world.returned(run), timeout=20)
    assert running.stop() == 0
    assert world.run(run).return_success is True
    assert count.read_text() == "once\n"
    releases = [body for body in world.run_patches(run)
                if body == {"enqueue_dts": None, "start_dts": None}]
    assert len(releases) == 1


def test_kill_request_kills_the_run(world, start_daemon):
    run = world.add_run(world.add_job("#!/bin/sh\nsleep 300 &\necho child $!\nwait\n"))
    running = start_daemon()
    wait_for(lambda: (world.log_of(run) or "").startswith("child "))
    child = int(world.log_of(run).split()[1])
    client = SignedClient(world.live.base_url, world.api_key, SECRET)
    response = client.request("POST", "/api/v1/kill_request/", {"run": f"/api/v1/run/{run.id}/"})
    assert response.status_code == 201, response.text
    kill_uri = response.json()["resource_uri"]

    wait_for(lambda: world.returned(run))
    assert running.stop() == 0
    stored = world.run(run)
    assert stored.return_success is False
    assert KILLED_NOTE in stored.run_log.content
    with world.live.Session() as session:
        kill = session.get(KillRequest, response.json()["id"])
    # enqueue_dts, then execute_dts, then the return.
    assert kill.enqueue_dts <= kill.execute_dts <= stored.return_dts
    wait_for(lambda: not is_alive(child))
    order = [(r.path, tuple(r.body or ())) for r in world.requests("PATCH")]
    kill_enqueue = order.index((kill_uri, ("enqueue_dts",)))
    kill_execute = order.index((kill_uri, ("execute_dts",)))
    run_return = next(i for i, (path, keys) in enumerate(order)
                      if path == f"/api/v1/run/{run.id}/" and "return_dts" in keys)
    assert kill_enqueue < kill_execute < run_return


def test_a_kill_request_in_a_listing_older_than_its_execution_is_left_alone(
        world, start_daemon):
    """The execution is stored while a listing fetched just before it is on
    its way: the worker must not act on that stale entry again."""
    run = world.add_run(world.add_job("#!/bin/sh\necho going\nsleep 300\n"))
    listing_fetched = threading.Event()
    run_returned = threading.Event()

    def wait_for_event(event):
        assert event.wait(timeout=10), "the requests never met"

    tap = world.live.tap
    # The execution waits until the listing is fetched; the listing is
    # delivered once the run has returned, everything done on that run.
    tap.add_rule("PATCH", "/api/v1/kill_request/", body_key="execute_dts", forward=True,
                 before=lambda: wait_for_event(listing_fetched))
    # Two returns where the server takes no log in the return: the refused
    # one with the log, then the original one.
    # The return goes by itself or with a claim.
    tap.add_rule("PATCH", f"/api/v1/run/{run.id}/", body_key="return_dts", forward=True,
                 answers=(None, None),
                 after=lambda: world.returned(run) and run_returned.set())
    tap.add_rule("POST", "/api/v1/run/claim/", body_key="returns", forward=True,
                 after=lambda: world.returned(run) and run_returned.set())
    running = start_daemon()
    wait_for(lambda: world.log_of(run) == "going\n")
    client = SignedClient(world.live.base_url, world.api_key, SECRET)
    response = client.request("POST", "/api/v1/kill_request/", {"run": f"/api/v1/run/{run.id}/"})
    assert response.status_code == 201, response.text
    kill_uri = response.json()["resource_uri"]
    wait_for(lambda: [r for r in world.requests("PATCH", kill_uri) if "enqueue_dts" in r.body])

    def stale_listing():
        listing_fetched.set()
        wait_for_event(run_returned)

    def listings():
        return len(world.requests("GET", "/api/v1/kill_request/?"))

    before = listings()
    tap.add_rule("GET", "/api/v1/kill_request/?", forward=True, after=stale_listing)
    wait_for(lambda: world.returned(run))
    # The listing after the stale one: the stale one has been dealt with.
    wait_for(lambda: listings() >= before + 2)
    assert running.stop() == 0
    executions = [r for r in world.requests("PATCH", kill_uri) if "execute_dts" in r.body]
    assert len(executions) == 1
    with world.live.Session() as session:
        kill = session.get(KillRequest, response.json()["id"])
    assert kill.enqueue_dts <= kill.execute_dts <= world.run(run).return_dts


def test_kill_request_for_a_run_not_running_here_is_closed(world, start_daemon):
    # Asked for while the run went on; the run returned before the worker saw it.
    at = datetime.now(timezone.utc) - timedelta(seconds=10)
    run = world.add_run(world.add_job("#!/bin/sh\n"), worker=world.worker,
                        enqueue_dts=at, start_dts=at, return_dts=at, return_success=True)
    with world.live.Session() as session:
        kill = KillRequest(run_id=run.id, schedule_dts=at)
        session.add(kill)
        session.commit()
    running = start_daemon()

    def executed():
        with world.live.Session() as session:
            return session.get(KillRequest, kill.id).execute_dts is not None

    wait_for(executed)
    assert running.stop() == 0
    assert world.run(run).return_success is True


def test_kill_requests_are_listed_only_while_scripts_run(world, start_daemon, tmp_path):
    def listings():
        return len(world.requests("GET", "/api/v1/kill_request/?"))

    def pings():
        return len(world.requests("PATCH", world.worker_uri))

    # Idle: the listing at start, then none while pings go on (poll 0.05 s).
    running = start_daemon(ping_interval=0.2)
    wait_for(lambda: listings() >= 1)
    first_pings = pings()
    wait_for(lambda: pings() >= first_pings + 4, timeout=20)
    assert listings() == 1

    # A script running: every poll_interval, from its start on.
    go_on = tmp_path / "go-on"
    run = world.add_run(world.add_job(f"#!/bin/sh\nwhile [ ! -e {go_on} ]; do sleep 0.05; done\n"))
    wait_for(lambda: world.run(run).start_dts is not None)
    running_from, running_pings = listings(), pings()
    wait_for(lambda: pings() >= running_pings + 4, timeout=20)
    # Four polls a ping: more than one listing a ping, whatever the load.
    assert listings() - running_from >= 6, (listings() - running_from, pings() - running_pings)
    go_on.touch()
    wait_for(lambda: world.returned(run))
    # One more once it ended, then none again.
    ended_pings = pings()
    wait_for(lambda: pings() >= ended_pings + 4, timeout=20)
    after_end = listings()
    wait_for(lambda: pings() >= ended_pings + 8, timeout=20)
    assert listings() == after_end
    assert running.stop() == 0


def test_restart_settles_runs_left_by_an_earlier_process(world, start_daemon):
    job = world.add_job("#!/bin/sh\necho again\n")
    earlier = datetime.now(timezone.utc) - timedelta(seconds=10)
    in_queue = world.add_run(job, worker=world.worker, enqueue_dts=earlier)
    started = world.add_run(job, worker=world.worker, enqueue_dts=earlier, start_dts=earlier,
                            pid=12345, log="partial output\n")
    started_without_log = world.add_run(
        world.add_job("#!/bin/sh\n"), worker=world.worker, enqueue_dts=earlier, start_dts=earlier)

    running = start_daemon()
    # The run put back in the queue is then claimed and run afresh.
    wait_for(lambda: world.returned(in_queue) and world.returned(started)
             and world.returned(started_without_log), timeout=30)
    assert running.stop() == 0

    assert world.run_patches(in_queue)[0] == {"enqueue_dts": None, "start_dts": None}
    assert world.run(in_queue).return_success is True
    assert world.log_of(in_queue) == "again\n"

    assert world.run(started).return_success is False
    assert world.log_of(started) == "partial output\n" + RESTARTED_NOTE + "\n"
    assert world.run(started_without_log).return_success is False
    assert world.log_of(started_without_log) == RESTARTED_NOTE + "\n"


def test_stop_lets_running_runs_finish_and_claims_nothing_more(world, start_daemon, tmp_path):
    go_on = tmp_path / "go-on"
    run = world.add_run(world.add_job(
        f"#!/bin/sh\nwhile [ ! -e {go_on} ]; do sleep 0.05; done\necho finished\n"
    ))
    running = start_daemon()
    wait_for(lambda: world.run(run).start_dts is not None)
    # The worker's next claim has made its first look and waits on the
    # server: what comes due now is only claimed, and a stopping worker gives
    # it back. (A run the server starts for a claim already on its way when
    # the stop comes runs: the stop counts from the worker's next request.)
    waiters = world.live.tap.app.registry[waiting.REGISTRY_KEY]
    wait_for(lambda: waiters.of_worker[world.worker.id] > 0)

    running.daemon.request_stop()
    later = world.add_run(world.add_job("#!/bin/sh\necho too late\n"))
    # Still waiting for the running script, and pinging meanwhile.
    pings = len(world.requests("PATCH", world.worker_uri))
    wait_for(lambda: len(world.requests("PATCH", world.worker_uri)) > pings)
    assert running.thread.is_alive()
    go_on.touch()
    running.thread.join(timeout=20)
    assert running.exit_code == 0
    assert world.run(run).return_success is True
    assert world.log_of(run) == "finished\n"
    assert world.run(later).enqueue_dts is None


def test_sigterm_on_the_command_line_daemon(live, world, tmp_path):
    go_on = tmp_path / "go-on"
    run = world.add_run(world.add_job(
        f"#!/bin/sh\nwhile [ ! -e {go_on} ]; do sleep 0.05; done\necho done\n"
    ))
    ini = tmp_path / "worker.ini"
    ini.write_text(
        "[jobrunner_worker]\n"
        f"api_base_url = {live.base_url}/\n"
        f"api_key = {world.api_key}\nsecret = {SECRET}\n"
        f"script_temp_path = {tmp_path}\n"
        "poll_interval = 0.05\nping_interval = 0.5\nlog_level = debug\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "jobrunner.worker", "--config-path", str(ini)],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: world.run(run).start_dts is not None, timeout=30)
        process.send_signal(signal.SIGTERM)
        go_on.touch()
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()
    assert "SIGTERM" in stderr
    assert world.run(run).return_success is True
    assert world.log_of(run) == "done\n"


def test_wrong_secret_is_an_error_exit(live, world, tmp_path):
    daemon = WorkerDaemon(make_config(live, world, tmp_path, secret="wrong"))
    assert daemon.run() == 1
    assert [r.status for r in world.requests()] == [401]
