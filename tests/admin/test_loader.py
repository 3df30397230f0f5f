"""The declarative set-up against the real database."""
import copy
from datetime import datetime, time, timedelta, timezone

import pytest
from sqlalchemy import delete, func, select

from jobrunner.loader import LoadError, dump, load, parse_yaml, to_yaml
from jobrunner.models import (
    Group,
    IntervalType,
    Job,
    JobTemplate,
    Project,
    RescheduleExclude,
    Run,
    User,
    Worker,
    WorkerPool,
)
from jobrunner.security.passwords import check_password

SETUP_EXAMPLE = """
groups: [Group 1, Group 2]
users:
  - {username: admin, password: admin, email: admin@example.com, groups: [Group 1], is_admin: false}
workers:
  - {title: Test worker 1, api_key: worker1, secret: verysecret}
worker_pools:
  - {title: Pool 1, workers: [worker1], notification_addresses: [pool1@example.com]}
projects:
  - title: Test project 1
    groups: [Group 1]          # viewers
    auth_groups: [Group 1]     # project admins
    worker_pools: [Pool 1]
    notification_addresses: [project1@example.com]
job_templates:
  - project: Test project 1
    title: Test template 1
    body: "#!/usr/bin/env python3\\n\\n{{ content }}\\n"
    notification_addresses: [template1@example.com]
jobs:
  - project: Test project 1
    job_template: Test template 1
    title: Test job 1
    worker_pool: Pool 1
    script_content_partial: print("Hello world")
    reschedule_interval: 1
    reschedule_interval_type: HOUR
    notification_addresses: [job1@example.com]
    parent: null               # or the title of a job of the same project
    reschedule_excludes:
      - {start_time: "22:00", end_time: "23:59", note: backups}
    schedule_dts: 2012-01-01T00:00:00+00:00   # optional: schedules a first run if the job has no pending run
"""

MODELS = (Group, User, Worker, WorkerPool, Project, JobTemplate, Job, RescheduleExclude, Run)


@pytest.fixture
def example():
    """The set-up example without the password: hashing is slow by design."""
    data = parse_yaml(SETUP_EXAMPLE)
    del data["users"][0]["password"]
    return data


def counts(dbsession):
    return {model.__name__: dbsession.scalar(select(func.count()).select_from(model))
            for model in MODELS}


def snapshot(dbsession):
    """Everything load may touch, including what dump leaves out."""
    dbsession.expire_all()
    state = dump(dbsession)
    state["password_hashes"] = sorted(dbsession.execute(
        select(User.username, User.password_hash)).all())
    state["scripts"] = sorted(dbsession.execute(select(Job.title, Job.script_content)).all())
    state["runs"] = sorted(dbsession.execute(
        select(Run.job_id, Run.schedule_dts, Run.is_manual)).all())
    state["counts"] = counts(dbsession)
    return state


def job_named(dbsession, title):
    return dbsession.scalar(select(Job).where(Job.title == title))


def test_spec_example_creates_everything(dbsession):
    changes = load(dbsession, parse_yaml(SETUP_EXAMPLE))
    assert len(changes) == 9  # 2 groups, user, worker, pool, project, template, job + its run

    user = dbsession.scalar(select(User).where(User.username == "admin"))
    assert check_password(user.password_hash, "admin")
    assert [g.name for g in user.groups] == ["Group 1"]
    assert user.is_admin is False and user.email == "admin@example.com"
    project = dbsession.scalar(select(Project).where(Project.title == "Test project 1"))
    assert [p.title for p in project.worker_pools] == ["Pool 1"]
    assert [g.name for g in project.auth_groups] == ["Group 1"]
    assert project.notification_addresses == "project1@example.com"
    pool = project.worker_pools[0]
    assert [w.api_key for w in pool.workers] == ["worker1"]

    job = job_named(dbsession, "Test job 1")
    assert job.script_content == '#!/usr/bin/env python3\n\nprint("Hello world")\n'
    assert job.reschedule_interval == 1 and job.reschedule_interval_type == IntervalType.HOUR
    assert [(e.start_time, e.end_time, e.note) for e in job.reschedule_excludes] == [
        (time(22, 0), time(23, 59), "backups")]
    runs = dbsession.scalars(select(Run).where(Run.job_id == job.id)).all()
    assert len(runs) == 1
    assert runs[0].schedule_dts == datetime(2012, 1, 1, tzinfo=timezone.utc)
    assert runs[0].is_manual is False and runs[0].schedule_id == runs[0].id


