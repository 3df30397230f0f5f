"""The stack under a steady load of short runs while a fault strikes: the
database away, the server SIGKILLed, two servers on one database, a worker
SIGKILLed, the mail server and a webhook endpoint down or hanging. What must
hold after each: no run executed twice, none lost (docs/reliability.md)."""
import json
import random
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy.engine import make_url

from jobrunner.models import KillRequest, WebhookDelivery
from jobrunner.worker.run import KILLED_NOTE, RESTARTED_NOTE

from bench.stack import free_port, wait_until

from .conftest import LOAD_SECONDS, RATE, backends, long_only
from .harness import UNRESPONSIVE_LIMIT, Probe, Silent

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

# Seconds a run may take beyond its due time and the fault before it counts
# as lost.
ALLOWED = 60


def under_way(load, count=3):
    """Waits until `count` runs of the load returned: the load is going."""
    wait_until(lambda: sum(1 for run in load.runs().values() if run.return_dts) >= count,
               timeout=60, interval=0.1, message="the load to be under way")


def settle(load, last_due):
    load.wait_settled(timeout=max(0.0, last_due - time.time()) + ALLOWED)


def assert_exactly_once(figures):
    assert figures["executed_twice"] == 0, figures
    assert figures["lost"] == 0, figures


def started_load(fault, stack, schedulers=1, base_urls=(None, None), **load_options):
    for number in range(schedulers):
        stack.start_scheduler(name=f"scheduler{number + 1}")
    load = fault.load(stack, **load_options)
    fault.start_workers(load, base_urls=base_urls)
    last_due = load.schedule(LOAD_SECONDS, RATE)
    return load, last_due


@pytest.mark.parametrize("how", long_only("stopped", ["restart", "terminated"]))
@pytest.mark.parametrize("database, rep", backends(sqlite_applies=False))
def test_postgres_away(fault, database, rep, how):
    """PostgreSQL restarted (pg_ctl restart -m fast), stopped for longer than
    the unresponsive limit, or every backend of the database terminated."""
    stack = fault.stack()
    load, last_due = started_load(fault, stack)
    probe = Probe(stack.base_url, load.workers[0])
    probe.start()
    under_way(load)
    if how == "restart":
        fault.cluster.restart()
    elif how == "stopped":
        fault.cluster.stop()
        time.sleep(UNRESPONSIVE_LIMIT + 1)  # the outage itself
        fault.cluster.start()
    else:
        assert fault.cluster.terminate_backends(make_url(stack.database_url).database) > 0
    fault_end = time.time()
    settle(load, last_due)
    load.scheduler_expands()
    probe.stop()

    figures = load.figures(fault_end)
    figures["answers"] = dict(probe.statuses())
    fault.record(f"postgres {how}", figures)
    assert not probe.bad_answers(), probe.bad_answers()[:5]
    assert_exactly_once(figures)
    assert figures["failed"] == 0, figures
    assert all(proc.poll() is None for proc in stack.processes), "a process died"


@pytest.mark.parametrize("database, rep", backends())
def test_server_sigkilled(fault, database, rep):
    """The server SIGKILLed at random moments and started again at once
    (within the unresponsive limit, here 30 s: a server that stays away
    longer has its workers judged unresponsive, see docs/reliability.md)."""
    stack = fault.stack(**{"jobrunner.worker.unresponsive_after_intervals": "29"})
    load, last_due = started_load(fault, stack)
    probe = Probe(stack.base_url, load.workers[0])
    probe.start()
    under_way(load)
    rng = random.Random()
    for _ in range(2):
        time.sleep(rng.uniform(0.2, 1.5))  # a random moment of the load
        stack.kill_server()
        stack.start_server()
    fault_end = time.time()
    settle(load, last_due)
    probe.stop()

    figures = load.figures(fault_end)
    runs = load.runs().values()
    figures["claim_to_start_max_s"] = round(max(
        (run.start_dts - run.enqueue_dts).total_seconds() for run in runs if run.start_dts), 2)
    fault.record("server SIGKILL", figures)
    assert not probe.bad_answers(), probe.bad_answers()[:5]
    assert_exactly_once(figures)
    assert figures["failed"] == 0, figures


