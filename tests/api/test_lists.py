"""List meta, paging, ordering and the shape of objects."""
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import update

from jobrunner.models import KillRequest, Run
from tests.api.conftest import assert_error
from tests.conftest import uri, utc


def runs_of(factory, job, count, schedule_dts=None):
    return [factory.run(job, schedule_dts=schedule_dts) for _ in range(count)]


def follow(client, path):
    """Every object of a list, page after page by `next`."""
    ids, pages = [], 0
    while path is not None:
        body = client.get(path).json
        ids += [o["id"] for o in body["objects"]]
        path = body["meta"]["next"]
        pages += 1
        assert pages < 100
    return ids, pages


def test_meta_defaults(admin, world, factory):
    runs = runs_of(factory, world.job, 3)
    body = admin.get(f"/api/v1/run/?job={world.job.id}").json
    assert body["meta"] == {
        "limit": 200, "offset": 0, "total_count": 3, "next": None, "previous": None,
    }
    assert [o["id"] for o in body["objects"]] == [r.id for r in runs]


def test_limit_is_at_most_1000(admin, world):
    assert admin.get("/api/v1/run/?limit=5000").json["meta"]["limit"] == 1000
    assert admin.get("/api/v1/run/?limit=1000").json["meta"]["limit"] == 1000
    assert admin.get("/api/v1/run/?limit=7").json["meta"]["limit"] == 7


def test_next_and_previous_are_full_paths_with_the_query_string(admin, world, factory):
    runs = runs_of(factory, world.job, 5)
    first = admin.get(f"/api/v1/run/?job={world.job.id}&limit=2").json
    assert first["meta"]["total_count"] == 5
    assert first["meta"]["previous"] is None
    next_link = first["meta"]["next"]
    parts = urlsplit(next_link)
    assert parts.path == "/api/v1/run/" and not parts.netloc
    assert dict(parse_qsl(parts.query)) == {"job": str(world.job.id), "limit": "2", "offset": "2"}

    second = admin.get(next_link).json
    assert [o["id"] for o in second["objects"]] == [runs[2].id, runs[3].id]
    previous = urlsplit(second["meta"]["previous"])
    assert previous.path == "/api/v1/run/"
    assert dict(parse_qsl(previous.query)) == {"job": str(world.job.id), "limit": "2", "offset": "0"}

    last = admin.get(second["meta"]["next"]).json
    assert [o["id"] for o in last["objects"]] == [runs[4].id]
    assert last["meta"]["next"] is None
    assert dict(parse_qsl(urlsplit(last["meta"]["previous"]).query))["offset"] == "2"


def test_offset_past_the_end(admin, world, factory):
    runs_of(factory, world.job, 2)
    body = admin.get(f"/api/v1/run/?job={world.job.id}&offset=10").json
    assert body["objects"] == []
    assert body["meta"]["total_count"] == 2
    assert body["meta"]["next"] is None
    assert body["meta"]["previous"] is not None


def test_bad_paging_is_400(admin, world):
    for query in ("limit=abc", "offset=abc", "limit=-1", "offset=-5", "limit=1.5"):
        assert_error(admin.get(f"/api/v1/run/?{query}", status=400), 400)


def test_huge_paging_values_are_no_server_error(admin, world, factory):
    runs_of(factory, world.job, 1)
    for query in ("offset=99999999999999999999999", "limit=99999999999999999999999",
                  "offset=9223372036854775807"):
        res = admin.get(f"/api/v1/run/?job={world.job.id}&{query}", status="*")
        assert res.status_int in (200, 400), (query, res.status)
        if res.status_int == 200:
            assert res.json["objects"] == [] or "limit" in query


def test_lists_are_ordered_by_id(admin, world, factory, dbsession):
    later = factory.run(world.job, schedule_dts=utc(2020, 1, 2))
    earlier = factory.run(world.job, schedule_dts=utc(2020, 1, 1))
    objects = admin.get(f"/api/v1/run/?job={world.job.id}").json["objects"]
    assert [o["id"] for o in objects] == [later.id, earlier.id]


def test_order_by_ascending_and_descending(admin, world, factory):
    b = factory.run(world.job, schedule_dts=utc(2020, 1, 2))
    a = factory.run(world.job, schedule_dts=utc(2020, 1, 1))
    c = factory.run(world.job, schedule_dts=utc(2020, 1, 3))
    path = f"/api/v1/run/?job={world.job.id}&order_by="
    assert [o["id"] for o in admin.get(path + "schedule_dts").json["objects"]] == [a.id, b.id, c.id]
    assert [o["id"] for o in admin.get(path + "-schedule_dts").json["objects"]] == [c.id, b.id, a.id]
    assert [o["id"] for o in admin.get(path + "-id").json["objects"]] == [c.id, a.id, b.id]