def test_loading_twice_changes_nothing(dbsession, example):
    load(dbsession, example)
    before = snapshot(dbsession)
    assert load(dbsession, copy.deepcopy(example)) == []
    assert snapshot(dbsession) == before


def test_changing_one_field_changes_only_that_field(dbsession, example):
    load(dbsession, example)
    before = snapshot(dbsession)
    example["jobs"][0]["reschedule_interval"] = 2
    changes = load(dbsession, example)
    assert [str(change) for change in changes] == [
        "updated job 'Test job 1' (project 'Test project 1'): reschedule_interval"]
    after = snapshot(dbsession)
    assert after["jobs"][0].pop("reschedule_interval") == 2
    assert before["jobs"][0].pop("reschedule_interval") == 1
    assert after == before


@pytest.mark.parametrize("section, index, field, value", [
    ("users", 0, "email", "other@example.com"),
    ("users", 0, "is_admin", True),
    ("users", 0, "groups", ["Group 1", "Group 2"]),
    ("workers", 0, "secret", "another secret"),
    ("workers", 0, "concurrent_jobs", 9),
    ("workers", 0, "enqueue_is_enabled", False),
    ("worker_pools", 0, "notification_addresses", []),
    ("worker_pools", 0, "description", "the pool"),
    ("projects", 0, "groups", []),
    ("projects", 0, "enqueue_is_enabled", False),
    ("job_templates", 0, "notification_addresses", ["a@example.com", "b@example.com"]),
    ("jobs", 0, "schedule_children_on_error", True),
    ("jobs", 0, "run_on_all_workers", True),
    ("jobs", 0, "disable_enqueue_after_fails", 3),
    ("jobs", 0, "enqueue_is_enabled", False),
    ("jobs", 0, "reschedule_interval", None),
    ("jobs", 0, "reschedule_excludes", []),
    ("jobs", 0, "reschedule_excludes", [{"start_time": "01:00", "end_time": "02:30:15",
                                         "note": ""}]),
])
def test_every_field_loads_and_dumps(dbsession, example, section, index, field, value):
    load(dbsession, example)
    example[section][index][field] = value
    changes = load(dbsession, example)
    assert len(changes) == 1 and changes[0].fields == (field,)
    dumped = dump(dbsession)[section][index][field]
    assert dumped == value
    assert load(dbsession, example) == []


def test_password_is_kept_when_it_still_verifies_and_when_left_out(dbsession, example):
    example["users"][0]["password"] = "admin"
    load(dbsession, example)
    assert load(dbsession, example) == []
    user = dbsession.scalar(select(User).where(User.username == "admin"))
    original = user.password_hash
    del example["users"][0]["password"]
    assert load(dbsession, example) == []
    assert user.password_hash == original

    example["users"][0]["password"] = "changed"
    changes = load(dbsession, example)
    assert changes[0].fields == ("password",)
    assert check_password(user.password_hash, "changed")
    assert "password" not in to_yaml(dump(dbsession))


def test_template_body_change_rerenders_every_job_of_the_template(dbsession, example, factory):
    load(dbsession, example)
    template = dbsession.scalar(select(JobTemplate).where(JobTemplate.title == "Test template 1"))
    pool = dbsession.scalar(select(WorkerPool).where(WorkerPool.title == "Pool 1"))
    outside = factory.job(template, pool, script="print(2)", title="Not in the file")
    example["job_templates"][0]["body"] = "#!/usr/bin/python3 -u\n{{ content }}\n"
    load(dbsession, example)
    assert job_named(dbsession, "Test job 1").script_content == (
        '#!/usr/bin/python3 -u\nprint("Hello world")\n')
    assert outside.script_content == "#!/usr/bin/python3 -u\nprint(2)\n"


