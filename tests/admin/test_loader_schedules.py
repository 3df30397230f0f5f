"""The schedule keys of the set-up file: loaded, dumped, checked like the
API checks them (an invalid entry is named and nothing changes), and the
first run of a job with a schedule."""
import copy
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from jobrunner.loader import LoadError, dump, load, parse_yaml
from jobrunner.models import Job, Run

from .test_loader import SETUP_EXAMPLE, snapshot

SCHEDULE_KEYS = {
    "cron_expression": "30 2 * * *",
    "timezone": "Europe/Amsterdam",
    "concurrency_policy": "replace",
    "timeout": 120,
    "retries": 3,
    "retry_delay": 30,
    "misfire_policy": "run_once",
}


@pytest.fixture
def example():
    data = parse_yaml(SETUP_EXAMPLE)
    del data["users"][0]["password"]
    return data


def cron_example(example, **keys):
    job = example["jobs"][0]
    job["reschedule_interval"] = job["reschedule_interval_type"] = None
    job.update(SCHEDULE_KEYS, **keys)
    return example


def runs_of(dbsession, title):
    job = dbsession.scalar(select(Job).where(Job.title == title))
    return dbsession.scalars(select(Run).where(Run.job_id == job.id)).all()


def test_schedule_keys_load_and_dump(dbsession, example):
    load(dbsession, cron_example(example))
    dumped = dump(dbsession)["jobs"][0]
    assert {key: dumped[key] for key in SCHEDULE_KEYS} == SCHEDULE_KEYS
    # The dump loads back without a change.
    before = snapshot(dbsession)
    assert load(dbsession, copy.deepcopy(dump(dbsession))) == []
    assert snapshot(dbsession) == before


def test_defaults_are_dumped_for_a_job_without_the_keys(dbsession, example):
    load(dbsession, example)
    dumped = dump(dbsession)["jobs"][0]
    assert {key: dumped[key] for key in SCHEDULE_KEYS} == {
        "cron_expression": None, "timezone": None, "concurrency_policy": "forbid", "timeout": None,
        "retries": 0, "retry_delay": 60, "misfire_policy": "skip"}


@pytest.mark.parametrize("keys, named", [
    ({"reschedule_interval": 1, "reschedule_interval_type": "DAY"}, "reschedule_interval"),
    ({"cron_expression": "61 * * * *"}, "cron_expression"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timeout": 0}, "timeout"),
    ({"retries": 11}, "retries"),
    ({"retries": -1}, "retries"),
    ({"retry_delay": 0}, "retry_delay"),
    ({"concurrency_policy": "sometimes"}, "concurrency_policy"),
    ({"misfire_policy": "later"}, "misfire_policy"),
])
def test_invalid_schedule_keys_name_the_entry_and_change_nothing(dbsession, example, keys, named):
    load(dbsession, copy.deepcopy(example))
    before = snapshot(dbsession)
    with pytest.raises(LoadError) as error:
        load(dbsession, cron_example(example, **keys))
    assert "jobs[0] (Test job 1)" in str(error.value) and named in str(error.value)
    assert snapshot(dbsession) == before


def test_a_cron_job_without_schedule_dts_gets_its_next_cron_time(dbsession, example):
    del example["jobs"][0]["schedule_dts"]
    before = datetime.now(timezone.utc)
    changes = load(dbsession, cron_example(example))
    (run,) = runs_of(dbsession, "Test job 1")
    assert before < run.schedule_dts <= before + timedelta(days=1)
    assert any(change.action == "scheduled" for change in changes)
    # Loading again: the run is pending, nothing new.
    assert load(dbsession, cron_example(copy.deepcopy(example))) == []
    assert len(runs_of(dbsession, "Test job 1")) == 1


def test_an_interval_job_without_schedule_dts_runs_now(dbsession, example):
    del example["jobs"][0]["schedule_dts"]
    before = datetime.now(timezone.utc)
    load(dbsession, example)
    (run,) = runs_of(dbsession, "Test job 1")
    assert before <= run.schedule_dts <= datetime.now(timezone.utc)


def test_a_job_without_a_schedule_gets_no_run(dbsession, example):
    job = example["jobs"][0]
    del job["schedule_dts"]
    job["reschedule_interval"] = job["reschedule_interval_type"] = None
    load(dbsession, example)
    assert runs_of(dbsession, "Test job 1") == []
