"""Webhooks: written with their event, sent by the scheduler to a real HTTP
server on loopback that fails, hangs and recovers."""
import hashlib
import hmac
import json
import threading
from datetime import time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import delete, select, update

from jobrunner.loader import LoadError, dump, load
from jobrunner.models import WebhookDelivery, get_engine, get_session_factory
from jobrunner.scheduling import webhooks
from jobrunner.scheduling.daemon import Scheduler
from jobrunner.scheduling.duties import alert_unresponsive_pools
from jobrunner.settings import Settings
from tests.conftest import now, uri
from tests.scheduling.conftest import long_ago, wait_until

SECRET = "webhook-test-secret"


class Endpoint:
    """An HTTP server whose answer per path is set by the test: a status
    code, or "hang" (no answer until released)."""

    def __init__(self):
        self.received = []
        self.modes = {}
        self.release = threading.Event()
        self.condition = threading.Condition()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                mode = endpoint.modes.get(self.path, 200)
                with endpoint.condition:
                    endpoint.received.append((self.path, body, dict(self.headers), mode))
                    endpoint.condition.notify_all()
                if mode == "hang":
                    endpoint.release.wait(30)
                    return
                self.send_response(mode)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def answered(self, path, mode=None):
        return [r for r in self.received if r[0] == path and (mode is None or r[3] == mode)]

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    server = Endpoint()
    yield server
    server.stop()


def bodies(dbsession, **where):
    query = select(WebhookDelivery).order_by(WebhookDelivery.id)
    for name, value in where.items():
        query = query.where(getattr(WebhookDelivery, name) == value)
    return dbsession.scalars(query).all()


# --- URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["ftp://example.com/x", "javascript:alert(1)", "example.com/hook",
                                 "http://", "https://exa mple.com/"])
def test_only_http_and_https_urls_are_accepted(as_user, factory, world, bad):
    admin = as_user(factory.user(is_admin=True))
    res = admin.patch(uri("job", world.job), {"webhook_urls": ["https://ok.example/", bad]}, status=400)
    assert "webhook_urls" in res.json["errors"]


def test_webhook_fields_through_the_api(as_user, factory, world):
    admin = as_user(factory.user(is_admin=True))
    job = admin.patch(uri("job", world.job), {
        "webhook_urls": "https://hooks.example/a\n\nhttp://hooks.example/b\n", "webhook_on_success": True,
    }).json
    assert job["webhook_urls"] == ["https://hooks.example/a", "http://hooks.example/b"]
    assert job["webhook_on_success"] is True
    assert admin.get(uri("project", world.project)).json["webhook_urls"] == []


def test_webhook_fields_in_the_loader_and_dump(dbsession):
    data = {
        "workers": [{"title": "w", "api_key": "hook-key", "secret": "s"}],
        "worker_pools": [{"title": "hook pool", "workers": ["hook-key"],
                          "webhook_urls": ["https://hooks.example/pool"]}],
        "projects": [{"title": "hook project", "worker_pools": ["hook pool"],
                      "webhook_urls": ["https://hooks.example/project"]}],
        "job_templates": [{"project": "hook project", "title": "t", "body": "#!/bin/sh\n",
                           "webhook_urls": ["https://hooks.example/template"]}],
        "jobs": [{"project": "hook project", "job_template": "t", "title": "j",
                  "worker_pool": "hook pool", "webhook_urls": ["https://hooks.example/job"],
                  "webhook_on_success": True}],
    }
    load(dbsession, data)
    dumped = dump(dbsession)
    [job] = [j for j in dumped["jobs"] if j["title"] == "j"]
    assert job["webhook_urls"] == ["https://hooks.example/job"]
    assert job["webhook_on_success"] is True
    assert [p for p in dumped["projects"] if p["title"] == "hook project"][0]["webhook_urls"] == [
        "https://hooks.example/project"]
    data["jobs"][0]["webhook_urls"] = ["file:///etc/passwd"]
    with pytest.raises(LoadError, match="webhook_urls"):
        load(dbsession, data)


# --- events write deliveries --------------------------------------------------------


def hooked_world(world):
    world.job.webhook_urls = "https://hooks.example/job\nhttps://hooks.example/shared"
    world.template.webhook_urls = "https://hooks.example/shared"
    world.project.webhook_urls = "https://hooks.example/project"
    world.pool.webhook_urls = "https://hooks.example/pool"
    return ["https://hooks.example/job", "https://hooks.example/shared",
            "https://hooks.example/project", "https://hooks.example/pool"]


