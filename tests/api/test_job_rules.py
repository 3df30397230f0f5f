"""The rules of a job and the shared value parsers, called directly; the
API and the loader tests see the same rules through their own doors."""
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest

from jobrunner.domain_errors import InvalidFields
from jobrunner.jobs import check_job, has_pending_run, parse_interval_type
from jobrunner.loader import load
from jobrunner.models import IntervalType, Job
from jobrunner.values import parse_addresses, parse_datetime, parse_time_of_day
from tests.conftest import uri

BERLIN = ZoneInfo("Europe/Berlin")


def broken_fields(dbsession, job, project):
    with pytest.raises(InvalidFields) as error:
        with dbsession.no_autoflush:
            check_job(dbsession, job, project)
    return error.value.errors


def test_a_valid_job_passes(world, dbsession):
    check_job(dbsession, world.job, world.project)


def test_pool_must_be_the_projects(world, factory, dbsession):
    world.job.worker_pool = factory.pool()
    errors = broken_fields(dbsession, world.job, world.project)
    assert set(errors) == {"worker_pool"} and "not one of the project's pools" in errors["worker_pool"]


def test_parent_in_the_project_and_no_cycle(world, factory, dbsession):
    other = factory.world()
    world.job.parent = other.job
    assert set(broken_fields(dbsession, world.job, world.project)) == {"parent"}
    child = factory.job(world.template, world.pool, parent=world.job, title="B")
    world.job.parent = child
    world.job.title = "A"
    errors = broken_fields(dbsession, world.job, world.project)
    assert errors == {"parent": "parent: the chain A -> B -> A is a cycle"}


def test_interval_needs_its_type_and_titles_are_unique(world, factory, dbsession):
    world.job.reschedule_interval = 2
    world.job.reschedule_interval_type = None
    assert set(broken_fields(dbsession, world.job, world.project)) == {"reschedule_interval_type"}
    world.job.reschedule_interval_type = IntervalType.DAY
    world.job.title = factory.job(world.template, world.pool).title
    assert set(broken_fields(dbsession, world.job, world.project)) == {"title"}


def test_pending_run(world, factory, dbsession):
    assert not has_pending_run(dbsession, world.job.id)
    run = factory.run(world.job)
    assert has_pending_run(dbsession, world.job.id)
    run.return_dts = run.schedule_dts
    dbsession.flush()
    assert not has_pending_run(dbsession, world.job.id)


@pytest.mark.parametrize("text", ["day", "DAY", "Day", " day "])
def test_interval_type_in_either_case(text):
    assert parse_interval_type(text) is IntervalType.DAY


@pytest.mark.parametrize("text", ["fortnight", "", 3])
def test_unknown_interval_type(text):
    with pytest.raises(ValueError):
        parse_interval_type(text)


def test_api_accepts_a_lower_case_interval_type(admin, world, dbsession):
    res = admin.patch(uri("job", world.job),
                      {"reschedule_interval": 1, "reschedule_interval_type": "day"})
    assert res.json["reschedule_interval_type"] == "DAY"
    dbsession.expire_all()
    assert dbsession.get(Job, world.job.id).reschedule_interval_type is IntervalType.DAY


def test_loader_accepts_a_lower_case_interval_type(world, dbsession):
    load(dbsession, {"jobs": [{"project": world.project.title, "title": world.job.title,
                               "reschedule_interval": 3, "reschedule_interval_type": "week"}]})
    assert world.job.reschedule_interval_type is IntervalType.WEEK


@pytest.mark.parametrize("value, expected", [
    ("2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
    ("2030-01-02 03:04:05+01:00", datetime(2030, 1, 2, 2, 4, 5, tzinfo=timezone.utc)),
    ("2030-01-02T04:04:05", datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),  # Berlin
    (date(2030, 7, 1), datetime(2030, 6, 30, 22, 0, tzinfo=timezone.utc)),
])
def test_one_datetime_parser(value, expected):
    assert parse_datetime(value, BERLIN) == expected


@pytest.mark.parametrize("value", ["soon", "", 5, None, "2030-13-01T00:00"])
def test_datetime_parser_refuses(value):
    with pytest.raises(ValueError):
        parse_datetime(value, BERLIN)


def test_time_of_day():
    assert parse_time_of_day(" 22:00 ") == time(22, 0)
    for value in ("25:00", "22:00+01:00", 1320):
        with pytest.raises(ValueError):
            parse_time_of_day(value)


def test_addresses_parsed_once():
    assert parse_addresses([" a@example.com", "", "b@example.com", "a@example.com"]) == [
        "a@example.com", "b@example.com"]
    for value in (["not an address"], ["a b@example.com"], "a@example.com", [5]):
        with pytest.raises(ValueError):
            parse_addresses(value)
