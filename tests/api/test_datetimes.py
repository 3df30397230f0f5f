"""Datetimes on the API: ISO 8601 out, several spellings in.

The test settings put jobrunner.timezone at Europe/Amsterdam (UTC+1 in
winter, UTC+2 in summer).
"""
from urllib.parse import urlencode

import pytest

from jobrunner.models import Worker
from tests.api.conftest import assert_error
from tests.conftest import uri, utc


def test_output_is_iso_8601_with_offset_and_microseconds(admin, world, factory):
    run = factory.run(world.job, schedule_dts=utc(2013, 1, 1, 0, 0, 0, 123456))
    whole = factory.run(world.job, schedule_dts=utc(2013, 1, 1))
    assert admin.get(uri("run", run)).json["schedule_dts"] == "2013-01-01T00:00:00.123456+00:00"
    assert admin.get(uri("run", whole)).json["schedule_dts"] == "2013-01-01T00:00:00+00:00"
    assert admin.get(uri("run", whole)).json["enqueue_dts"] is None


@pytest.mark.parametrize("sent, stored", [
    ("2013-06-01T12:00:00+02:00", utc(2013, 6, 1, 10)),
    ("2013-06-01 12:00:00+02:00", utc(2013, 6, 1, 10)),
    ("2013-06-01T10:00:00Z", utc(2013, 6, 1, 10)),
    ("2013-06-01T10:00:00+00:00", utc(2013, 6, 1, 10)),
    ("2013-06-01T05:30:00-04:30", utc(2013, 6, 1, 10)),
    # Without an offset: local time in Europe/Amsterdam.
    ("2013-06-01T12:00:00", utc(2013, 6, 1, 10)),
    ("2013-06-01 12:00:00", utc(2013, 6, 1, 10)),
    ("2013-01-01 12:00:00", utc(2013, 1, 1, 11)),
    ("2013-01-01T12:00:00.250000", utc(2013, 1, 1, 11, 0, 0, 250000)),
    ("2013-06-01T12:00:00.123456+02:00", utc(2013, 6, 1, 10, 0, 0, 123456)),
])
def test_input_spellings(world, admin, dbsession, sent, stored):
    # An administrator's PATCH: a worker's own ping takes the server's clock.
    res = admin.patch(uri("worker", world.worker), {"ping_response_dts": sent})
    dbsession.expire_all()
    assert dbsession.get(Worker, world.worker.id).ping_response_dts == stored
    assert res.json["ping_response_dts"] == stored.isoformat()


@pytest.mark.parametrize("sent", [
    "2013-13-01T00:00:00", "2013-01-01T25:00:00", "yesterday", "", "2013-01-01T00:00:00+25:00",
    12345, True, ["2013-01-01"], {"date": "2013-01-01"}, "0001-01-01T00:00:00+01:00",
])
def test_bad_datetimes_are_400_and_change_nothing(world, as_worker, dbsession, sent):
    before = world.worker.ping_response_dts
    body = assert_error(
        as_worker(world.worker).patch(uri("worker", world.worker), {"ping_response_dts": sent}, status=400),
        400,
    )
    assert "ping_response_dts" in body["errors"]
    dbsession.expire_all()
    assert dbsession.get(Worker, world.worker.id).ping_response_dts == before


def test_microseconds_survive_a_round_trip(world, admin):
    sent = "2031-02-03T04:05:06.000007+00:00"
    admin.patch(uri("worker", world.worker), {"ping_response_dts": sent})
    assert admin.get(uri("worker", world.worker)).json["ping_response_dts"] == sent


@pytest.mark.parametrize("value", [
    "2013-01-01T00:00:00+00:00",
    "2013-01-01 00:00:00+00:00",
    "2013-01-01T01:00:00+01:00",
    "2013-01-01T01:00:00",  # Amsterdam, winter
    "2013-01-01 01:00:00",
])
def test_filter_values_in_every_spelling(admin, world, factory, value):
    run = factory.run(world.job, schedule_dts=utc(2013, 1, 1))
    factory.run(world.job, schedule_dts=utc(2013, 1, 1, 1))
    query = urlencode({"job": world.job.id, "schedule_dts": value})
    objects = admin.get(f"/api/v1/run/?{query}").json["objects"]
    assert [o["id"] for o in objects] == [run.id]