def work_and_return(client, run, success):
    client.patch(uri("run", run), {"enqueue_dts": now().isoformat()})
    client.patch(uri("run", run), {"start_dts": now().isoformat(), "pid": 1})
    client.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": success})


def test_a_failed_run_writes_one_delivery_per_url(world, factory, as_worker, dbsession):
    urls = hooked_world(world)
    run = factory.run(world.job)
    work_and_return(as_worker(world.worker), run, False)
    deliveries = bodies(dbsession, event="run_failed")
    assert [d.url for d in deliveries] == urls
    body = json.loads(deliveries[0].body)
    assert body["event"] == "run_failed"
    assert "\n" not in body["text"] and world.job.title in body["text"]
    assert body["job"]["id"] == world.job.id
    assert body["run"]["id"] == run.id and body["run"]["return_success"] is False
    assert body["project"]["title"] == world.project.title
    assert body["url"] == f"http://jobrunner.example/runs/{run.id}"


def test_a_success_writes_deliveries_only_with_webhook_on_success(world, factory, as_worker, dbsession):
    hooked_world(world)
    client = as_worker(world.worker)
    work_and_return(client, factory.run(world.job), True)
    assert bodies(dbsession) == []
    world.job.webhook_on_success = True
    dbsession.flush()
    work_and_return(client, factory.run(world.job), True)
    assert {d.event for d in bodies(dbsession)} == {"run_succeeded"}


def test_a_failed_reschedule_writes_deliveries(world, factory, as_worker, dbsession):
    job = factory.job(world.template, world.pool, reschedule_interval=1, reschedule_interval_type="DAY",
                      excludes=[(time(0, 0), time(23, 59, 59, 999999))],
                      webhook_urls="https://hooks.example/reschedule")
    work_and_return(as_worker(world.worker), factory.run(job), True)
    [delivery] = bodies(dbsession, event="reschedule_failed")
    assert json.loads(delivery.body)["url"] == f"http://jobrunner.example/jobs/{job.id}"


def test_an_unresponsive_pool_writes_deliveries(factory, dbsession, scheduler_settings, mail_tx):
    pool = factory.pool(workers=[factory.worker(ping_response_dts=long_ago())],
                        webhook_urls="https://hooks.example/pool")
    with mail_tx.tm:
        alert_unresponsive_pools(dbsession, now(), Settings.from_mapping(scheduler_settings),
                                 mail_tx.context)
    [delivery] = bodies(dbsession, event="pool_unresponsive")
    assert json.loads(delivery.body)["pool"]["id"] == pool.id


# --- delivery ----------------------------------------------------------------------------


@pytest.fixture
def hook_settings(scheduler_settings):
    return {**scheduler_settings, "jobrunner.webhook_secret": SECRET, "jobrunner.webhook_timeout": "0.5"}


@pytest.fixture
def outbox(database_url):
    """A committing session; the deliveries it made are deleted at the end."""
    engine = get_engine({"sqlalchemy.url": database_url})
    session = get_session_factory(engine)()
    made = []

    def add(url, text="hello"):
        [delivery] = webhooks.queue(session, [url], "run_failed", text, "http://x/runs/1")
        session.commit()
        made.append(delivery.id)
        return delivery.id

    add.session = session
    yield add
    session.rollback()
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(made)))
    session.commit()
    session.close()
    engine.dispose()


def delivery(outbox, delivery_id):
    # A new transaction each time: an old snapshot would never see the sender's commits.
    outbox.session.rollback()
    outbox.session.expire_all()
    return outbox.session.get(WebhookDelivery, delivery_id)


def make_due(outbox, delivery_id):
    outbox.session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                           .values(next_attempt_dts=now() - timedelta(seconds=1)))
    outbox.session.commit()


@pytest.fixture
def scheduler(hook_settings):
    engines = []

    def make():
        engine = get_engine(hook_settings)
        engines.append(engine)
        return Scheduler(get_session_factory(engine), Settings.from_mapping(hook_settings), None)

    yield make
    for engine in engines:
        engine.dispose()


