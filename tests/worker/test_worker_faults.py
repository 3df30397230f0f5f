"""The worker against the real server when things go wrong on its side: an
ini that pings too rarely, a run the server no longer counts as the
worker's, the server's clock. The daemon runs in a thread; the server is
the real app under waitress (the fixtures of test_daemon)."""

import logging
import time
from datetime import datetime, timezone

from jobrunner.models import Run
from jobrunner.scheduling.runs import append_log, mark_returned
from jobrunner.worker.clock import ServerClock

from .test_daemon import live, start_daemon, world  # noqa: F401 (fixtures)
from .test_executor import is_alive, wait_for

SCHEDULER_NOTE = "[jobrunner scheduler] the worker was unresponsive; returned as failed.\n"


def test_a_worker_pings_as_often_as_the_server_expects_whatever_its_ini_says(
        world, start_daemon):
    running = start_daemon(ping_interval=60)
    pings = lambda: world.requests("PATCH", world.worker_uri)  # noqa: E731
    wait_for(pings)
    first = time.monotonic()
    # The server of these tests expects a ping every 0.5 s.
    wait_for(lambda: len(pings()) >= 5, timeout=5)
    # Every 0.5 s, give or take the machine's load; at the ini's 60 s, four
    # more pings would take four minutes.
    assert time.monotonic() - first < 20
    assert running.daemon.server_ping_interval == 0.5
    assert running.daemon.ping_interval == 0.5
    assert running.stop() == 0


def test_the_ini_s_interval_holds_when_it_is_shorter(world, start_daemon):
    running = start_daemon(ping_interval=0.2)
    wait_for(lambda: running.daemon.worker is not None)
    assert running.daemon.ping_interval == 0.2
    assert running.stop() == 0


def fail_as_the_scheduler_does(world, run):
    """What the scheduler does to a run of a worker it gave up on."""
    with world.live.Session() as session:
        stored = session.get(Run, run.id)
        mark_returned(session, stored, datetime.now(timezone.utc), False)
        append_log(session, stored, SCHEDULER_NOTE)
        session.commit()


def started_pid(world, run):
    stored = world.run(run)
    return stored.pid if stored.start_dts is not None else None


def run_patches_after(world, run, count):
    return world.run_patches(run)[count:]


def test_a_silent_run_failed_by_the_server_is_killed_at_once(world, start_daemon, caplog):
    caplog.set_level(logging.INFO, logger="jobrunner.worker")
    job = world.add_job("#!/bin/sh\nsleep 300\n")
    run = world.add_run(job)
    running = start_daemon()
    pid = wait_for(lambda: started_pid(world, run))
    handler = wait_for(lambda: running.daemon._handlers.get(f"/api/v1/run/{run.id}/"))
    wait_for(lambda: handler.start_confirmed_at is not None)
    patches = len(world.run_patches(run))

    fail_as_the_scheduler_does(world, run)
    wait_for(lambda: not is_alive(pid), timeout=5)
    wait_for(lambda: running.daemon.active_run_count == 0)
    said = [r.getMessage() for r in caplog.records if "is no longer this worker's" in r.getMessage()]
    assert said == [f"run /api/v1/run/{run.id}/ is no longer this worker's (the server no longer "
                    f"lists it as this worker's started run): killed its process group {pid}"]
    # Nothing more was reported: the log keeps the scheduler's reason.
    assert run_patches_after(world, run, patches) == []
    assert world.log_of(run) == SCHEDULER_NOTE
    assert world.run(run).return_success is False

    # The worker goes on.
    following = world.add_run(world.add_job("#!/bin/sh\necho next\n"))
    wait_for(lambda: world.returned(following))
    assert world.run(following).return_success is True
    assert running.stop() == 0


def test_a_refused_log_update_kills_the_run_at_once(world, start_daemon, caplog, live):
    caplog.set_level(logging.INFO, logger="jobrunner.worker")
    job = world.add_job("#!/bin/sh\nwhile true; do echo tick; sleep 0.05; done\n")
    run = world.add_run(job)
    running = start_daemon()
    pid = wait_for(lambda: started_pid(world, run))
    wait_for(lambda: world.log_of(run))
    # The next log update is refused as the server refuses that of a run
    # another holds.
    live.tap.add_rule("PATCH", "/api/v1/run_log/", answers=(403,))

    wait_for(lambda: not is_alive(pid), timeout=5)
    messages = [r.getMessage() for r in caplog.records]
    assert f"run /api/v1/run/{run.id}/ is no longer this worker's (log update refused: 403): " \
           f"killed its process group {pid}" in messages
    wait_for(lambda: running.daemon.active_run_count == 0)
    # Neither the final log nor a return was sent.
    assert not [p for p in world.run_patches(run) if "return_dts" in p]
    assert not [entry for body in world.claims() for entry in body.get("returns", [])]
    assert world.run(run).return_dts is None
    assert running.stop() == 0


def test_a_refused_start_runs_no_script(world, start_daemon, caplog, live, tmp_path):
    """The start is stored before the script runs: a run whose start is
    refused (another worker holds it now) never runs here."""
    world.without_claim_of_several()
    caplog.set_level(logging.INFO, logger="jobrunner.worker")
    marker = tmp_path / "ran"
    job = world.add_job(f"#!/bin/sh\ntouch {marker}\nsleep 300\n")
    run = world.add_run(job)
    live.tap.add_rule("PATCH", f"/api/v1/run/{run.id}/", body_key="start_dts", answers=(409,))
    running = start_daemon()
    wait_for(lambda: [r.getMessage() for r in caplog.records
                      if "(start refused: 409); not running it" in r.getMessage()])
    wait_for(lambda: running.daemon.active_run_count == 0, timeout=5)
    assert not marker.exists()
    assert [p for p in world.run_patches(run) if "start_dts" in p]
    assert not [p for p in world.run_patches(run) if "return_dts" in p or "pid" in p]
    assert running.stop() == 0


def test_the_server_clock_is_learned_from_the_date_header():
    clock = ServerClock()
    # Sent at 1000.0 and answered at 1000.2 by a server that said 1600 s
    # (a Date header of whole seconds): the server is about 600.4 s ahead.
    assert clock.learn("Thu, 01 Jan 1970 00:26:40 GMT", 1000.0, 1000.2)
    assert abs(clock.offset - 600.4) < 1e-6
    # An answer that allows the offset in use: kept, so durations stay steady.
    assert not clock.learn("Thu, 01 Jan 1970 00:26:41 GMT", 1000.5, 1000.6)
    assert abs(clock.offset - 600.4) < 1e-6
    # A slow answer (ten seconds on the way) teaches nothing either.
    assert not clock.learn("Thu, 01 Jan 1970 00:26:45 GMT", 1000.0, 1010.0)
    assert abs(clock.offset - 600.4) < 1e-6
    # A clock that jumped: the new offset is taken.
    assert clock.learn("Thu, 01 Jan 1970 00:26:40 GMT", 1100.0, 1100.2)
    assert abs(clock.offset - 500.4) < 1e-6
    # No header, or a bad one: nothing learned.
    assert not clock.learn(None, 0, 0)
    assert not clock.learn("yesterday", 0, 0)
    assert abs(clock.time() - (time.time() + 500.4)) < 1