def test_job_moves_to_another_template_of_its_project(dbsession, example):
    example["job_templates"].append({"project": "Test project 1", "title": "Shell",
                                     "body": "#!/bin/sh\n{{ content }}"})
    load(dbsession, example)
    job = job_named(dbsession, "Test job 1")
    job_id = job.id
    example["jobs"][0]["job_template"] = "Shell"
    example["jobs"][0]["script_content_partial"] = "echo moved"
    changes = load(dbsession, example)
    assert set(changes[0].fields) == {
        "job_template", "script_content_partial", "script_content"}
    job = job_named(dbsession, "Test job 1")
    assert job.id == job_id and job.job_template.title == "Shell"
    assert job.script_content == "#!/bin/sh\necho moved"
    assert dbsession.scalar(select(func.count()).select_from(Job)) == 1


def test_schedule_dts_only_when_no_run_is_pending(dbsession, example):
    example["jobs"][0]["schedule_dts"] = "2030-06-01 12:00"  # naive: local time
    load(dbsession, example, "Europe/Amsterdam")
    job = job_named(dbsession, "Test job 1")
    run = dbsession.scalar(select(Run).where(Run.job_id == job.id))
    assert run.schedule_dts == datetime(2030, 6, 1, 10, 0, tzinfo=timezone.utc)

    example["jobs"][0]["schedule_dts"] = datetime(2031, 1, 1)  # a YAML timestamp
    assert load(dbsession, example, "Europe/Amsterdam") == []
    run.return_dts = run.schedule_dts + timedelta(minutes=1)
    run.return_success = True
    dbsession.flush()
    changes = load(dbsession, example, "Europe/Amsterdam")
    assert [change.action for change in changes] == ["scheduled"]
    schedules = dbsession.scalars(
        select(Run.schedule_dts).where(Run.job_id == job.id).order_by(Run.id)).all()
    assert schedules[-1] == datetime(2030, 12, 31, 23, 0, tzinfo=timezone.utc)


def test_parents_resolve_across_the_file_and_chains_load_in_any_order(dbsession, example):
    base = example["jobs"][0]
    child = dict(base, title="Child", parent="Grandparent", schedule_dts=None)
    grandparent = dict(base, title="Grandparent", parent=None)
    example["jobs"] = [child, grandparent]
    base["parent"] = None
    load(dbsession, example)
    assert job_named(dbsession, "Child").parent.title == "Grandparent"
    assert load(dbsession, example) == []
    child["parent"] = None
    load(dbsession, example)
    assert job_named(dbsession, "Child").parent is None


def test_parent_cycle_is_rejected_and_changes_nothing(dbsession, example):
    base = example["jobs"][0]
    example["jobs"] = [dict(base, title="A", parent=None), dict(base, title="B", parent="A")]
    load(dbsession, example)
    before = snapshot(dbsession)
    example["jobs"][0]["parent"] = "B"
    with pytest.raises(LoadError) as error:
        load(dbsession, example)
    assert str(error.value) == "jobs[0] (A): parent: the chain A -> B -> A is a cycle"
    assert snapshot(dbsession) == before


def test_cycle_of_new_jobs_and_self_parent(dbsession, example):
    base = example["jobs"][0]
    example["jobs"] = [dict(base, title="A", parent="B"), dict(base, title="B", parent="A")]
    with pytest.raises(LoadError, match=r"jobs\[0\] \(A\): parent: the chain A -> B -> A"):
        load(dbsession, example)
    example["jobs"] = [dict(base, title="A", parent="A")]
    with pytest.raises(LoadError, match=r"jobs\[0\] \(A\): parent: the chain A -> A"):
        load(dbsession, example)
    assert counts(dbsession)["Job"] == 0


def test_pool_not_in_project(dbsession, example):
    example["worker_pools"].append({"title": "Pool 9"})
    example["jobs"].insert(0, dict(example["jobs"][0], title="Fine"))
    example["jobs"].insert(0, dict(example["jobs"][0], title="Also fine"))
    example["jobs"][2]["worker_pool"] = "Pool 9"
    with pytest.raises(LoadError) as error:
        load(dbsession, example)
    assert str(error.value) == (
        "jobs[2] (Test job 1): worker_pool 'Pool 9' is not one of the project's pools")
    assert counts(dbsession) == {model.__name__: 0 for model in MODELS}


