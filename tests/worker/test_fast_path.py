"""The worker's fast path against the real server (see test_daemon for the
set-up): it waits on the enqueueable list, so a run made while it is idle
is claimed at once whatever its poll_interval; the wait delays neither kill
requests nor pings nor a stop; and a server that refuses `wait` or
`log_content` gets the original steps."""
import signal
import subprocess
import sys
import time

import pytest

from jobrunner.api.waiting import REGISTRY_KEY
from jobrunner.models import utcnow
from jobrunner.worker import protocol
from jobrunner.worker.run import KILLED_NOTE

from .test_daemon import REPO_ROOT, SECRET, SignedClient, live, start_daemon, world  # noqa: F401
from .test_executor import wait_for


def waiting_count(world):
    """Lists the server holds open (a stopped daemon's may still be among them)."""
    return world.live.tap.app.registry[REGISTRY_KEY].count


@pytest.fixture(autouse=True)
def no_waiters_left(world):
    """A stopped daemon's list may still wait on the server: each test
    starts once none does, so the count above is its own daemon's."""
    wait_for(lambda: waiting_count(world) == 0, timeout=30)


def lists(world):
    return world.requests("GET", "/api/v1/run/?state=enqueueable")


def test_an_idle_worker_claims_a_new_run_at_once(world, start_daemon):
    """poll_interval is 30 s: only the list's wait can bring the run in time."""
    job = world.add_job("#!/bin/sh\necho quick\n")
    running = start_daemon(poll_interval=30, poll_wait=3)
    wait_for(lambda: waiting_count(world) >= 1)
    before = len(world.claims())
    run = world.add_run(job, schedule_dts=utcnow())
    wait_for(lambda: world.returned(run))
    stored = world.run(run)
    # Generous for a busy machine; polling would take up to 30 s.
    assert (stored.enqueue_dts - stored.schedule_dts).total_seconds() < 3
    assert running.stop() == 0
    # Every claim waits but one that carries a return (that one is answered
    # at once: its run's slot is free now).
    assert all(body["wait"] == 3 for body in world.claims() if not body.get("returns"))
    assert all("wait" not in body for body in world.claims() if body.get("returns"))
    # The answer that brought the run, and at most the next wait begun.
    assert len(world.claims()) - before <= 2


def test_kill_requests_and_pings_keep_their_pace_while_the_list_waits(world, start_daemon):
    job = world.add_job("#!/bin/sh\necho going\nsleep 300\n")
    run = world.add_run(job)
    # One slot free beside the run: the claimer waits on the list meanwhile.
    running = start_daemon(concurrent_jobs=2, poll_interval=0.2, ping_interval=0.2, poll_wait=10)
    wait_for(lambda: world.log_of(run) == "going\n")
    wait_for(lambda: waiting_count(world) >= 1)
    pings_before = len(world.requests("PATCH", world.worker_uri))
    client = SignedClient(world.live.base_url, world.api_key, SECRET)
    asked = time.monotonic()
    response = client.request("POST", "/api/v1/kill_request/", {"run": f"/api/v1/run/{run.id}/"})
    assert response.status_code == 201, response.text
    wait_for(lambda: world.returned(run))
    assert time.monotonic() - asked < 5
    assert KILLED_NOTE in world.log_of(run)
    assert len(world.requests("PATCH", world.worker_uri)) > pings_before
    assert running.stop() == 0


def test_a_stop_does_not_wait_for_the_list(world, start_daemon):
    running = start_daemon(poll_wait=10)
    wait_for(lambda: waiting_count(world) >= 1)
    asked = time.monotonic()
    assert running.stop() == 0
    assert time.monotonic() - asked < 3


def test_a_server_refusing_wait_is_polled(world, start_daemon):
    """An older server answers 400 naming `wait`: the worker lists without
    it every poll_interval from then on."""
    world.without_claim_of_several()
    world.live.tap.add_rule(
        "GET", "/api/v1/run/?state=enqueueable", answers=[400],
        answer_body={"error": "Filtering on 'wait' is not allowed.",
                     "errors": {"wait": "Filtering on 'wait' is not allowed."}},
    )
    job = world.add_job("#!/bin/sh\necho polled\n")
    running = start_daemon(poll_interval=0.1, poll_wait=25)
    wait_for(lambda: len(lists(world)) >= 3)
    run = world.add_run(job)
    wait_for(lambda: world.returned(run))
    assert running.stop() == 0
    listed = lists(world)
    assert listed[0].status == 400 and "wait=" in listed[0].path
    assert all(r.status == 200 and "wait=" not in r.path for r in listed[1:])
    assert world.log_of(run) == "polled\n"


def test_poll_wait_zero_polls(world, start_daemon):
    world.without_claim_of_several()
    job = world.add_job("#!/bin/sh\necho polled\n")
    running = start_daemon(poll_interval=0.1, poll_wait=0)
    run = world.add_run(job)
    wait_for(lambda: world.returned(run))
    assert running.stop() == 0
    assert lists(world) and all("wait=" not in r.path for r in lists(world))


def test_the_job_comes_from_the_claims_answer_when_it_carries_it():
    answer = {"resource_uri": "/api/v1/run/1/", "script_content": "#!/bin/sh\n",
              "job_title": "nightly", "job_timeout": 30}
    assert protocol.job_in_claim(answer) == {
        "script_content": "#!/bin/sh\n", "title": "nightly", "timeout": 30}
    # An older server's answer: the job is fetched.
    assert protocol.job_in_claim({"resource_uri": "/api/v1/run/1/"}) is None
    assert protocol.job_in_claim({"script_content": None, "job_title": "", "job_timeout": None}) is None
    assert protocol.job_in_claim({"script_content": "x"}) is None


def test_the_lists_read_timeout_outlasts_its_wait():
    fast_path = protocol.FastPath(25)
    assert fast_path.list_timeout(30) > 25
    assert protocol.FastPath(0).list_timeout(30) == 30
    assert protocol.enqueueable_runs(3, 0.5) == {"state": "enqueueable", "limit": 3, "wait": "0.5"}
    assert protocol.enqueueable_runs(3) == {"state": "enqueueable", "limit": 3}


def test_sigterm_while_the_list_waits_stops_the_process_at_once(live, world, tmp_path):  # noqa: F811
    ini = tmp_path / "worker.ini"
    ini.write_text(
        "[jobrunner_worker]\n"
        f"api_base_url = {live.base_url}/\n"
        f"api_key = {world.api_key}\nsecret = {SECRET}\n"
        f"script_temp_path = {tmp_path}\n"
        "poll_wait = 10\nping_interval = 0.5\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "jobrunner.worker", "--config-path", str(ini)],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: waiting_count(world) >= 1, timeout=30)
        asked = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - asked < 3
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
