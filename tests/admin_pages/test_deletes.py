"""Deleting asks first, refuses with the reason, and takes what hangs below."""
from jobrunner.models import Job, JobTemplate, KillRequest, Run, RunLog, Worker, WorkerPool
from tests.conftest import now

from .conftest import get, post


def test_a_job_with_a_started_run_is_refused_with_the_reason(admin, world, factory, dbsession):
    factory.run(world.job, worker=world.worker, enqueue_dts=now(), start_dts=now())
    confirm = get(admin, f"/admin/job/{world.job.id}/delete")
    assert "has a started run" in confirm.html.select_one("#delete-refused").text
    assert "confirm-delete" not in confirm.text
    res = post(admin, f"/admin/job/{world.job.id}/delete", {}, status=409)
    assert "has a started run" in res.text
    assert dbsession.get(Job, world.job.id) is not None


def test_deleting_a_job_takes_its_runs_logs_and_kill_requests(project_admin, world, factory, dbsession):
    child = factory.job(world.template, world.pool, parent=world.job)
    done = factory.run(world.job, worker=world.worker, enqueue_dts=now(), start_dts=now(), return_dts=now(),
                       return_success=True)
    factory.run_log(done, "output")
    dbsession.add(KillRequest(run_id=done.id, schedule_dts=now()))
    factory.run(world.job)
    other_run = factory.run(child)
    job_id, run_id = world.job.id, done.id
    confirm = get(project_admin, f"/admin/job/{job_id}/delete")
    assert "confirm-delete" in confirm.text and "lose their parent" in confirm.text
    res = post(project_admin, f"/admin/job/{job_id}/delete", {}, status=303)
    assert res.location.endswith("/admin/job/")
    dbsession.expire_all()
    assert dbsession.get(Job, job_id) is None
    assert dbsession.query(Run).filter_by(job_id=job_id).count() == 0
    assert dbsession.query(RunLog).filter_by(run_id=run_id).count() == 0
    assert dbsession.query(KillRequest).filter_by(run_id=run_id).count() == 0
    assert dbsession.get(Job, child.id).parent_id is None
    assert dbsession.get(Run, other_run.id) is not None


def test_a_template_with_jobs_and_a_pool_with_jobs_are_refused(admin, world, dbsession):
    res = post(admin, f"/admin/job_template/{world.template.id}/delete", {}, status=409)
    assert "The template has 1 job(s)" in res.text
    res = post(admin, f"/admin/worker_pool/{world.pool.id}/delete", {}, status=409)
    assert "Jobs run on this pool" in res.text
    res = post(admin, f"/admin/project/{world.project.id}/delete", {}, status=409)
    assert "has job templates" in res.text
    assert dbsession.get(JobTemplate, world.template.id) is not None
    assert dbsession.get(WorkerPool, world.pool.id) is not None


def test_a_worker_holding_a_started_run_is_refused(admin, world, factory, dbsession):
    factory.run(world.job, worker=world.worker, enqueue_dts=now(), start_dts=now())
    res = post(admin, f"/admin/worker/{world.worker.id}/delete", {}, status=409)
    assert "holds started runs" in res.text
    assert dbsession.get(Worker, world.worker.id) is not None


def test_a_deleted_workers_claimed_runs_go_back_to_the_queue(admin, world, factory, dbsession):
    claimed = factory.run(world.job, worker=world.worker, enqueue_dts=now())
    worker_id = world.worker.id
    post(admin, f"/admin/worker/{worker_id}/delete", {}, status=303)
    dbsession.expire_all()
    assert dbsession.get(Worker, worker_id) is None
    run = dbsession.get(Run, claimed.id)
    assert run.worker_id is None and run.enqueue_dts is None


def test_an_emptied_template_and_pool_can_go(admin, world, dbsession):
    job_id, template_id = world.job.id, world.template.id
    post(admin, f"/admin/job/{job_id}/delete", {}, status=303)
    post(admin, f"/admin/job_template/{template_id}/delete", {}, status=303)
    post(admin, f"/admin/worker_pool/{world.pool.id}/delete", {}, status=303)
    dbsession.expire_all()
    assert dbsession.get(JobTemplate, template_id) is None