def test_project_may_not_drop_a_pool_its_jobs_use(dbsession, example):
    load(dbsession, example)
    example["worker_pools"].append({"title": "Pool 2"})
    example["projects"][0]["worker_pools"] = ["Pool 2"]
    del example["jobs"]
    with pytest.raises(LoadError, match=r"projects\[0\] \(Test project 1\): worker_pools: "
                                        r"job 'Test job 1' still runs on pool 'Pool 1'"):
        load(dbsession, example)
    # Moving the job in the same file is fine.
    example["jobs"] = [{"project": "Test project 1", "title": "Test job 1",
                        "worker_pool": "Pool 2"}]
    load(dbsession, example)
    assert job_named(dbsession, "Test job 1").worker_pool.title == "Pool 2"


INVALID = [
    # (section, index, change, message)
    ("groups", 1, 7, "groups[1]: must be a string, not 7 (int) (quote it)"),
    ("users", 0, {"color": "red"}, "users[0] (admin): unknown key(s): color"),
    ("users", 0, {"groups": ["Group 9"]}, "users[0] (admin): groups: no group 'Group 9'"),
    ("users", 0, {"is_admin": "yes please"}, "users[0] (admin): is_admin: must be true or false"),
    ("users", 0, {"password": ""}, "users[0] (admin): password: must not be empty"),
    ("users", 0, {"password": 1234}, "users[0] (admin): password: must be a string"),
    ("workers", 0, {"concurrent_jobs": 0},
     "workers[0] (Test worker 1): concurrent_jobs: must be an integer of at least 1"),
    ("workers", 0, {"api_key": None}, "workers[0] (Test worker 1): api_key is required"),
    ("worker_pools", 0, {"workers": ["nobody"]},
     "worker_pools[0] (Pool 1): workers: no worker with api_key 'nobody'"),
    ("worker_pools", 0, {"notification_addresses": "a@example.com"},
     "worker_pools[0] (Pool 1): notification_addresses: must be a list"),
    ("projects", 0, {"worker_pools": ["Pool 9"]},
     "projects[0] (Test project 1): worker_pools: no worker pool 'Pool 9'"),
    ("projects", 0, {"auth_groups": "Group 1"},
     "projects[0] (Test project 1): auth_groups: must be a list"),
    ("job_templates", 0, {"project": "Nope"},
     "job_templates[0] (Test template 1): project: no project 'Nope'"),
    ("job_templates", 0, {"body": ["a"]},
     "job_templates[0] (Test template 1): body: must be a string"),
    ("jobs", 0, {"job_template": "Nope"},
     "jobs[0] (Test job 1): job_template: no template 'Nope' in project 'Test project 1'"),
    ("jobs", 0, {"parent": "Nope"},
     "jobs[0] (Test job 1): parent: no job 'Nope' in project 'Test project 1'"),
    ("jobs", 0, {"reschedule_interval": 0},
     "jobs[0] (Test job 1): reschedule_interval: must be an integer of at least 1 or null"),
    ("jobs", 0, {"reschedule_interval_type": "FORTNIGHT"},
     "jobs[0] (Test job 1): reschedule_interval_type: must be one of MINUTE, HOUR, DAY"),
    ("jobs", 0, {"reschedule_interval_type": None},
     "jobs[0] (Test job 1): reschedule_interval needs a reschedule_interval_type"),
    ("jobs", 0, {"reschedule_excludes": [{"start_time": "25:00", "end_time": "01:00"}]},
     "jobs[0] (Test job 1): reschedule_excludes: [0] start_time: must be a time of day"),
    ("jobs", 0, {"schedule_dts": "soon"},
     "jobs[0] (Test job 1): schedule_dts: must be an ISO 8601 datetime, not 'soon'"),
    ("jobs", 0, {"script_content": "x"},
     "jobs[0] (Test job 1): script_content: read-only, may not be loaded"),
    ("jobs", 0, {"disable_enqueue_after_fails": -1},
     "jobs[0] (Test job 1): disable_enqueue_after_fails: must be an integer of at least 0"),
]


