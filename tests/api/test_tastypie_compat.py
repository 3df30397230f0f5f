"""What Tastypie clients send: range lookups, repeated __in, is_manual on
POST, X-HTTP-Method-Override signed either way."""
import pytest

from jobrunner.models import Run
from tests.api.conftest import assert_error
from tests.conftest import now


@pytest.mark.parametrize("query", [
    "is_manual__gt=0", "return_success__lt=true", "schedule_children__gte=false",
    "is_manual__lte=1",
])
def test_range_lookups_on_booleans_are_400(admin, world, query):
    body = assert_error(admin.get(f"/api/v1/run/?{query}", status=400), 400)
    assert query.split("=")[0] in body["errors"]


def test_range_lookup_on_a_boolean_of_a_job_is_400(admin, world):
    assert_error(admin.get("/api/v1/job/?enqueue_is_enabled__gte=false", status=400), 400)


def test_range_lookups_on_a_related_boolean_are_400(admin, world):
    assert_error(admin.get("/api/v1/run/?job__enqueue_is_enabled__gt=0", status="*"), 400)


def test_repeated_in_is_a_union(admin, world, factory):
    runs = [factory.run(world.job) for _ in range(3)]
    ids = [r.id for r in runs]
    res = admin.get(f"/api/v1/run/?id__in={ids[0]}&id__in={ids[2]}")
    assert sorted(o["id"] for o in res.json["objects"]) == [ids[0], ids[2]]
    res = admin.get(f"/api/v1/run/?id__in={ids[0]},{ids[1]}&id__in={ids[2]}")
    assert sorted(o["id"] for o in res.json["objects"]) == ids


def test_post_run_with_is_manual_true(admin, world, dbsession):
    res = admin.post("/api/v1/run/", {"job": world.job.id, "is_manual": True})
    assert res.status_int == 201 and res.json["is_manual"] is True
    assert dbsession.get(Run, res.json["id"]).is_manual


def test_post_run_with_is_manual_false_is_400(admin, world):
    assert_error(admin.post("/api/v1/run/", {"job": world.job.id, "is_manual": False}, status=400), 400)


@pytest.mark.parametrize("when", ["1900-01-01T00:00:00+00:00", "9999-12-31T00:00:00+00:00",
                                  "2200-01-01T00:00:00+00:00"])
def test_a_schedule_far_from_now_is_400(admin, world, factory, when, dbsession):
    body = assert_error(admin.post("/api/v1/run/", {"job": world.job.id, "schedule_dts": when},
                                   status=400), 400)
    assert "schedule_dts" in body["errors"]
    run = factory.run(world.job)
    before = run.schedule_dts
    assert_error(admin.patch(f"/api/v1/run/{run.id}/", {"schedule_dts": when}, status=400), 400)
    dbsession.expire_all()
    assert dbsession.get(Run, run.id).schedule_dts == before


def test_a_schedule_next_year_is_fine(admin, world):
    when = now().replace(year=now().year + 1).isoformat()
    assert admin.post("/api/v1/run/", {"job": world.job.id, "schedule_dts": when}).status_int == 201


@pytest.mark.parametrize("title", ["two\nlines", "carriage\rreturn", "crlf\r\nSubject: x"])
def test_line_breaks_in_titles_are_400(admin, world, title):
    body = assert_error(admin.patch(f"/api/v1/job/{world.job.id}/", {"title": title}, status=400), 400)
    assert "title" in body["errors"]
