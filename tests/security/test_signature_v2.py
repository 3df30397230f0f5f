"""Signature v2: HMAC-SHA256 with a timestamp and a nonce, no replay."""
import time

import pytest
from sqlalchemy import func, select

from jobrunner.models import Worker
from jobrunner.models.security import RequestNonce
from jobrunner.signing import v1_header, v2_header
from tests.api.conftest import HOST, assert_error
from tests.conftest import uri


def send(testapp, worker, method, path, body=b"", **signing):
    header = v2_header(worker.api_key, signing.pop("secret", worker.secret),
                       signing.pop("sign_method", method), signing.pop("sign_path", path),
                       signing.pop("sign_body", body), **signing)
    headers = {"Authorization": header, "Host": HOST}
    if body:
        headers["Content-Type"] = "application/json"
    return testapp.request(path, method=method, body=body, headers=headers, expect_errors=True), header


def resend(testapp, method, path, header, body=b""):
    headers = {"Authorization": header, "Host": HOST}
    if body:
        headers["Content-Type"] = "application/json"
    return testapp.request(path, method=method, body=body, headers=headers, expect_errors=True)


def test_a_v2_request_is_accepted(world, testapp):
    res, _ = send(testapp, world.worker, "GET", "/api/v1/worker/?limit=5")
    assert res.status_int == 200, res.text
    assert [w["api_key"] for w in res.json["objects"]] == [world.worker.api_key]


def test_a_replayed_request_is_401(world, testapp):
    path = "/api/v1/run/?state=enqueueable"
    res, header = send(testapp, world.worker, "GET", path)
    assert res.status_int == 200
    assert_error(resend(testapp, "GET", path, header), 401)


def test_a_replayed_write_changes_nothing(world, testapp, dbsession):
    path = uri("worker", world.worker)
    body = b'{"worker_version": "2.0"}'
    res, header = send(testapp, world.worker, "PATCH", path, body)
    assert res.status_int == 202
    dbsession.execute(Worker.__table__.update().values(worker_version="1.0"))
    assert_error(resend(testapp, "PATCH", path, header, body), 401)
    dbsession.expire_all()
    assert dbsession.get(Worker, world.worker.id).worker_version == "1.0"


def test_a_refused_request_uses_its_nonce_too(world, testapp, factory):
    # A claim refused now (409) must not succeed when replayed later.
    run = factory.run(world.job, enqueue_dts=None)
    other = factory.worker()
    world.pool.workers.append(other)
    factory.db.flush()
    path = uri("run", run)
    body = b'{"enqueue_dts": "2030-01-01T00:00:00+00:00"}'
    first, _ = send(testapp, other, "PATCH", path, b'{"enqueue_dts": "2029-01-01T00:00:00+00:00"}')
    assert first.status_int == 202
    res, header = send(testapp, world.worker, "PATCH", path, body)
    assert res.status_int == 409
    assert_error(resend(testapp, "PATCH", path, header, body), 401)


@pytest.mark.parametrize("skew", [-301, 301, -10**6])
def test_a_timestamp_far_from_the_servers_clock_is_401(world, testapp, skew):
    res, _ = send(testapp, world.worker, "GET", "/api/v1/worker/", timestamp=int(time.time()) + skew)
    assert_error(res, 401)


def test_a_timestamp_within_the_window_is_accepted(world, testapp):
    res, _ = send(testapp, world.worker, "GET", "/api/v1/worker/", timestamp=int(time.time()) - 250)
    assert res.status_int == 200


@pytest.mark.parametrize("tamper", [
    {"secret": "wrong"}, {"sign_method": "POST"}, {"sign_path": "/api/v1/worker/?x=1"},
    {"sign_body": b'{"worker_version": "9"}'},
])
def test_a_wrong_signature_is_401(world, testapp, tamper):
    res, _ = send(testapp, world.worker, "PATCH", uri("worker", world.worker),
                  b'{"worker_version": "1"}', **tamper)
    assert_error(res, 401)


