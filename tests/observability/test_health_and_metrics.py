"""GET /healthz and GET /metrics, against known data."""
import dataclasses
import socket
import threading
import time
from datetime import timedelta

import pytest
import webtest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from jobrunner import main
from jobrunner.models import Run, RunPurgeTally
from tests.conftest import app_settings, now

TOKEN = "metrics-token-0123456789"


# --- /healthz -------------------------------------------------------------------


def test_healthz_answers_ok_without_authentication(testapp):
    res = testapp.get("/healthz", status=200)
    assert res.json == {"status": "ok"}


def test_healthz_is_503_when_the_database_refuses(mail_sink):
    app = main({}, **app_settings("postgresql://postgres@127.0.0.1:1/nothing", mail_sink.port))
    res = webtest.TestApp(app).get("/healthz", status=503)
    assert res.json == {"status": "unavailable"}


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never says a word: a hung
    database as a client sees it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_healthz_is_503_within_the_limit_when_the_database_hangs(mail_sink, silent_server):
    url = f"postgresql://postgres@127.0.0.1:{silent_server}/hung"
    testapp = webtest.TestApp(main({}, **app_settings(url, mail_sink.port)))
    for _ in range(2):  # the second check does not wait for the hung probe again
        started = time.monotonic()
        res = testapp.get("/healthz", status=503)
        assert res.json == {"status": "unavailable"}
        assert time.monotonic() - started < 3.5


# --- /metrics --------------------------------------------------------------------


@pytest.fixture
def metrics_app(app, connection):
    original = app.registry.jobrunner_settings
    app.registry.jobrunner_settings = dataclasses.replace(original, metrics_token=TOKEN)
    yield webtest.TestApp(app)
    app.registry.jobrunner_settings = original


def scrape(testapp, token=TOKEN, status=200):
    return testapp.get("/metrics", headers={"Authorization": f"Bearer {token}"}, status=status)


def samples(res):
    found = {}
    for family in text_string_to_metric_families(res.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_are_404_without_a_token_setting(testapp):
    testapp.get("/metrics", status=404)
    testapp.get("/metrics", headers={"Authorization": "Bearer anything"}, status=404)


def test_metrics_need_the_right_bearer_token(metrics_app):
    metrics_app.get("/metrics", status=401)
    scrape(metrics_app, token="wrong", status=401)
    res = metrics_app.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}, status=401)
    assert res.headers["WWW-Authenticate"].startswith("Bearer")
    res = scrape(metrics_app)
    assert res.content_type == "text/plain"


def test_run_and_worker_metrics_count_the_database(metrics_app, factory, dbsession):
    world = factory.world()
    # Baseline: other tests' committed data may be there on PostgreSQL.
    before = samples(scrape(metrics_app))
    job = world.job
    t = now()
    factory.run(job, schedule_dts=t - timedelta(minutes=10))                     # due, oldest
    factory.run(job, schedule_dts=t - timedelta(minutes=1))                      # due
    factory.run(job, schedule_dts=t + timedelta(hours=1))                        # scheduled, not due
    factory.run(job, schedule_dts=t - timedelta(minutes=5), enqueue_dts=t, worker=world.worker)
    factory.run(job, schedule_dts=t - timedelta(minutes=5), enqueue_dts=t, start_dts=t,
                worker=world.worker)
    factory.run(job, schedule_dts=t - timedelta(hours=2), enqueue_dts=t, start_dts=t,
                return_dts=t, return_success=True, worker=world.worker)
    for _ in range(2):
        factory.run(job, schedule_dts=t - timedelta(hours=2), enqueue_dts=t, start_dts=t,
                    return_dts=t, return_success=False, worker=world.worker)
    # A run of a disabled job is scheduled but not due.
    disabled = factory.job(world.template, world.pool, enqueue_is_enabled=False)
    factory.run(disabled, schedule_dts=t - timedelta(hours=3))
    factory.worker(title="fresh", ping_response_dts=t)
    factory.worker(title="silent", ping_response_dts=t - timedelta(hours=1))
    factory.worker(title="never", ping_response_dts=None)
    factory.worker(title="off", enqueue_is_enabled=False, ping_response_dts=t - timedelta(seconds=3))
    dbsession.execute(update(RunPurgeTally).where(RunPurgeTally.result == "failure")
                      .values(count=RunPurgeTally.count + 5))
    dbsession.flush()

    after = samples(scrape(metrics_app))

    def grew(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0)

    assert grew("jobrunner_runs", state="scheduled") == 4
    assert grew("jobrunner_runs", state="in_queue") == 1
    assert grew("jobrunner_runs", state="started") == 1
    assert grew("jobrunner_runs_due") == 2
    assert grew("jobrunner_runs_completed_total", result="success") == 1
    assert grew("jobrunner_runs_completed_total", result="failure") == 2 + 5
    assert grew("jobrunner_workers", state="responsive") == 1
    assert grew("jobrunner_workers", state="unresponsive") == 2
    assert grew("jobrunner_workers", state="disabled") == 1
    # The oldest due run may be older elsewhere in a shared database: at least ten minutes.
    assert 600 <= after[("jobrunner_oldest_due_run_age_seconds", ())] < 3600 * 24 * 365
    ping = after[("jobrunner_worker_last_ping_age_seconds", (("worker", "silent"),))]
    assert 3590 < ping < 3700
    assert ("jobrunner_worker_last_ping_age_seconds", (("worker", "never"),)) not in after


def test_oldest_due_run_age_is_zero_without_due_runs(metrics_app, dbsession):
    # In the test's transaction nothing else is due once every pending run is moved away.
    dbsession.execute(update(Run).where(Run.return_dts.is_(None))
                      .values(schedule_dts=now() + timedelta(days=1)))
    dbsession.flush()
    after = samples(scrape(metrics_app))
    assert after[("jobrunner_runs_due", ())] == 0
    assert after[("jobrunner_oldest_due_run_age_seconds", ())] == 0


def test_http_metrics_count_requests_by_method_and_status(metrics_app):
    before = samples(scrape(metrics_app))
    metrics_app.get("/healthz")
    metrics_app.get("/api/v1/", status=401)
    metrics_app.get("/api/v1/", status=401)
    after = samples(scrape(metrics_app))

    def grew(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("jobrunner_http_requests_total", method="GET", status="401") == 2
    # The scrape before this one counts too.
    assert grew("jobrunner_http_requests_total", method="GET", status="200") == 2
    assert grew("jobrunner_http_request_duration_seconds_count") == 4
    assert after[("jobrunner_http_request_duration_seconds_bucket", (("le", "+Inf"),))] >= 4
