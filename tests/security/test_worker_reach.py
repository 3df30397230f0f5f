"""What a worker reaches: the projects whose pools contain it, and what hangs
below them."""

from jobrunner.models import Job, KillRequest, Run, RunLog, Worker
from tests.api.conftest import assert_error
from tests.conftest import uri, utc


def populate(factory, world):
    """One object of every resource in a world; returns {resource: object}."""
    run = factory.run(world.job, worker=world.worker, enqueue_dts=utc(2030, 1, 1), start_dts=utc(2030, 1, 1))
    kill = KillRequest(run=run, schedule_dts=utc(2030, 1, 1))
    factory.db.add(kill)
    log = factory.run_log(run, f"secret output of {world.project.title}")
    return {
        "group": world.viewers, "project": world.project, "worker_pool": world.pool,
        "worker": world.worker, "job_template": world.template, "job": world.job, "run": run,
        "kill_request": kill, "run_log": log,
    }


def listed(client, name, query=""):
    res = client.get(f"/api/v1/{name}/{query}")
    assert res.status_int == 200, res.text
    return {o["id"] for o in res.json["objects"]}


def assert_hidden(client, path, *secrets):
    res = client.get(path, status="*")
    assert res.status_int in (403, 404), (path, res.status)
    assert_error(res, res.status_int)
    for secret in secrets:
        assert secret not in res.text


def test_a_worker_sees_only_what_reaches_it(world, other_world, factory, as_worker):
    mine, theirs = populate(factory, world), populate(factory, other_world)
    client = as_worker(world.worker)
    for name in mine:
        ids = listed(client, name)
        assert mine[name].id in ids, name
        assert theirs[name].id not in ids, name
        assert client.get(uri(name, mine[name])).json["id"] == mine[name].id
        assert_hidden(client, uri(name, theirs[name]), other_world.project.title,
                      getattr(theirs[name], "title", "\0"))


def test_worker_list_is_exactly_itself(world, factory, as_worker):
    colleague = factory.worker()
    world.pool.workers.append(colleague)
    factory.db.flush()
    client = as_worker(world.worker)
    assert listed(client, "worker") == {world.worker.id}
    assert listed(client, "worker", f"?api_key={colleague.api_key}") == set()
    assert_hidden(client, uri("worker", colleague), colleague.api_key)
    # The pool still names both.
    assert client.get(uri("worker_pool", world.pool)).json["workers"] == [
        uri("worker", world.worker), uri("worker", colleague)]


def test_a_worker_in_two_projects_sees_both(world, other_world, factory, as_worker):
    other_world.pool.workers.append(world.worker)
    factory.db.flush()
    client = as_worker(world.worker)
    assert listed(client, "project") == {world.project.id, other_world.project.id}
    assert listed(client, "job") == {world.job.id, other_world.job.id}


def test_a_pool_in_no_project_gives_nothing(factory, as_worker):
    lonely = factory.worker()
    factory.pool(workers=[lonely])
    factory.world()
    client = as_worker(lonely)
    for name in ("project", "worker_pool", "job_template", "job", "run", "group"):
        assert listed(client, name) == set(), name
    assert listed(client, "worker") == {lonely.id}


def test_a_worker_may_not_patch_another_worker(world, factory, as_worker, dbsession):
    colleague = factory.worker(worker_version="1.0")
    world.pool.workers.append(colleague)
    factory.db.flush()
    res = as_worker(world.worker).patch(uri("worker", colleague), {"worker_version": "hacked"}, status=403)
    assert_error(res, 403)
    dbsession.expire_all()
    assert dbsession.get(Worker, colleague.id).worker_version == "1.0"


