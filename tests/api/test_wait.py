"""The long-poll `wait` on the enqueueable list, against the real app under
waitress on a database of this module's own (PostgreSQL when
JOBRUNNER_TEST_DATABASE_URL is set): answered at once when a run is there,
woken by a run made by another request or another process, woken at a
pending run's due time, empty when the wait runs out, capped, and holding
no database connection while it waits (the pool has one connection)."""
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event

from bench.stack import SignedClient, ThreadedServer, database_from_environment, stack_settings, wait_until
from jobrunner import main
from jobrunner.api.waiting import REGISTRY_KEY
from jobrunner.models import JobTemplate, WorkerPool, utcnow
from jobrunner.signing import compute_signature

from ..conftest import Factory

SECRET = "wait-secret"
MAX_WAITING = 2
LIST = "/api/v1/run/?state=enqueueable"
CLAIM = "/api/v1/run/claim/"


class Live:
    def __init__(self, database, server, app):
        self.database = database
        self.server = server
        self.waiters = app.registry[REGISTRY_KEY]
        self.engine = app.registry["dbengine"]


@pytest.fixture(scope="module")
def live(tmp_path_factory, mail_sink):
    database = database_from_environment(tmp_path_factory.mktemp("wait"))
    try:
        settings = stack_settings(
            database.url, "http://jobrunner.example", mail_sink.port,
            **{
                "jobrunner.api.max_waiting": str(MAX_WAITING),
                # One connection: a waiter holding it would starve the rest.
                "sqlalchemy.pool_size": "1",
                "sqlalchemy.max_overflow": "0",
                "sqlalchemy.pool_timeout": "3",
            },
        )
        app = main({}, **settings)
        server = ThreadedServer(app, threads=8)
        try:
            yield Live(database, server, app)
        finally:
            server.close()
    finally:
        database.drop()


class World:
    """A worker of its own, in a pool of its own, with one job."""

    def __init__(self, live):
        self.live = live
        api_key = "wait-" + uuid.uuid4().hex[:12]
        with live.database.Session() as session:
            factory = Factory(session)
            worker = factory.worker(api_key=api_key, secret=SECRET)
            pool = factory.pool(workers=[worker])
            project = factory.project(pools=[pool])
            template = factory.template(project, body="{{ content }}")
            job = factory.job(template, pool, script="#!/bin/sh\necho hi\n")
            session.commit()
            self.pool_id, self.template_id = pool.id, template.id
            self.job_id = job.id
        self.job_uri = f"/api/v1/job/{self.job_id}/"
        self.client = SignedClient(live.server.base_url, api_key, SECRET)
        self.worker_uri = f"/api/v1/worker/{worker.id}/"

    def add_run(self, schedule_dts=None):
        with self.live.database.Session() as session:
            factory = Factory(session)
            job = session.get(JobTemplate, self.template_id).jobs[0]
            run = factory.run(job, schedule_dts=schedule_dts)
            session.commit()
            return run.id

    def listing(self, wait, timeout=40):
        """(seconds taken, status, body) of one enqueueable list."""
        started = time.monotonic()
        response = self.client.request("GET", f"{LIST}&wait={wait}", timeout=timeout)
        return time.monotonic() - started, response.status_code, response.json()


@pytest.fixture
def world(live):
    return World(live)


class Waiter(threading.Thread):
    """A list with `wait` sent from a thread (or, with `claim`, that claim's
    body with `wait`); `answered_at` is time.time()."""

    def __init__(self, world, wait, claim=None):
        super().__init__(daemon=True)
        self.world = world
        self.wait = wait
        self.claim = claim
        # A client of its own: requests.Session is not for two threads.
        self.client = SignedClient(world.live.server.base_url, world.client.api_key, SECRET)
        self.result = None
        self.answered_at = None

    def run(self):
        if self.claim is None:
            response = self.client.request("GET", f"{LIST}&wait={self.wait}", timeout=40)
        else:
            response = self.client.request("POST", CLAIM, {**self.claim, "wait": self.wait},
                                           timeout=40)
        self.answered_at = time.time()
        self.result = (response.status_code, response.json())


def start_waiting(world, wait, count=1, claim=None):
    waiters = world.live.waiters
    before = waiters.count
    waiter = Waiter(world, wait, claim)
    waiter.start()
    wait_until(lambda: waiters.count >= before + count, timeout=10, interval=0.01,
               message="the request to wait")
    return waiter


