"""List filters: lookups, relation paths, project_id, run states, bad filters."""
from urllib.parse import urlencode

import pytest

from jobrunner.models import KillRequest
from tests.api.conftest import assert_error
from tests.conftest import uri, utc


def ids(client, path, **params):
    query = ("&" if "?" in path else "?") + urlencode(params) if params else ""
    res = client.get(path + query)
    assert res.status_int == 200, res.text
    return sorted(o["id"] for o in res.json["objects"])


@pytest.fixture
def runs(world, factory):
    """Three runs of one job an hour apart, one of another job."""
    other_job = factory.job(world.template, world.pool)
    return {
        "first": factory.run(world.job, schedule_dts=utc(2022, 3, 1, 10)),
        "second": factory.run(world.job, schedule_dts=utc(2022, 3, 1, 11), worker=world.worker),
        "third": factory.run(world.job, schedule_dts=utc(2022, 3, 1, 12), is_manual=True),
        "other": factory.run(other_job, schedule_dts=utc(2022, 3, 1, 11)),
    }


def test_exact_by_id_and_by_uri(admin, world, runs):
    expected = sorted(r.id for r in (runs["first"], runs["second"], runs["third"]))
    assert ids(admin, "/api/v1/run/", job=world.job.id) == expected
    assert ids(admin, "/api/v1/run/", job=uri("job", world.job)) == expected
    assert ids(admin, "/api/v1/run/", job=f"/api/v1/job/{world.job.id}") == expected
    assert ids(admin, "/api/v1/run/", is_manual="true", job=world.job.id) == [runs["third"].id]
    assert ids(admin, "/api/v1/run/", is_manual="false", job=world.job.id) == sorted(
        [runs["first"].id, runs["second"].id])


def test_comparisons_on_datetimes(admin, world, runs):
    first, second, third = runs["first"].id, runs["second"].id, runs["third"].id
    path = f"/api/v1/run/?job={world.job.id}"
    at = "2022-03-01T11:00:00+00:00"
    assert ids(admin, path, schedule_dts=at) == [second]
    assert ids(admin, path, schedule_dts__gt=at) == [third]
    assert ids(admin, path, schedule_dts__gte=at) == [second, third]
    assert ids(admin, path, schedule_dts__lt=at) == [first]
    assert ids(admin, path, schedule_dts__lte=at) == [first, second]


def test_isnull_and_in(admin, world, runs):
    path = f"/api/v1/run/?job={world.job.id}"
    assert ids(admin, path, worker__isnull="false") == [runs["second"].id]
    assert ids(admin, path, worker__isnull="true") == sorted([runs["first"].id, runs["third"].id])
    wanted = sorted([runs["first"].id, runs["other"].id])
    assert ids(admin, "/api/v1/run/", id__in=f"{wanted[0]},{wanted[1]}") == wanted
    other_job = runs["other"].job_id
    assert len(ids(admin, "/api/v1/run/", job__in=f"{world.job.id},{other_job}")) == 4


def test_relation_paths(admin, world, factory, runs):
    assert ids(admin, "/api/v1/run/", worker__api_key=world.worker.api_key) == [runs["second"].id]
    assert ids(admin, "/api/v1/run/", worker=uri("worker", world.worker)) == [runs["second"].id]
    assert len(ids(admin, "/api/v1/run/", job__job_template=world.template.id)) == 4
    assert ids(admin, "/api/v1/run/", job__job_template=uri("job_template", world.template)) == ids(
        admin, "/api/v1/run/", job__job_template=world.template.id)

    other_template = factory.template(world.project)
    assert ids(admin, "/api/v1/run/", job__job_template=other_template.id) == []

    started = factory.run(world.job, worker=world.worker, enqueue_dts=utc(2022, 1, 1),
                          start_dts=utc(2022, 1, 1))
    open_kill = KillRequest(run=started, schedule_dts=utc(2022, 1, 1))
    done_kill = KillRequest(run=started, schedule_dts=utc(2022, 1, 1), execute_dts=utc(2022, 1, 2))
    factory.db.add_all([open_kill, done_kill])
    factory.db.flush()
    path = "/api/v1/kill_request/"
    assert ids(admin, path, run__worker__api_key=world.worker.api_key) == sorted(
        [open_kill.id, done_kill.id])
    assert ids(admin, path, run__worker__api_key=world.worker.api_key, execute_dts__isnull="true") == [
        open_kill.id]
    assert ids(admin, path, run__worker__api_key="nobody") == []
    assert ids(admin, path, run=started.id) == sorted([open_kill.id, done_kill.id])
    assert ids(admin, path, run=uri("run", started)) == sorted([open_kill.id, done_kill.id])
    assert ids(admin, path, execute_dts__gte="2022-01-02T00:00:00+00:00") == [done_kill.id]
    assert ids(admin, path, run=started.id, enqueue_dts__isnull="false") == []

    log = factory.run_log(started, "x")
    factory.run_log(runs["first"], "y")
    assert ids(admin, "/api/v1/run_log/", run=started.id) == [log.id]
    assert ids(admin, "/api/v1/run_log/", run=uri("run", started)) == [log.id]