@pytest.mark.parametrize("section, index, change, message", INVALID,
                         ids=[message.split(":")[0] + ":" + message.split(":")[1]
                              for *_, message in INVALID])
def test_invalid_entry_names_itself_and_changes_nothing(dbsession, example, section, index,
                                                         change, message):
    load(dbsession, example)
    example["users"][0]["email"] = "changed@example.com"  # a valid change before the error
    before_state = snapshot(dbsession)
    if isinstance(change, dict):
        example[section][index].update(change)
    else:
        example[section][index] = change
    with pytest.raises(LoadError) as error:
        load(dbsession, example)
    assert str(error.value).startswith(message)
    assert snapshot(dbsession) == before_state


@pytest.mark.parametrize("data, message", [
    ({"jobs": {"title": "x"}}, "jobs: must be a list"),
    ({"servers": []}, "unknown section(s): servers"),
    (["groups"], "the file must be a mapping"),
    ({"jobs": [{"project": "P"}]}, "jobs[0]: title is required"),
    ({"groups": ["A", "A"]}, "groups[1] (A): a second entry for the same object as groups[0] (A)"),
    ({"projects": [{"title": "P"}], "jobs": [{"project": "P", "title": "J"}]},
     "jobs[0] (J): job_template is required for a new job"),
    ({"workers": [{"api_key": "k", "secret": "s"}]},
     "workers[0]: title is required for a new worker"),
])
def test_invalid_file(dbsession, data, message):
    with pytest.raises(LoadError) as error:
        load(dbsession, data)
    assert str(error.value).startswith(message)
    assert counts(dbsession) == {model.__name__: 0 for model in MODELS}


def test_empty_file_and_empty_sections(dbsession):
    assert load(dbsession, None) == []
    assert load(dbsession, {"groups": None, "jobs": []}) == []


def test_entry_may_update_a_few_fields_only(dbsession, example):
    load(dbsession, example)
    changes = load(dbsession, {"jobs": [{"project": "Test project 1", "title": "Test job 1",
                                         "description": "Hourly greeting"}]})
    assert changes[0].fields == ("description",)
    job = job_named(dbsession, "Test job 1")
    assert job.reschedule_interval == 1 and len(job.reschedule_excludes) == 1


def test_unquoted_times_and_timestamps_in_yaml(dbsession, example):
    text = SETUP_EXAMPLE.replace('"22:00"', "22:00").replace('"23:59"', "23:59")
    load(dbsession, parse_yaml(text))
    exclude = job_named(dbsession, "Test job 1").reschedule_excludes[0]
    assert (exclude.start_time, exclude.end_time) == (time(22, 0), time(23, 59))


def test_yaml_syntax_error():
    with pytest.raises(LoadError, match="not valid YAML"):
        parse_yaml("jobs: [unclosed")


def test_dump_load_dump_is_stable(dbsession, example):
    example["jobs"].append(dict(example["jobs"][0], title="Child", parent="Test job 1",
                                schedule_dts=None, script_content_partial="print(1)\nprint(2)\n",
                                reschedule_excludes=[{"start_time": "00:00:30",
                                                      "end_time": "01:00", "note": "x"}]))
    load(dbsession, example)
    first = to_yaml(dump(dbsession))
    # Loading the dump into the same database changes nothing...
    assert load(dbsession, parse_yaml(first)) == []
    assert to_yaml(dump(dbsession)) == first
    assert "script_content_partial: |\n    print(1)\n    print(2)\n" in first  # literal blocks
    assert "password" not in first


def test_dump_loads_into_an_empty_database(connection, dbsession, example):
    """...and into an empty one (here: after deleting everything), where it
    recreates the objects and their pending schedules; users need a password
    set afterwards."""
    load(dbsession, example)
    text = to_yaml(dump(dbsession))
    for model in (Run, RescheduleExclude, Job, JobTemplate, Project, WorkerPool, Worker,
                  User, Group):
        dbsession.execute(delete(model))
    dbsession.expire_all()
    assert counts(dbsession) == {model.__name__: 0 for model in MODELS}
    load(dbsession, parse_yaml(text))
    assert to_yaml(dump(dbsession)) == text
    assert counts(dbsession)["Run"] == 1