def ids(body):
    return [run["id"] for run in body["objects"]]


def test_a_wait_that_runs_out_unwoken_does_not_list_again(world):
    """Watched all along, nothing announced, nothing pending: the first
    look's empty page is the answer (one look, not one more at the end)."""
    # The watcher starts with the first waiter of the process.
    start_waiting(world, 0.2).join()
    wait_until(lambda: world.live.waiters.watched, timeout=10, interval=0.01,
               message="the watcher")
    looks = []

    def count(_conn, _cursor, statement, *_args):
        # The enqueueable list is the statement that names the other runs.
        if "other_run" in statement and "earlier_run" in statement:
            looks.append(statement)

    event.listen(world.live.engine, "before_cursor_execute", count)
    try:
        seconds, status, body = world.listing(1)
    finally:
        event.remove(world.live.engine, "before_cursor_execute", count)
    assert (status, body["objects"]) == (200, [])
    assert seconds >= 1
    assert len(looks) == 1


def test_answered_at_once_when_a_run_is_there(world):
    run_id = world.add_run()
    seconds, status, body = world.listing(10)
    assert status == 200
    assert ids(body) == [run_id]
    assert seconds < 1


def test_empty_when_the_wait_runs_out(world):
    seconds, status, body = world.listing(0.6)
    assert status == 200
    assert body["objects"] == [] and body["meta"]["total_count"] == 0
    assert 0.6 <= seconds < 2


def answer_to_a_posted_run(world, waiter):
    """POST a run due now while `waiter` waits: the waiter's body, which
    names that run alone, and when the run was posted (time.time())."""
    response = world.client.request("POST", "/api/v1/run/", {
        "job": world.job_uri, "schedule_dts": utcnow().isoformat()})
    posted_at = time.time()
    assert response.status_code == 201, response.text
    waiter.join(timeout=5)
    assert waiter.result is not None
    status, body = waiter.result
    assert status == 200 and ids(body) == [response.json()["id"]]
    return body, posted_at


def test_woken_by_a_run_another_request_creates(world):
    waiter = start_waiting(world, 10)
    body, posted_at = answer_to_a_posted_run(world, waiter)
    assert waiter.answered_at - posted_at < 0.3


CREATE_RUN = """
import sys, time
from sqlalchemy.orm import Session
from jobrunner.models import Job, get_engine, utcnow
from jobrunner.scheduling.runs import create_run
engine = get_engine({"sqlalchemy.url": sys.argv[1]})
with Session(engine) as session:
    create_run(session, session.get(Job, int(sys.argv[2])), utcnow(), is_manual=True)
    session.commit()
print(time.time())
"""


