from tests.conftest import uri


def test_worker_lists_itself(world, as_worker):
    res = as_worker(world.worker).get("/api/v1/worker/")
    assert [o["api_key"] for o in res.json["objects"]] == [world.worker.api_key]


def test_user_sees_project(world, factory, as_user):
    client = as_user(groups=[world.viewers])
    res = client.get("/api/v1/project/")
    assert [o["title"] for o in res.json["objects"]] == [world.project.title]


def test_claim_and_return(world, factory, as_worker):
    run = factory.run(world.job)
    w = as_worker(world.worker)
    listed = w.get("/api/v1/run/?state=enqueueable").json["objects"]
    assert [o["id"] for o in listed] == [run.id]
    w.patch(uri("run", run), {"enqueue_dts": "2030-01-01T00:00:00+00:00"})
    w.patch(uri("run", run), {"start_dts": "2030-01-01T00:00:01+00:00", "pid": 5})
    res = w.patch(uri("run", run), {"return_dts": "2030-01-01T00:00:02+00:00", "return_success": True})
    assert res.json["return_success"] is True
    w.patch(uri("run", run), {"return_dts": "2030-01-01T00:00:03+00:00", "return_success": True}, status=409)