@pytest.mark.parametrize("database, rep", backends())
def test_two_servers_on_one_database(fault, database, rep, mail_sink):
    """Two server processes and two schedulers on one database, each worker
    on its own server; kill requests made through the other server, and
    worker 2 SIGKILLed, so both schedulers reach for its runs."""
    stack = fault.stack()
    second = f"http://127.0.0.1:{free_port()}"
    stack.start_server(port=int(second.rsplit(":", 1)[1]), name="server2")
    load, last_due = started_load(fault, stack, schedulers=2, base_urls=(None, second))
    # A run of worker 1 (on the first server), killed on a request that
    # worker 1 learns of through the first server while the second server
    # and its worker go on.
    long_job = load.add_job("sleep 60")
    long_run = load.run_now(long_job, worker_id=load.workers[0].id)
    wait_until(lambda: all(run.start_dts for run in load.runs_of_job(long_job)), timeout=60,
               message="the long run's start")
    with stack.Session() as session:
        session.add(KillRequest(run_id=long_run, schedule_dts=datetime.now(timezone.utc)))
        session.commit()
    under_way(load)
    wait_until(lambda: all(run.return_dts for run in load.runs_of_job(long_job)), timeout=60,
               message="the killed run's return")
    load.kill_worker(2)
    # Back after the unresponsive limit: the schedulers have settled its runs.
    time.sleep(UNRESPONSIVE_LIMIT + 1.5)
    load.start_worker(2, base_url=second)
    fault_end = time.time()
    settle(load, last_due)
    # A run-on-all-workers run pinned to a worker not yet heard of again
    # would be failed: the expansion waits for worker 2's ping.
    load.wait_pinged(fault_end, [2])
    load.scheduler_expands()

    figures = load.figures(fault_end, interrupted_ok=True)
    fault.record("two servers", figures)
    assert_exactly_once(figures)
    [killed] = load.runs_of_job(long_job)
    assert killed.return_dts and not killed.return_success
    with stack.Session() as session:
        [request] = session.query(KillRequest).filter_by(run_id=killed.id).all()
        assert request.execute_dts is not None
    assert KILLED_NOTE in load.log_of(killed.id)
    [mails] = wait_until(lambda: failure_mails_at_least(load, mail_sink, figures["failed"]),
                         timeout=30, message="one failure mail for each failed run")
    assert sorted(mails) == sorted(set(mails)), "a failed run was mailed twice"


def failure_mails_at_least(load, mail_sink, count):
    """The run ids of the load's failure mails, in a list (truthy even when
    there are none), once there are `count`; else None."""
    mails = [run_id for run_id in load.failure_mails(mail_sink) if run_id in load.run_ids]
    return [mails] if len(mails) >= count else None


@pytest.mark.parametrize("database, rep", backends())
def test_worker_sigkilled_and_back_with_the_same_key(fault, database, rep, mail_sink):
    """Worker 1 is back at once (its own recovery settles its runs); worker 2
    after the unresponsive limit (the scheduler settles them)."""
    stack = fault.stack()
    load, last_due = started_load(fault, stack)
    under_way(load)
    load.kill_worker(1)
    load.kill_worker(2)
    load.start_worker(1)
    time.sleep(UNRESPONSIVE_LIMIT + 1.5)  # worker 2 stays away
    load.start_worker(2)
    fault_end = time.time()
    settle(load, last_due)

    figures = load.figures(fault_end, interrupted_ok=True)
    fault.record("worker SIGKILL", figures)
    assert_exactly_once(figures)
    [mails] = wait_until(lambda: failure_mails_at_least(load, mail_sink, figures["failed"]),
                         timeout=30, message="one failure mail for each failed run")
    # Returned by the worker's recovery or by the scheduler, never both: one
    # return, so one failure mail, per run.
    assert sorted(mails) == sorted(figures["failed_ids"]), "failure mails and failed runs differ"
    for run_id in figures["failed_ids"]:
        log = load.log_of(run_id)
        assert RESTARTED_NOTE in log or "unresponsive" in log, log


@pytest.mark.parametrize("how", long_only("closed", ["hanging"]))
@pytest.mark.parametrize("database, rep", backends())
def test_mail_and_webhooks_down(fault, database, rep, how):
    """Every run fails (a mail and a webhook each) while the SMTP port is
    closed or hangs and the webhook endpoint hangs."""
    smtp = Silent() if how == "hanging" else None
    endpoint = Silent()
    try:
        stack = fault.stack(mail_port=smtp.port if smtp else free_port(),
                            **{"jobrunner.webhook_timeout": "1"})
        load, last_due = started_load(
            fault, stack, failing=True, webhook_url=f"http://127.0.0.1:{endpoint.port}/hook")
        probe = Probe(stack.base_url, load.workers[0])
        probe.start()
        settle(load, last_due)
        fault_end = time.time()
        probe.stop()
    finally:
        endpoint.close()
        if smtp:
            smtp.close()

    figures = load.figures(fault_end)
    figures["recovery_s"] = None  # the fault lasts the whole load
    fault.record(f"SMTP {how}, webhook hanging", figures)
    assert figures["executed_twice"] == 0 and figures["lost"] == 0, figures
    assert figures["failed"] == figures["submitted"], figures
    # The claim latency is recorded, not judged here: on a shared machine it
    # follows the machine's load (test_mail.py shows that a hanging mail
    # server holds up no request).
    assert not probe.bad_answers(), probe.bad_answers()[:5]
    wait_until(lambda: "could not send" in stack.log_of(stack.server), timeout=60,
               message="the failed mail in the server's log")
    with stack.Session() as session:
        deliveries = session.query(WebhookDelivery).all()
        events = [(d.event, d.url, (json.loads(d.body).get("run") or {}).get("id"))
                  for d in deliveries]
        assert len(events) == len(set(events)), "an event has two deliveries"
        assert len(deliveries) >= figures["failed"]