def test_unknown_order_by_is_400(admin, world):
    body = assert_error(admin.get("/api/v1/run/?order_by=secret", status=400), 400)
    assert "order_by" in body["errors"]
    assert_error(admin.get("/api/v1/worker/?order_by=-secret", status=400), 400)


def _shuffle_physical_order(dbsession, runs):
    # Rewriting the rows in reverse moves them around on disk (PostgreSQL
    # writes new row versions), so only an explicit tie-break keeps id order.
    for run in reversed(runs):
        dbsession.execute(update(Run).where(Run.id == run.id).values(pid=run.id))
    dbsession.flush()


def test_ties_are_broken_by_id_so_paging_never_repeats_or_skips(admin, world, factory, dbsession):
    same = utc(2021, 5, 5, 12)
    runs = runs_of(factory, world.job, 7, schedule_dts=same)
    runs += runs_of(factory, world.job, 3, schedule_dts=same - timedelta(hours=1))
    _shuffle_physical_order(dbsession, runs)
    ids = sorted(r.id for r in runs)
    early = sorted(r.id for r in runs[7:])
    tied = sorted(r.id for r in runs[:7])

    ascending, pages = follow(admin, f"/api/v1/run/?job={world.job.id}&order_by=schedule_dts&limit=3")
    assert pages == 4
    assert ascending == early + tied

    descending, _ = follow(admin, f"/api/v1/run/?job={world.job.id}&order_by=-schedule_dts&limit=2")
    assert sorted(descending) == ids and len(set(descending)) == len(ids)
    assert set(descending[:7]) == set(tied) and set(descending[7:]) == set(early)
    # Within the tie the order is by id, in the direction asked for.
    assert descending[:7] in (tied, tied[::-1])


def test_objects_carry_id_uri_and_relations(admin, world, factory):
    run = factory.run(world.job)
    log = factory.run_log(run, "hello")
    bare = factory.run(world.job)
    objects = {o["id"]: o for o in admin.get(f"/api/v1/run/?job={world.job.id}").json["objects"]}
    assert objects[run.id]["resource_uri"] == f"/api/v1/run/{run.id}/"
    assert objects[run.id]["job"] == uri("job", world.job)
    assert objects[run.id]["run_log"] == uri("run_log", log)
    assert objects[run.id]["worker"] is None
    assert objects[bare.id]["run_log"] is None

    project = admin.get(uri("project", world.project)).json
    assert project["id"] == world.project.id
    assert project["resource_uri"] == uri("project", world.project)
    assert project["worker_pools"] == [uri("worker_pool", world.pool)]
    assert project["auth_groups"] == [uri("group", world.admins)]

    pool = admin.get(uri("worker_pool", world.pool)).json
    assert pool["workers"] == [uri("worker", world.worker)]

    child = factory.job(world.template, world.pool, parent=world.job)
    job = admin.get(uri("job", world.job)).json
    assert job["children"] == [uri("job", child)]
    assert job["parent"] is None
    assert job["job_template"] == uri("job_template", world.template)
    assert job["worker_pool"] == uri("worker_pool", world.pool)
    assert admin.get(uri("job", child)).json["parent"] == uri("job", world.job)


def test_every_list_shape(admin, world, factory):
    run = factory.run(world.job, enqueue_dts=utc(2020, 1, 1), start_dts=utc(2020, 1, 1),
                      worker=world.worker)
    factory.run_log(run, "x")
    factory.db.add(KillRequest(run=run, schedule_dts=utc(2020, 1, 1)))
    factory.db.flush()
    for name in ("group", "project", "worker_pool", "worker", "job_template", "job", "run",
                 "kill_request", "run_log"):
        body = admin.get(f"/api/v1/{name}/").json
        assert set(body) == {"meta", "objects"}
        assert set(body["meta"]) == {"limit", "offset", "total_count", "next", "previous"}
        assert body["objects"], name
        for obj in body["objects"]:
            assert obj["resource_uri"] == f"/api/v1/{name}/{obj['id']}/"
            assert admin.get(obj["resource_uri"]).json == obj