def test_filters_of_each_resource(admin, world, other_world, factory):
    second_job = factory.job(world.template, world.pool)
    assert ids(admin, "/api/v1/group/", name=world.viewers.name) == [world.viewers.id]
    assert ids(admin, "/api/v1/project/", title=world.project.title) == [world.project.id]
    assert ids(admin, "/api/v1/project/", id=world.project.id) == [world.project.id]
    assert ids(admin, "/api/v1/worker_pool/", title=world.pool.title) == [world.pool.id]
    assert ids(admin, "/api/v1/worker/", api_key=world.worker.api_key) == [world.worker.id]
    assert ids(admin, "/api/v1/job_template/", title=world.template.title) == [world.template.id]
    assert ids(admin, "/api/v1/job_template/", project=world.project.id) == [world.template.id]
    assert ids(admin, "/api/v1/job_template/", project=uri("project", world.project)) == [
        world.template.id]
    assert ids(admin, "/api/v1/job/", title=world.job.title) == [world.job.id]
    assert ids(admin, "/api/v1/job/", job_template=world.template.id) == sorted(
        [world.job.id, second_job.id])
    assert ids(admin, "/api/v1/job/", job_template=uri("job_template", world.template)) == sorted(
        [world.job.id, second_job.id])
    assert ids(admin, "/api/v1/job/", worker_pool=other_world.pool.id) == [other_world.job.id]
    assert ids(admin, "/api/v1/job/", title=world.job.title, job_template=other_world.template.id) == []


def test_project_id_on_every_project_scoped_resource(admin, world, other_world, factory):
    def populate(w):
        run = factory.run(w.job, worker=w.worker, enqueue_dts=utc(2022, 1, 1), start_dts=utc(2022, 1, 1))
        log = factory.run_log(run, "x")
        kill = KillRequest(run=run, schedule_dts=utc(2022, 1, 1))
        factory.db.add(kill)
        factory.db.flush()
        return {
            "project": [w.project.id], "worker_pool": [w.pool.id], "worker": [w.worker.id],
            "job_template": [w.template.id], "job": [w.job.id], "run": [run.id],
            "kill_request": [kill.id], "run_log": [log.id],
        }

    mine, theirs = populate(world), populate(other_world)
    for name in mine:
        assert ids(admin, f"/api/v1/{name}/", project_id=world.project.id) == mine[name], name
        assert ids(admin, f"/api/v1/{name}/", project_id=other_world.project.id) == theirs[name], name
        both = ids(admin, f"/api/v1/{name}/", project_id__in=f"{world.project.id},{other_world.project.id}")
        assert both == sorted(mine[name] + theirs[name]), name
        # A project nobody has: an empty list, not an error.
        assert ids(admin, f"/api/v1/{name}/", project_id=987654321) == [], name


def test_project_id_the_caller_cannot_see_gives_an_empty_list(world, other_world, as_worker, session_for):
    worker = as_worker(world.worker)
    viewer = session_for(groups=[world.viewers])
    for name in ("project", "worker_pool", "job_template", "job", "run"):
        assert ids(worker, f"/api/v1/{name}/", project_id=other_world.project.id) == [], name
        assert ids(viewer, f"/api/v1/{name}/", project_id=other_world.project.id) == [], name
    assert ids(worker, "/api/v1/job/", project_id=world.project.id) == [world.job.id]
    assert ids(viewer, "/api/v1/job/", project_id=world.project.id) == [world.job.id]