def test_deliveries_fail_hang_recover_and_are_never_repeated(endpoint, outbox, scheduler):
    flaky = outbox(endpoint.url("/flaky"), text="flaky")
    steady = outbox(endpoint.url("/steady"), text="steady")
    endpoint.modes["/flaky"] = 500
    sender = scheduler().webhooks

    sender.deliver_due()
    wait_until(lambda: delivery(outbox, flaky).attempts == 1 and delivery(outbox, steady).delivered_dts,
               message="first attempts")
    first = delivery(outbox, flaky)
    assert (first.last_status, first.delivered_dts, first.failed_dts) == (500, None, None)
    # Retried after about ten seconds, not before.
    wait_ahead = (first.next_attempt_dts - now()).total_seconds()
    assert 8 < wait_ahead <= 10.5
    assert sender.deliver_due() == 0

    # The endpoint hangs: the attempt times out, and the sender is free again.
    endpoint.modes["/flaky"] = "hang"
    make_due(outbox, flaky)
    other = outbox(endpoint.url("/steady"), text="during the hang")
    sender.deliver_due()
    wait_until(lambda: delivery(outbox, other).delivered_dts, message="delivery beside a hanging one")
    wait_until(lambda: delivery(outbox, flaky).attempts == 2, message="the hanging attempt to end")
    second = delivery(outbox, flaky)
    assert "Timeout" in second.last_error and second.last_status is None
    assert 18 < (second.next_attempt_dts - now()).total_seconds() <= 20.5

    # It recovers: one more attempt, delivered, and never sent again.
    endpoint.modes["/flaky"] = 200
    make_due(outbox, flaky)
    sender.deliver_due()
    wait_until(lambda: delivery(outbox, flaky).delivered_dts, message="the recovered delivery")
    make_due(outbox, flaky)  # even when asked to: a delivered row is not due
    assert sender.deliver_due() == 0
    wait_until(sender.idle, message="idle senders")
    assert len(endpoint.answered("/flaky", 200)) == 1
    assert len(endpoint.answered("/steady")) == 2

    path, body, headers, _ = endpoint.answered("/flaky", 200)[0]
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-JobRunner-Signature"] == f"sha256={expected}"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["text"] == "flaky"


def test_a_restart_loses_no_delivery(endpoint, outbox, scheduler):
    lost = outbox(endpoint.url("/after-restart"))
    # A scheduler leases the delivery and dies before sending it.
    first = scheduler()
    taken = first.in_transaction(lambda s: webhooks.take_due(s, now(), 10))
    assert [row[0] for row in taken if row[0] == lost] == [lost]
    assert delivery(outbox, lost).next_attempt_dts > now()
    # The lease runs out; the next scheduler sends it.
    make_due(outbox, lost)
    second = scheduler()
    second.webhooks.deliver_due()
    wait_until(lambda: delivery(outbox, lost).delivered_dts, message="delivery after the restart")
    assert len(endpoint.answered("/after-restart")) == 1


def test_retries_go_on_for_more_than_an_hour_then_give_up(outbox):
    delays = [webhooks.retry_delay(n) for n in range(1, webhooks.MAX_ATTEMPTS)]
    assert delays[:3] == [10, 20, 40]
    assert sum(delays) > 3600
    given_up = outbox("http://127.0.0.1:9/never")
    session = outbox.session
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id == given_up)
                    .values(attempts=webhooks.MAX_ATTEMPTS - 1))
    webhooks.store_outcome(session, given_up, 503, "HTTP 503", now())
    session.commit()
    row = delivery(outbox, given_up)
    assert row.failed_dts is not None and row.attempts == webhooks.MAX_ATTEMPTS
    assert webhooks.take_due(session, now() + timedelta(days=1), 100) == [] or all(
        r[0] != given_up for r in webhooks.take_due(session, now() + timedelta(days=1), 100))
    session.rollback()


def test_two_schedulers_never_send_one_delivery_twice(postgres_only, endpoint, outbox, hook_settings):
    from tests.scheduling.conftest import SchedulerThreads

    ids = [outbox(endpoint.url(f"/race/{n}")) for n in range(24)]
    with SchedulerThreads(hook_settings, 2):
        wait_until(lambda: all(delivery(outbox, i).delivered_dts for i in ids), message="all deliveries")
    paths = [r[0] for r in endpoint.received if r[0].startswith("/race/")]
    assert sorted(paths) == sorted(f"/race/{n}" for n in range(24))


def test_the_webhooks_page(as_user, factory, world, dbsession):
    webhooks.queue(dbsession, ["https://hooks.example/page"], "run_failed", "t", "u")
    dbsession.flush()
    admin = as_user(factory.user(is_admin=True))
    page = admin.get("/admin/webhooks")
    assert "https://hooks.example/page" in page.text and "pending" in page.text
    as_user(factory.user(groups=[world.admins])).get("/admin/webhooks", status=403)