def test_woken_by_a_run_another_process_creates(world):
    """PostgreSQL: the NOTIFY reaches this process's listener; SQLite: the
    re-check of the database's data version sees the commit."""
    waiter = start_waiting(world, 20)
    done = subprocess.run(
        [sys.executable, "-c", CREATE_RUN, world.live.database.url, str(world.job_id)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    committed_at = float(done.stdout.split()[-1])
    waiter.join(timeout=5)
    assert waiter.result is not None
    status, body = waiter.result
    assert status == 200 and len(body["objects"]) == 1
    assert waiter.answered_at - committed_at < 0.3


def test_woken_when_a_pending_run_falls_due(world):
    due = utcnow() + timedelta(seconds=1.5)
    run_id = world.add_run(schedule_dts=due)
    seconds, status, body = world.listing(10)
    answered = utcnow()
    assert status == 200 and ids(body) == [run_id]
    assert due <= answered < due + timedelta(seconds=0.3)
    assert 1 <= seconds < 2


@pytest.mark.parametrize("query", [
    f"{LIST}&wait=0", f"{LIST}&wait=-1", f"{LIST}&wait=30.5", f"{LIST}&wait=abc",
    f"{LIST}&wait=nan", f"{LIST}&wait=inf", f"{LIST}&wait=", "/api/v1/run/?wait=5",
    "/api/v1/run/?state=scheduled&wait=5",
])
def test_a_wait_out_of_range_or_off_the_enqueueable_list_is_a_400(world, query):
    response = world.client.request("GET", query)
    assert response.status_code == 400
    assert "wait" in response.json()["errors"]


def test_a_fraction_of_a_second_and_the_longest_wait_are_accepted(world):
    run_id = world.add_run()
    for wait in ("0.05", "30"):
        _seconds, status, body = world.listing(wait)
        assert status == 200 and ids(body) == [run_id]


def test_beyond_the_cap_a_wait_is_answered_at_once(world):
    waiters = [start_waiting(world, 3) for _ in range(MAX_WAITING)]
    assert world.live.waiters.count == MAX_WAITING
    seconds, status, body = world.listing(3)
    assert status == 200 and body["objects"] == []
    assert seconds < 1
    for waiter in waiters:
        waiter.join(timeout=10)
        assert waiter.result[0] == 200
    assert world.live.waiters.count == 0


def test_a_waiting_request_holds_no_connection(world):
    """The pool has one connection: another request is served meanwhile."""
    waiter = start_waiting(world, 4)
    started = time.monotonic()
    response = world.client.request("GET", world.worker_uri)
    assert response.status_code == 200
    assert time.monotonic() - started < 1
    assert waiter.is_alive()
    waiter.join(timeout=10)
    assert waiter.result == (200, waiter.result[1]) and waiter.result[1]["objects"] == []


def test_the_original_steps_still_work(world):
    """List without wait, claim, GET the job, start, POST the log, return."""
    run_id = world.add_run()
    client = world.client
    listed = client.get(LIST)
    assert ids(listed) == [run_id]
    run_uri = listed["objects"][0]["resource_uri"]
    claim = client.request("PATCH", run_uri, {"enqueue_dts": utcnow().isoformat(),
                                              "worker": world.worker_uri})
    assert claim.status_code == 202, claim.text
    job = client.get(claim.json()["job"])
    assert job["script_content"].startswith("#!/bin/sh")
    start = client.request("PATCH", run_uri, {"start_dts": utcnow().isoformat(), "pid": 42})
    assert start.status_code == 202, start.text
    log = client.request("POST", "/api/v1/run_log/", {"run": run_uri, "content": "hi\n"})
    assert log.status_code == 201, log.text
    done = client.request("PATCH", run_uri, {"return_dts": utcnow().isoformat(),
                                             "return_success": True})
    assert done.status_code == 202, done.text
    assert client.get(run_uri)["return_success"] is True
    assert client.get(LIST)["objects"] == []


def test_a_release_wakes_a_waiting_worker_of_the_pool(world):
    """A run another worker gives back is enqueueable again: the waiter hears of it."""
    with world.live.database.Session() as session:
        factory = Factory(session)
        other = factory.worker(api_key="other-" + uuid.uuid4().hex[:12], secret=SECRET)
        pool = session.get(WorkerPool, world.pool_id)
        pool.workers.append(other)
        session.commit()
        other_uri, other_key = f"/api/v1/worker/{other.id}/", other.api_key
    run_id = world.add_run()
    other_client = SignedClient(world.live.server.base_url, other_key, SECRET)
    run_uri = f"/api/v1/run/{run_id}/"
    claim = other_client.request("PATCH", run_uri, {"enqueue_dts": utcnow().isoformat(),
                                                    "worker": other_uri})
    assert claim.status_code == 202, claim.text
    waiter = start_waiting(world, 10)
    # Back to the pool, for any of its workers.
    release = other_client.request("PATCH", run_uri, {"enqueue_dts": None, "start_dts": None,
                                                      "worker": None})
    released_at = time.time()
    assert release.status_code == 202, release.text
    waiter.join(timeout=5)
    assert waiter.result is not None and ids(waiter.result[1]) == [run_id]
    assert waiter.answered_at - released_at < 0.3


# --- the claim of several runs waits as the list does ----------------------------------


def test_a_claim_finding_runs_at_once_starts_them(world):
    run_id = world.add_run()
    response = world.client.request("POST", CLAIM, {"limit": 4, "start": True, "wait": 10})
    assert response.status_code == 200, response.text
    (claimed,) = response.json()["objects"]
    assert claimed["id"] == run_id and claimed["start_dts"] is not None
    assert claimed["worker"] == world.worker_uri


def test_runs_a_waiting_claim_finds_are_claimed_not_started(world):
    """The worker may have been asked to stop while it waited: a claimed run
    can still be given back, a started one not."""
    waiter = start_waiting(world, 10, claim={"limit": 4, "start": True})
    body, posted_at = answer_to_a_posted_run(world, waiter)
    (claimed,) = body["objects"]
    assert claimed["enqueue_dts"] is not None and claimed["start_dts"] is None
    assert claimed["worker"] == world.worker_uri and claimed["script_content"]
    assert waiter.answered_at - posted_at < 0.3
    stored = world.client.get(claimed["resource_uri"])
    assert stored["enqueue_dts"] is not None and stored["start_dts"] is None
    # It is given back as any claimed run is.
    release = world.client.request("PATCH", claimed["resource_uri"], {"enqueue_dts": None})
    assert release.status_code == 202, release.text


def test_a_claims_returns_are_stored_before_it_waits(world):
    run_id = world.add_run()
    run_uri = f"/api/v1/run/{run_id}/"
    claimed = world.client.request("POST", CLAIM, {"limit": 1, "start": True}).json()
    assert ids(claimed) == [run_id]
    waiter = start_waiting(world, 10, claim={"limit": 1, "returns": [
        {"run": run_uri, "return_dts": utcnow().isoformat(), "return_success": True}]})
    # Seen by others while the claim still waits.
    assert world.client.get(run_uri)["return_success"] is True
    assert waiter.is_alive()
    woken = world.add_run()
    waiter.join(timeout=5)
    status, body = waiter.result
    assert status == 200 and ids(body) == [woken]
    assert body["returns"] == [{"resource_uri": run_uri, "status": 202}]


def test_an_empty_claim_waits_out_its_wait(world):
    started = time.monotonic()
    response = world.client.request("POST", CLAIM, {"limit": 2, "start": True, "wait": 0.6})
    seconds = time.monotonic() - started
    assert response.status_code == 200
    assert response.json() == {"objects": [], "returns": []}
    assert 0.6 <= seconds < 2


def test_runs_falling_due_by_the_clock_are_claimed_once_by_the_claim_that_answers(world):
    """Several jobs' runs made ahead fall due together while the claim
    waits: the answer names every run claimed for the worker, no more."""
    due = utcnow() + timedelta(seconds=1.5)
    with world.live.database.Session() as session:
        factory = Factory(session)
        template = session.get(JobTemplate, world.template_id)
        pool = session.get(WorkerPool, world.pool_id)
        run_ids = [factory.run(factory.job(template, pool, script="#!/bin/sh\n"),
                               schedule_dts=due).id for _ in range(6)]
        session.commit()
    response = world.client.request("POST", CLAIM, {"limit": 4, "start": True, "wait": 10},
                                    timeout=20)
    assert response.status_code == 200, response.text
    answered = ids(response.json())
    assert len(answered) == 4 and set(answered) <= set(run_ids)
    claimed = [run["id"] for run in world.client.objects(
        f"/api/v1/run/?state=in_queue&worker__api_key={world.client.api_key}")]
    assert sorted(claimed) == sorted(answered)


def test_a_waiting_claim_whose_client_went_away_claims_nothing(world):
    """A worker stopped (or restarted) while its claim waited: the run that
    comes is left for the next claim, not taken for a process that is gone."""
    body = json.dumps({"limit": 4, "start": True, "wait": 10}).encode()
    signature = compute_signature(SECRET, "POST", CLAIM, body)
    host, port = world.live.server.base_url.removeprefix("http://").split(":")
    waiters = world.live.waiters
    before = waiters.count
    channels = world.live.server.server._map  # waitress's sockets
    known = set(channels.values())
    connection = socket.create_connection((host, int(port)))
    connection.sendall(
        f"POST {CLAIM} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: ApiKey {world.client.api_key}:{signature}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    wait_until(lambda: waiters.count >= before + 1, timeout=10, interval=0.01,
               message="the claim to wait")
    mine = [channel for channel in list(channels.values()) if channel not in known]
    assert mine
    connection.close()
    # Once waitress has seen the close (its loop runs on its own thread).
    wait_until(lambda: not any(getattr(channel, "connected", False) for channel in mine),
               timeout=10, interval=0.01, message="the server to see the close")
    run_id = world.add_run()
    wait_until(lambda: waiters.count == before, timeout=10, interval=0.01,
               message="the claim to end")
    stored = world.client.get(f"/api/v1/run/{run_id}/")
    assert stored["enqueue_dts"] is None and stored["worker"] is None
    # The next claim takes it.
    claimed = world.client.request("POST", CLAIM, {"limit": 4, "start": True}).json()
    assert ids(claimed) == [run_id]