def test_run_states(admin, world, factory, dbsession):
    job = world.job
    t = utc(2022, 6, 1, 12)
    scheduled = factory.run(job, schedule_dts=t)
    in_queue = factory.run(job, schedule_dts=t, worker=world.worker, enqueue_dts=t)
    started = factory.run(job, schedule_dts=t, worker=world.worker, enqueue_dts=t, start_dts=t)
    ok_old = factory.run(job, schedule_dts=t, worker=world.worker, enqueue_dts=t, start_dts=t,
                         return_dts=t, return_success=True)
    failed = factory.run(job, schedule_dts=t, worker=world.worker, enqueue_dts=t, start_dts=t,
                         return_dts=t, return_success=False)
    # Two runs of one schedule completed last; one succeeded.
    last_ok = factory.run(job, schedule_dts=t, worker=world.worker, enqueue_dts=t, start_dts=t,
                          return_dts=t, return_success=True)
    last_failed = factory.run(job, schedule_dts=t, worker=world.worker, enqueue_dts=t, start_dts=t,
                              return_dts=t, return_success=False, schedule_id=last_ok.schedule_id)
    job.last_completed_schedule_id = last_ok.schedule_id
    # A job that has never completed contributes nothing to last_completed.
    factory.run(factory.job(world.template, world.pool), schedule_dts=t)
    dbsession.flush()

    path = f"/api/v1/run/?job={job.id}"
    expected = {
        "scheduled": [scheduled],
        "in_queue": [in_queue],
        "started": [started],
        "completed": [ok_old, failed, last_ok, last_failed],
        "completed_successful": [ok_old, last_ok],
        "completed_with_errors": [failed, last_failed],
        "completed_with_error": [failed, last_failed],
        "last_completed": [last_ok, last_failed],
    }
    for state, runs in expected.items():
        assert ids(admin, path, state=state) == sorted(r.id for r in runs), state
    assert ids(admin, "/api/v1/run/", state="last_completed") == sorted([last_ok.id, last_failed.id])


@pytest.mark.parametrize("query", [
    "bogus=1",
    "secret=x",
    "worker__secret=x",
    "job__bogus=1",
    "state__in=scheduled",
    "title__contains=x",
    "job__job_template__project__title__bogus=1",
    "__gt=1",
])
def test_an_unknown_filter_is_400(admin, world, query):
    body = assert_error(admin.get(f"/api/v1/run/?{query}", status=400), 400)
    assert body["errors"]


@pytest.mark.parametrize("path", [
    "/api/v1/worker/?secret=s3cret",
    "/api/v1/worker/?secret__isnull=false",
    "/api/v1/group/?users=1",
    "/api/v1/project/?notification_addresses=x",
    "/api/v1/job/?state=scheduled",
    "/api/v1/group/?project_id=1",
    "/api/v1/run_log/?content=x",
])
def test_filters_a_resource_does_not_allow_are_400(admin, world, path):
    assert_error(admin.get(path, status=400), 400)


@pytest.mark.parametrize("query", [
    "id=abc",
    "id=1.5",
    "job=abc",
    "job=/api/v1/worker/1/",
    "job=/api/v1/job/x/",
    "job__in=1,abc",
    "worker=/api/v1/job/1/",
    "schedule_dts=not-a-date",
    "schedule_dts__gt=2022-13-01T00:00:00",
    "schedule_dts__lt=2022-01-01T25:00:00",
    "enqueue_dts__gte=yesterday",
    "is_manual=maybe",
    "return_success=2",
    "worker__isnull=perhaps",
    "state=bogus",
    "state=",
    "project_id=abc",
    "project_id__gt=1",
    "pid=%C2%B2",
])
def test_a_bad_filter_value_is_400(admin, world, query):
    body = assert_error(admin.get(f"/api/v1/run/?{query}", status=400), 400)
    assert body["errors"]


@pytest.mark.parametrize("query", [
    "id=99999999999999999999999",
    "id__in=1,99999999999999999999999",
    "pid__gt=-99999999999999999999999",
    "job=99999999999999999999999",
    "job=/api/v1/job/99999999999999999999999/",
    "project_id=99999999999999999999999",
    "schedule_dts__gt=0001-01-01T00:00:00",
    "schedule_dts__lt=9999-12-31T23:59:59-12:00",
])
def test_extreme_filter_values_are_no_server_error(admin, world, factory, query):
    factory.run(world.job)
    res = admin.get(f"/api/v1/run/?{query}", status="*")
    assert res.status_int in (200, 400), (query, res.status, res.text[:300])
    if res.status_int == 400:
        assert_error(res, 400)
