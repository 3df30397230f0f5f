"""The run life cycle's rules called directly, as the API and the scheduler
call them: who may claim, who holds a run, what a returned run refuses."""
import pytest

from jobrunner.domain_errors import InvalidFields, NotAllowed, NotHolder, RunConflict
from jobrunner.models import KillRequest
from jobrunner.scheduling import runs
from tests.conftest import now


@pytest.fixture
def claimed(world, factory, dbsession):
    run = factory.run(world.job)
    runs.claim(dbsession, run, world.worker, now(), world.worker.id)
    return run


def test_only_a_worker_claims_and_only_for_itself(world, factory, dbsession):
    run = factory.run(world.job)
    other = factory.worker()
    with pytest.raises(NotAllowed):
        runs.claim(dbsession, run, None, now(), world.worker.id)
    with pytest.raises(NotAllowed):
        runs.claim(dbsession, run, world.worker, now(), other.id)
    assert run.enqueue_dts is None
    runs.claim(dbsession, run, world.worker, now(), world.worker.id)
    assert run.worker_id == world.worker.id and run.enqueue_dts is not None
    with pytest.raises(RunConflict):
        runs.claim(dbsession, run, world.worker, now(), world.worker.id)


def test_only_the_holder_reports_progress(world, factory, dbsession, claimed):
    other = factory.worker()
    for intruder in (None, other):
        with pytest.raises(NotHolder):
            runs.progress(dbsession, claimed, intruder, start_dts=now(), pid=7)
    assert claimed.pid is None
    runs.progress(dbsession, claimed, world.worker, start_dts=now(), pid=7)
    assert claimed.pid == 7


def test_release_is_the_holders_and_frees_the_run(world, factory, dbsession, claimed):
    with pytest.raises(NotHolder):
        runs.release(dbsession, claimed, factory.worker(), release_worker=True)
    with pytest.raises(InvalidFields) as error:
        runs.release(dbsession, claimed, world.worker, release_worker=True, start_dts=now())
    assert set(error.value.errors) == {"start_dts"}
    runs.release(dbsession, claimed, world.worker, release_worker=True)
    assert (claimed.enqueue_dts, claimed.worker_id) == (None, None)
    # Released, the worker holds it no more.
    with pytest.raises(NotHolder):
        runs.progress(dbsession, claimed, world.worker, pid=1)


def test_a_run_returns_once(world, dbsession, claimed, mail_tx):
    runs.report_return(dbsession, claimed, world.worker, now(), True, mail_tx.context)
    assert claimed.return_success is True
    with pytest.raises(RunConflict):
        runs.report_return(dbsession, claimed, world.worker, now(), False, mail_tx.context)
    with pytest.raises(RunConflict):
        runs.progress(dbsession, claimed, world.worker, pid=9)
    assert claimed.return_success is True and claimed.pid is None


def test_log_and_kill_requests_follow_the_holder(world, factory, dbsession, claimed):
    with pytest.raises(NotHolder):
        runs.create_log(dbsession, claimed, factory.worker(), "x")
    log = runs.create_log(dbsession, claimed, world.worker, "first")
    with pytest.raises(RunConflict):
        runs.create_log(dbsession, claimed, world.worker, "second")
    runs.holder_update(log, world.worker, {"content": "first\nmore"})
    assert log.content == "first\nmore"
    with pytest.raises(InvalidFields):
        runs.holder_update(log, world.worker, {"run": factory.run(world.job).id})

    with pytest.raises(RunConflict):  # not started yet
        runs.request_kill(dbsession, claimed)
    runs.progress(dbsession, claimed, world.worker, start_dts=now())
    kill = runs.request_kill(dbsession, claimed)
    with pytest.raises(NotHolder):
        runs.holder_update(kill, factory.worker(), {"execute_dts": now()})
    runs.holder_update(kill, world.worker, {"execute_dts": now()})
    assert dbsession.get(KillRequest, kill.id).execute_dts is not None