def test_a_worker_may_not_write_in_another_project(world, other_world, factory, as_worker, dbsession):
    theirs = populate(factory, other_world)
    client = as_worker(world.worker)
    before = {model.__name__: dbsession.query(model).count() for model in (Job, Run, KillRequest, RunLog)}
    attempts = [
        client.post("/api/v1/run/", {"job": uri("job", other_world.job)}, status="*"),
        client.post("/api/v1/kill_request/", {"run": uri("run", theirs["run"])}, status="*"),
        client.post("/api/v1/run_log/", {"run": uri("run", factory.run(other_world.job))}, status="*"),
        client.post("/api/v1/job/", {"title": "x", "job_template": uri("job_template", other_world.template),
                                     "worker_pool": uri("worker_pool", other_world.pool)}, status="*"),
        client.patch(uri("run", theirs["run"]), {"pid": 1}, status="*"),
        client.patch(uri("job", other_world.job), {"description": "x"}, status="*"),
        client.patch(uri("kill_request", theirs["kill_request"]), {"execute_dts": "2030-01-01"}, status="*"),
        client.patch(uri("run_log", theirs["run_log"]), {"content": "overwritten"}, status="*"),
        # A relation in the body that points out of reach.
        client.patch(uri("job", world.job), {"parent": uri("job", other_world.job)}, status="*"),
        client.post("/api/v1/run/", {"job": uri("job", world.job),
                                     "worker": uri("worker", other_world.worker)}, status="*"),
    ]
    for res in attempts:
        assert res.status_int in (403, 404), (res.request.method, res.request.path, res.status, res.text)
        assert_error(res, res.status_int)
    dbsession.expire_all()
    assert {model.__name__: dbsession.query(model).count() for model in (Job, Run, KillRequest, RunLog)} == {
        **before, "Run": before["Run"] + 1}  # the one the test made itself
    assert dbsession.get(RunLog, theirs["run_log"].id).content.startswith("secret output")
    assert dbsession.get(Job, other_world.job.id).description == ""
    assert dbsession.get(Job, world.job.id).parent_id is None


def test_relation_out_of_reach_in_a_body_is_403(world, other_world, as_worker, dbsession):
    client = as_worker(world.worker)
    res = client.post("/api/v1/run/", {"job": uri("job", other_world.job)}, status=403)
    assert_error(res, 403)
    res = client.patch(uri("job", world.job), {"worker_pool": uri("worker_pool", other_world.pool)},
                       status=403)
    assert_error(res, 403)
    dbsession.expire_all()
    assert dbsession.get(Job, world.job.id).worker_pool_id == world.pool.id
    assert dbsession.query(Run).count() == 0


def test_a_disabled_worker_authenticates_but_gets_nothing_to_do(world, factory, as_worker, dbsession):
    due = factory.run(world.job)
    client = as_worker(world.worker)
    # Enabled, it would get the run ...
    assert listed(client, "run", "?state=enqueueable") == {due.id}
    world.worker.enqueue_is_enabled = False
    dbsession.flush()
    # ... disabled, it still reports back and heartbeats ...
    assert listed(client, "worker") == {world.worker.id}
    client.patch(uri("worker", world.worker), {"ping_response_dts": "2030-01-01T00:00:00+00:00"})
    # ... but claims nothing.
    assert listed(client, "run", "?state=enqueueable") == set()
    assert listed(client, "run", "?state=scheduled") == {due.id}
    res = client.patch(uri("run", due), {"enqueue_dts": "2030-01-01T00:00:00+00:00"}, status=409)
    assert_error(res, 409)
    dbsession.expire_all()
    assert dbsession.get(Run, due.id).enqueue_dts is None


def test_a_worker_cannot_claim_for_another_worker(world, factory, as_worker, dbsession):
    colleague = factory.worker()
    world.pool.workers.append(colleague)
    run = factory.run(world.job)
    res = as_worker(world.worker).patch(
        uri("run", run), {"enqueue_dts": "2030-01-01T00:00:00+00:00", "worker": uri("worker", colleague)},
        status="*")
    assert res.status_int == 403
    dbsession.expire_all()
    assert dbsession.get(Run, run.id).worker_id is None


def test_groups_a_worker_sees(world, other_world, factory, as_worker):
    stranger_group = factory.group()
    client = as_worker(world.worker)
    # The viewer groups of the projects that reach it, nothing else.
    assert listed(client, "group") == {world.viewers.id}
    for group in (world.admins, other_world.viewers, other_world.admins, stranger_group):
        assert_hidden(client, uri("group", group), group.name)
