"""A worker learns from its own object what the server expects of it: the
ping interval and the limit after which it is called unresponsive."""
from jobrunner.models import Worker
from tests.api.conftest import assert_error
from tests.conftest import uri


def test_the_worker_object_carries_the_servers_ping_settings(app, world, as_worker):
    settings = app.registry.jobrunner_settings
    worker = as_worker(world.worker)
    listed = worker.get("/api/v1/worker/").json["objects"][0]
    detail = worker.get(uri("worker", world.worker)).json
    for body in (listed, detail):
        assert body["ping_interval"] == settings.ping_interval
        assert body["unresponsive_limit"] == settings.unresponsive_limit
    # The default settings: 60 s pings, unresponsive after 3 missed ones + 15 s.
    assert (detail["ping_interval"], detail["unresponsive_limit"]) == (60.0, 195.0)


def test_the_ping_settings_are_read_only_but_may_be_sent_back(world, as_worker, dbsession):
    worker = as_worker(world.worker)
    body = worker.get(uri("worker", world.worker)).json
    # The object as read goes back unchanged (a client may PUT back what it read).
    answer = worker.patch(uri("worker", world.worker),
                          {**body, "worker_version": "9.9"}).json
    assert answer["worker_version"] == "9.9"
    assert answer["ping_interval"] == body["ping_interval"]
    res = worker.patch(uri("worker", world.worker), {"ping_interval": 1}, status=400)
    assert_error(res, 400)
    assert res.json["errors"] == {"ping_interval": "This field is read-only."}
    res = worker.patch(uri("worker", world.worker), {"unresponsive_limit": "soon"}, status=400)
    assert res.json["errors"] == {"unresponsive_limit": "This field is read-only."}
    dbsession.expire_all()
    assert dbsession.get(Worker, world.worker.id).worker_version == "9.9"