@pytest.mark.parametrize("nonce", ["short", "x" * 65, "has space in it!!", "bad/nonce+chars=0123"])
def test_a_malformed_nonce_is_401(world, testapp, nonce):
    res, _ = send(testapp, world.worker, "GET", "/api/v1/worker/", nonce=nonce)
    assert_error(res, 401)


def test_the_same_nonce_of_another_worker_is_its_own(world, testapp, factory):
    other = factory.worker()
    nonce = "shared-nonce-0123456789"
    assert send(testapp, world.worker, "GET", "/api/v1/worker/", nonce=nonce)[0].status_int == 200
    assert send(testapp, other, "GET", "/api/v1/worker/", nonce=nonce)[0].status_int == 200


def test_nonces_are_remembered_in_the_database(world, testapp, dbsession):
    before = dbsession.scalar(select(func.count()).select_from(RequestNonce))
    send(testapp, world.worker, "GET", "/api/v1/worker/")
    assert dbsession.scalar(select(func.count()).select_from(RequestNonce)) == before + 1


def test_v1_is_refused_when_switched_off(database_url, mail_sink, factory, connection):
    import webtest

    from jobrunner import main
    from tests.conftest import app_settings

    app = main({}, **app_settings(database_url, mail_sink.port, **{"jobrunner.accept_v1_signatures": "false"}))
    app.registry["dbsession_factory"] = factory_for(connection)
    worker = factory.worker()
    client = webtest.TestApp(app, extra_environ={"HTTP_HOST": HOST})
    v1 = v1_header(worker.api_key, worker.secret, "GET", "/api/v1/worker/")
    assert_error(client.get("/api/v1/worker/", headers={"Authorization": v1}, expect_errors=True), 401)
    res, _ = send(client, worker, "GET", "/api/v1/worker/")
    assert res.status_int == 200


def factory_for(connection):
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


def test_a_v1_signature_is_no_csrf_exemption_when_wrong(world, admin, dbsession):
    # A browser session sending a made-up ApiKey header gets nothing: the
    # header decides who is asking, and an invalid one is nobody.
    res = admin.request("PATCH", uri("job", world.job), {"description": "x"}, csrf=False,
                        headers={"Authorization": "ApiKey nobody:00"})
    assert_error(res, 401)


def test_old_nonces_are_purged(world, testapp, dbsession):
    from datetime import timedelta

    from jobrunner.security import nonces
    from tests.conftest import now

    # Old nonces go once in nonces.PRUNE_EVERY seconds, with the request
    # that finds the last purge that old (as the next one here will).
    nonces._last_prune[0] = time.monotonic() - nonces.PRUNE_EVERY - 1
    dbsession.add(RequestNonce(worker_id=world.worker.id, nonce="old-nonce-0123456789",
                               seen_dts=now() - timedelta(hours=1)))
    dbsession.flush()
    assert send(testapp, world.worker, "GET", "/api/v1/worker/")[0].status_int == 200
    dbsession.expire_all()
    kept = dbsession.scalars(select(RequestNonce.nonce).where(RequestNonce.worker_id == world.worker.id)).all()
    assert "old-nonce-0123456789" not in kept and len(kept) == 1


def test_old_nonces_stay_until_the_next_purge_is_due(world, testapp, dbsession):
    from datetime import timedelta

    from jobrunner.security import nonces
    from tests.conftest import now

    nonces._last_prune[0] = time.monotonic()
    dbsession.add(RequestNonce(worker_id=world.worker.id, nonce="old-nonce-0123456789",
                               seen_dts=now() - timedelta(hours=1)))
    dbsession.flush()
    assert send(testapp, world.worker, "GET", "/api/v1/worker/")[0].status_int == 200
    dbsession.expire_all()
    kept = dbsession.scalars(select(RequestNonce.nonce).where(RequestNonce.worker_id == world.worker.id)).all()
    assert "old-nonce-0123456789" in kept and len(kept) == 2
