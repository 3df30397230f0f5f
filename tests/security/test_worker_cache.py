"""A server process keeps what it knows of a signing worker for a few
seconds (jobrunner/security/workers.py): a change made in the process is
seen at once, a change made elsewhere within jobrunner.worker_cache_seconds.

Two application instances share one database here, with committed rows (not
the rolled-back transaction of the other tests). A change made with a plain
SQL statement on a connection of its own fires none of the process's session
events: for the cache it is a change made by another process.
"""
import time
import uuid

import pytest
import webtest
from sqlalchemy import delete, update
from sqlalchemy.orm import sessionmaker

from jobrunner import main
from jobrunner.models import Job, JobTemplate, Project, Run, Worker, WorkerPool
from jobrunner.models.tables import project_worker_pools, worker_pool_workers
from jobrunner.signing import v1_header, v2_header
from tests.conftest import app_settings, now

TTL = 1.0
HOST = "jobrunner.example"


@pytest.fixture
def apps(database_url, mail_sink):
    settings = app_settings(database_url, mail_sink.port, **{"jobrunner.worker_cache_seconds": str(TTL)})
    first, second = main({}, **settings), main({}, **settings)
    yield first, second
    for app in (first, second):
        app.registry["dbengine"].dispose()


@pytest.fixture
def committed(engine):
    """A project, pool, worker, template and job, committed; removed after."""
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    tag = uuid.uuid4().hex[:8]
    worker = Worker(title=f"cache {tag}", api_key=f"cache-{tag}", secret="old-secret", ping_response_dts=now())
    pool = WorkerPool(title=f"cache pool {tag}", workers=[worker])
    project = Project(title=f"cache project {tag}", worker_pools=[pool])
    template = JobTemplate(title="t", body="{{ content }}", project=project)
    job = Job(title=f"cache job {tag}", job_template=template, worker_pool=pool, script_content="true")
    session.add_all([worker, pool, project, template, job])
    session.commit()
    yield session, worker, pool, job
    session.rollback()
    session.expunge_all()
    with engine.begin() as conn:
        conn.execute(delete(Run.__table__).where(Run.job_id == job.id))
        conn.execute(delete(Job.__table__).where(Job.id == job.id))
        conn.execute(delete(JobTemplate.__table__).where(JobTemplate.id == template.id))
        conn.execute(delete(project_worker_pools).where(project_worker_pools.c.project_id == project.id))
        conn.execute(delete(Project.__table__).where(Project.id == project.id))
        conn.execute(delete(worker_pool_workers).where(worker_pool_workers.c.worker_pool_id == pool.id))
        conn.execute(delete(WorkerPool.__table__).where(WorkerPool.id == pool.id))
        conn.execute(delete(Worker.__table__).where(Worker.id == worker.id))
    session.close()


def signed_get(app, worker, path, secret=None, version=1):
    secret = secret or worker.secret
    header = (v1_header if version == 1 else v2_header)(worker.api_key, secret, "GET", path, b"")
    return webtest.TestApp(app).get(path, headers={"Authorization": header, "Host": HOST},
                                    expect_errors=True)


def elsewhere(engine, statement):
    """A change by another process: its own connection, no ORM session."""
    with engine.begin() as conn:
        conn.execute(statement)


def seconds_until(condition, limit):
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < limit, "not within the limit"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_secret_changed_elsewhere_stops_working_within_the_limit(apps, committed, engine):
    _session, worker, _pool, _job = committed
    path = f"/api/v1/worker/{worker.id}/"
    for app in apps:
        assert signed_get(app, worker, path).status_int == 200
    elsewhere(engine, update(Worker).where(Worker.id == worker.id).values(secret="new-secret"))
    for app in apps:
        seconds_until(lambda app=app: signed_get(app, worker, path).status_int == 401, TTL + 1.5)
        assert signed_get(app, worker, path, secret="new-secret").status_int == 200


def test_a_change_made_in_the_process_is_seen_at_once(apps, committed):
    session, worker, _pool, _job = committed
    path = f"/api/v1/worker/{worker.id}/"
    for app in apps:
        assert signed_get(app, worker, path).status_int == 200
    session.get(Worker, worker.id).secret = "rotated"
    session.commit()
    for app in apps:
        assert signed_get(app, worker, path, secret="old-secret").status_int == 401
        assert signed_get(app, worker, path, secret="rotated").status_int == 200


def test_a_worker_removed_from_its_pool_elsewhere_loses_its_reach_within_the_limit(apps, committed, engine):
    _session, worker, pool, job = committed
    path = f"/api/v1/job/{job.id}/"
    for app in apps:
        assert signed_get(app, worker, path).status_int == 200
    elsewhere(engine, delete(worker_pool_workers).where(worker_pool_workers.c.worker_id == worker.id))
    for app in apps:
        seconds_until(lambda app=app: signed_get(app, worker, path).status_int == 403, TTL + 1.5)


def test_a_worker_disabled_elsewhere_lists_nothing_within_the_limit(apps, committed, engine):
    session, worker, _pool, job = committed
    session.add(Run(job_id=job.id, schedule_dts=now()))
    session.commit()
    path = "/api/v1/run/?state=enqueueable"

    def listed(app):
        return signed_get(app, worker, path).json["objects"]

    for app in apps:
        assert len(listed(app)) == 1
    elsewhere(engine, update(Worker).where(Worker.id == worker.id).values(enqueue_is_enabled=False))
    for app in apps:
        seconds_until(lambda app=app: listed(app) == [], TTL + 1.5)


def test_a_v2_nonce_is_refused_by_the_other_process_too(apps, committed):
    _session, worker, _pool, _job = committed
    path = f"/api/v1/worker/{worker.id}/"
    header = v2_header(worker.api_key, worker.secret, "GET", path, b"")
    first, second = (webtest.TestApp(app) for app in apps)
    headers = {"Authorization": header, "Host": HOST}
    assert first.get(path, headers=headers, expect_errors=True).status_int == 200
    assert second.get(path, headers=headers, expect_errors=True).status_int == 401
    assert first.get(path, headers=headers, expect_errors=True).status_int == 401


def test_an_unknown_key_is_not_kept(apps, committed, engine):
    session, worker, pool, _job = committed
    tag = uuid.uuid4().hex[:8]
    newcomer = Worker(title=f"late {tag}", api_key=f"late-{tag}", secret="s", ping_response_dts=now())
    path = "/api/v1/worker/"
    assert signed_get(apps[0], newcomer, path).status_int == 401
    # Added elsewhere: the very next request finds it.
    session.add(newcomer)
    session.commit()
    try:
        assert signed_get(apps[0], newcomer, path).status_int == 200
    finally:
        session.execute(delete(Worker).where(Worker.id == newcomer.id))
        session.commit()


def test_the_limit_is_a_setting_of_at_most_ten_seconds(database_url, mail_sink):
    from jobrunner.settings import SettingsError

    with pytest.raises(SettingsError, match="worker_cache_seconds"):
        main({}, **app_settings(database_url, mail_sink.port, **{"jobrunner.worker_cache_seconds": "60"}))
