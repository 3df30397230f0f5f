"""The schedule fields of a job and the run's attempt and timed_out through
the REST API: every field, every error (a 400 naming the field, nothing
saved), the first run, and the schedule preview."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from jobrunner.models import Job, Run
from tests.conftest import now, uri

from .test_writes import job_body


def job_count(dbsession):
    return dbsession.scalar(select(func.count(Job.id)))


def runs_of(dbsession, job_id):
    return dbsession.scalars(select(Run).where(Run.job_id == job_id).order_by(Run.id)).all()


def test_new_fields_round_trip_with_defaults(admin, world):
    job = admin.post("/api/v1/job/", job_body(world)).json
    assert {k: job[k] for k in ("cron_expression", "timezone", "concurrency_policy", "timeout",
                                "retries", "retry_delay", "misfire_policy")} == {
        "cron_expression": None, "timezone": None, "concurrency_policy": "forbid", "timeout": None,
        "retries": 0, "retry_delay": 60, "misfire_policy": "skip"}
    assert "first_run_at" not in job
    changed = admin.patch(job["resource_uri"], {
        "cron_expression": "30 2 * * *", "timezone": "Europe/Amsterdam", "concurrency_policy": "replace",
        "timeout": 30, "retries": 3, "retry_delay": 5, "misfire_policy": "run_once"}).json
    assert changed["cron_expression"] == "30 2 * * *"
    assert changed["timezone"] == "Europe/Amsterdam"
    assert (changed["concurrency_policy"], changed["timeout"], changed["retries"],
            changed["retry_delay"], changed["misfire_policy"]) == ("replace", 30, 3, 5, "run_once")
    # A client may PUT back what it read.
    admin.put(job["resource_uri"], {k: v for k, v in changed.items()
                                    if k not in ("id", "resource_uri", "children", "script_content",
                                                 "fail_times", "last_completed_schedule_id")})


@pytest.mark.parametrize("fields, named", [
    ({"reschedule_interval": 1, "reschedule_interval_type": "HOUR", "cron_expression": "0 * * * *"},
     {"reschedule_interval", "cron_expression"}),
    ({"cron_expression": "61 * * * *"}, {"cron_expression"}),
    ({"cron_expression": "not cron"}, {"cron_expression"}),
    ({"cron_expression": ""}, {"cron_expression"}),
    ({"cron_expression": "0 * * * *", "timezone": "Mars/Olympus"}, {"timezone"}),
    ({"timeout": 0}, {"timeout"}),
    ({"timeout": -5}, {"timeout"}),
    ({"retries": -1}, {"retries"}),
    ({"retries": 11}, {"retries"}),
    ({"retry_delay": 0}, {"retry_delay"}),
    ({"concurrency_policy": "sometimes"}, {"concurrency_policy"}),
    ({"misfire_policy": "later"}, {"misfire_policy"}),
    ({"concurrency_policy": None}, {"concurrency_policy"}),
    ({"retries": "3"}, {"retries"}),
    ({"first_run_at": "tomorrow"}, {"first_run_at"}),
])
def test_invalid_schedule_fields_are_400s_naming_the_field_and_save_nothing(
        admin, world, dbsession, fields, named):
    before = job_count(dbsession)
    res = admin.post("/api/v1/job/", job_body(world, **fields), status=400)
    assert named <= set(res.json["errors"]), res.json
    assert job_count(dbsession) == before
    # The same on a PATCH of an existing job: nothing changes.
    stored = {c: getattr(world.job, c) for c in ("cron_expression", "timeout", "retries")}
    res = admin.patch(uri("job", world.job), fields, status=400)
    assert named <= set(res.json["errors"]), res.json
    dbsession.expire_all()
    assert {c: getattr(world.job, c) for c in stored} == stored
    assert runs_of(dbsession, world.job.id) == []


def test_first_run_at_schedules_the_first_run(admin, world, dbsession):
    when = (now() + timedelta(days=2)).replace(microsecond=0)
    job = admin.post("/api/v1/job/", job_body(
        world, reschedule_interval=1, reschedule_interval_type="DAY",
        first_run_at=when.isoformat())).json
    (run,) = runs_of(dbsession, job["id"])
    assert run.schedule_dts == when and not run.is_manual and run.attempt == 1
    # A job with its next run pending gets no second one.
    admin.patch(job["resource_uri"], {"reschedule_interval": 2})
    assert len(runs_of(dbsession, job["id"])) == 1


def test_first_run_is_the_next_cron_time_or_now_for_an_interval(admin, world, dbsession):
    before = now()
    cron = admin.post("/api/v1/job/", job_body(world, title="cron", cron_expression="0 3 * * *",
                                                timezone="Europe/Amsterdam")).json
    (run,) = runs_of(dbsession, cron["id"])
    local = run.schedule_dts.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Amsterdam"))
    assert (local.hour, local.minute) == (3, 0) and before < run.schedule_dts <= before + timedelta(days=1)
    interval = admin.post("/api/v1/job/", job_body(world, title="interval", reschedule_interval=5,
                                                    reschedule_interval_type="MINUTE")).json
    (run,) = runs_of(dbsession, interval["id"])
    assert before <= run.schedule_dts <= now()
    # No schedule: no run.
    plain = admin.post("/api/v1/job/", job_body(world, title="plain")).json
    assert runs_of(dbsession, plain["id"]) == []
    # Given a schedule later by PATCH: its first run.
    admin.patch(plain["resource_uri"], {"cron_expression": "@daily"})
    assert len(runs_of(dbsession, plain["id"])) == 1


def test_run_attempt_is_read_only_and_timed_out_only_with_the_return(
        admin, world, factory, as_worker):
    run = factory.run(world.job)
    client = as_worker(world.worker)
    body = client.get(uri("run", run)).json
    assert body["attempt"] == 1 and body["timed_out"] is False
    res = client.patch(uri("run", run), {"attempt": 2}, status=400)
    assert "attempt" in res.json["errors"]
    client.patch(uri("run", run), {"enqueue_dts": now().isoformat()})
    client.patch(uri("run", run), {"start_dts": now().isoformat(), "pid": 1})
    res = client.patch(uri("run", run), {"timed_out": True}, status=400)
    assert "timed_out" in res.json["errors"]
    # A user is not the holder.
    admin.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": False,
                                  "timed_out": True}, status=403)
    body = client.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": False,
                                          "timed_out": True}).json
    assert body["timed_out"] is True
    res = admin.post("/api/v1/run/", {"job": uri("job", world.job), "timed_out": True}, status=400)
    assert "timed_out" in res.json["errors"]


# --- the preview ---------------------------------------------------------------


def test_preview_of_a_cron_expression_in_a_time_zone(admin):
    res = admin.get("/api/v1/job/schedule_preview/?cron_expression=30+2+*+*+*"
                    "&timezone=Europe/Amsterdam&after=2027-03-27T00:00:00%2B00:00&count=3")
    assert res.json == {"times": ["2027-03-27T01:30:00+00:00", "2027-03-28T01:00:00+00:00",
                                  "2027-03-29T00:30:00+00:00"]}


def test_preview_of_an_interval_with_excludes_for_a_worker_too(world, as_worker):
    excludes = '[{"start_time": "02:00", "end_time": "03:59", "note": "backup"}]'
    res = as_worker(world.worker).get(
        "/api/v1/job/schedule_preview/?reschedule_interval=1&reschedule_interval_type=hour&timezone=UTC"
        f"&reschedule_excludes={excludes}&after=2030-01-01T00:00:00Z")
    assert res.json["times"] == ["2030-01-01T01:00:00+00:00", "2030-01-01T04:00:00+00:00",
                                 "2030-01-01T05:00:00+00:00", "2030-01-01T06:00:00+00:00",
                                 "2030-01-01T07:00:00+00:00"]


def test_preview_default_is_five_times_after_now(admin):
    times = admin.get("/api/v1/job/schedule_preview/?cron_expression=@hourly").json["times"]
    assert len(times) == 5 and times[0] > now().isoformat()


@pytest.mark.parametrize("query, named", [
    ("cron_expression=61+*+*+*+*", {"cron_expression"}),
    ("cron_expression=@daily&timezone=Nowhere/Land", {"timezone"}),
    ("cron_expression=@daily&reschedule_interval=1&reschedule_interval_type=DAY",
     {"cron_expression", "reschedule_interval"}),
    ("cron_expression=@daily&count=0", {"count"}),
    ("cron_expression=@daily&count=101", {"count"}),
    ("cron_expression=@daily&count=x", {"count"}),
    ("cron_expression=@daily&after=yesterday", {"after"}),
    ("reschedule_interval=1&reschedule_interval_type=YEAR", {"reschedule_interval_type"}),
    ("reschedule_interval=0&reschedule_interval_type=DAY", {"reschedule_interval"}),
    ("reschedule_interval=1&reschedule_interval_type=DAY&reschedule_excludes=nope",
     {"reschedule_excludes"}),
    ("", {"cron_expression", "reschedule_interval"}),
])
def test_preview_errors_are_400s_naming_the_field(admin, query, named):
    res = admin.get(f"/api/v1/job/schedule_preview/?{query}", status=400)
    assert named <= set(res.json["errors"]), res.json


def test_preview_needs_a_caller(anonymous):
    anonymous.get("/api/v1/job/schedule_preview/?cron_expression=@daily", status=401)
