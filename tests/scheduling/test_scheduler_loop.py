"""The scheduler loop: transactions, mail after commit, stopping, outages,
the embedded thread and the `jobrunner-scheduler` console script."""
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest
from pyramid_mailer.mailer import Mailer
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from jobrunner import main
from jobrunner.migrations import upgrade
from jobrunner.models import Run, WorkerPool, get_engine, get_session_factory
from jobrunner.scheduling import mail
from jobrunner.scheduling.daemon import Scheduler
from jobrunner.settings import Settings
from tests.conftest import Factory, app_settings, now
from tests.scheduling.conftest import long_ago, wait_until


def test_one_pass_does_every_duty_and_mails_after_each_commit(
    world, factory, dbsession, rolled_back_scheduler, mailbox
):
    world.worker.ping_response_dts = long_ago()
    world.pool.notification_addresses = "pool@example.com"
    started = factory.run(world.job, worker=world.worker, enqueue_dts=now(), start_dts=now())
    queued = factory.run(factory.job(world.template, world.pool), worker=world.worker, enqueue_dts=now())
    alive = factory.worker()
    other_pool = factory.pool(workers=[alive])
    world.project.worker_pools.append(other_pool)
    everywhere = factory.job(world.template, other_pool, run_on_all_workers=True)
    original_id = factory.run(everywhere).id
    dbsession.flush()

    summary = rolled_back_scheduler.run_once()

    assert summary == {"expanded": 1, "failed": 1, "freed": 1, "alerted": 1, "recovered": 0,
                       "timed_out": 0, "replaced": 0, "webhooks": 0, "purged": 0}
    dbsession.expire_all()
    assert dbsession.get(Run, started.id).return_success is False
    assert dbsession.get(Run, queued.id).worker_id is None
    assert dbsession.scalar(select(Run.id).where(Run.id == original_id)) is None
    assert [r.worker_id for r in dbsession.scalars(select(Run).where(Run.job_id == everywhere.id))] == [
        alive.id
    ]
    assert dbsession.get(WorkerPool, world.pool.id).unresponsive_since_dts is not None
    subjects = sorted(m["subject"] for m in mailbox.wait_for(2))
    assert subjects == [f"Run error for: {world.job.title}", f"Worker-pool unresponsive: {world.pool.title}"]

    assert rolled_back_scheduler.run_once() == dict.fromkeys(summary, 0)
    assert len(mailbox.messages) == 2


def test_mail_goes_out_only_when_the_transaction_commits(world, rolled_back_scheduler, mailbox):
    context = rolled_back_scheduler.context

    def alert_then_fail(dbsession):
        mail.send_pool_unresponsive(context, dbsession.get(WorkerPool, world.pool.id), [])
        raise RuntimeError("the transaction fails after the mail was queued")

    with pytest.raises(RuntimeError):
        rolled_back_scheduler.in_transaction(alert_then_fail)
    # Delivery happens inside the commit, so nothing can still be on its way.
    assert mailbox.messages == []

    rolled_back_scheduler.in_transaction(
        lambda s: mail.send_pool_unresponsive(context, s.get(WorkerPool, world.pool.id), [])
    )
    assert [m["subject"] for m in mailbox.messages] == [f"Worker-pool unresponsive: {world.pool.title}"]


def test_the_loop_stops_between_iterations(rolled_back_scheduler):
    stop = threading.Event()
    thread = threading.Thread(target=rolled_back_scheduler.run, args=(stop,))
    thread.start()
    wait_until(lambda: rolled_back_scheduler.iterations >= 3, message="three iterations")
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert rolled_back_scheduler.failed_iterations == 0


@pytest.mark.parametrize(
    "name, value",
    [("jobrunner.scheduler.interval", "soon"), ("jobrunner.worker.ping_interval", "-1")],
)
def test_bad_settings_fail_when_the_scheduler_starts(scheduler_settings, name, value):
    settings = dict(scheduler_settings, **{name: value})
    with pytest.raises(ValueError):
        Scheduler(sessionmaker(), Settings.from_mapping(settings), Mailer.from_settings(settings))


def test_the_loop_survives_a_database_outage_and_resumes(tmp_path, scheduler_settings):
    # A database that is not there yet: every iteration fails until it is.
    url = f"sqlite:///{tmp_path / 'later' / 'jobrunner.sqlite'}"
    settings = dict(scheduler_settings, **{"sqlalchemy.url": url})
    engine = get_engine(settings)
    scheduler = Scheduler(
        get_session_factory(engine), Settings.from_mapping(settings), Mailer.from_settings(settings)
    )
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: scheduler.failed_iterations >= 3, message="failing iterations")
        assert thread.is_alive()

        (tmp_path / "later").mkdir()
        upgrade(url)
        session = get_session_factory(engine)()
        factory = Factory(session)
        worker = factory.worker()
        pool = factory.pool(workers=[worker])
        template = factory.template(factory.project(pools=[pool]))
        job = factory.job(template, pool, run_on_all_workers=True)
        original = factory.run(job)
        session.commit()

        def expanded():
            with engine.connect() as conn:
                return conn.execute(
                    select(Run.worker_id).where(Run.job_id == job.id)
                ).scalars().all() == [worker.id]

        wait_until(expanded, message="expansion after the outage")
        with engine.connect() as conn:
            assert conn.execute(select(Run.id).where(Run.id == original.id)).first() is None
        session.close()
    finally:
        stop.set()
        thread.join(timeout=10)
        engine.dispose()
    assert not thread.is_alive()


def test_after_an_outage_workers_get_one_unresponsive_limit_to_ping_again(
        tmp_path, scheduler_settings):
    # No ping could be stored while the database was away: a worker whose
    # last ping is old when it comes back is not unresponsive yet.
    url = f"sqlite:///{tmp_path / 'later' / 'jobrunner.sqlite'}"
    settings = dict(scheduler_settings, **{
        "sqlalchemy.url": url, "jobrunner.worker.ping_interval": "0.5",
        "jobrunner.worker.ping_margin": "0.5", "jobrunner.worker.unresponsive_after_intervals": "2"})
    engine = get_engine(settings)
    scheduler = Scheduler(
        get_session_factory(engine), Settings.from_mapping(settings), Mailer.from_settings(settings)
    )
    try:
        with pytest.raises(Exception):
            scheduler.run_once()  # the database is away

        (tmp_path / "later").mkdir()
        upgrade(url)
        session = get_session_factory(engine)()
        factory = Factory(session)
        worker = factory.worker(ping_response_dts=long_ago())
        pool = factory.pool(workers=[worker])
        job = factory.job(factory.template(factory.project(pools=[pool])), pool)
        run = factory.run(job, worker=worker, enqueue_dts=now(), start_dts=now())
        session.commit()
        session.close()

        def stored():
            with get_session_factory(engine)() as fresh:
                return fresh.get(Run, run.id)

        assert scheduler.run_once()["failed"] == 0
        assert stored().return_dts is None
        # Still no ping once the limit (1.5 s) has passed since the database
        # came back: now it is unresponsive.
        wait_until(lambda: scheduler.run_once()["failed"] == 1, timeout=10,
                   message="the run failed after the limit")
        assert stored().return_success is False
    finally:
        engine.dispose()


# --- embedded in the web process -----------------------------------------------------


def test_the_web_process_runs_no_scheduler_unless_asked(app):
    assert app.registry.get("jobrunner.scheduler") is None
    assert not any(t.name == "jobrunner-scheduler" for t in threading.enumerate())


def test_the_embedded_scheduler_runs_in_a_thread_of_the_web_process(
    database_url, mail_sink, committed
):
    import webtest

    worker = committed.worker()
    pool = committed.pool(workers=[worker])
    template = committed.template(committed.project(pools=[pool]))
    job = committed.job(template, pool, run_on_all_workers=True)
    committed.run(job)
    committed.commit()

    settings = app_settings(
        database_url,
        mail_sink.port,
        **{"jobrunner.scheduler.embedded": "true", "jobrunner.scheduler.interval": "0.05"},
    )
    web_app = main({}, **settings)
    embedded = web_app.registry["jobrunner.scheduler"]
    try:
        assert embedded.thread.is_alive() and embedded.thread.daemon
        thread = embedded.thread
        webtest.TestApp(web_app).get("/login")
        assert embedded.thread is thread  # once per process

        def expanded():
            with committed.engine.connect() as conn:
                return conn.execute(
                    select(Run.worker_id).where(Run.job_id == job.id)
                ).scalars().all() == [worker.id]

        wait_until(expanded, message="expansion by the embedded scheduler")
    finally:
        embedded.stop(timeout=10)
    assert not embedded.thread.is_alive()


# --- the console script ---------------------------------------------------------------


INI = """\
[app:main]
use = egg:jobrunner
sqlalchemy.url = {url}
jobrunner.session_secret = test-secret
jobrunner.scheduler.interval = 0.1
mail.host = 127.0.0.1
mail.port = {port}
mail.default_sender = jobrunner@example.com

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = generic

[formatter_generic]
format = %(levelname)s [%(name)s] %(message)s
"""


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_console_script_works_and_exits_0_when_stopped(
    tmp_path, database_url, mail_sink, committed, stop_signal
):
    script = shutil.which("jobrunner-scheduler", path=os.path.dirname(sys.executable))
    assert script, "the jobrunner-scheduler console script is not installed"
    worker = committed.worker()
    pool = committed.pool(workers=[worker])
    template = committed.template(committed.project(pools=[pool]))
    job = committed.job(template, pool, run_on_all_workers=True)
    committed.run(job)
    committed.commit()

    ini = tmp_path / "scheduler.ini"
    ini.write_text(INI.format(url=database_url, port=mail_sink.port))
    stderr_path = tmp_path / "stderr.log"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen([script, str(ini)], stdout=subprocess.DEVNULL, stderr=stderr,
                                   cwd=tmp_path)
    try:
        def expanded():
            assert process.poll() is None, stderr_path.read_text()
            with committed.engine.connect() as conn:
                return conn.execute(
                    select(func.count()).select_from(Run).where(
                        Run.job_id == job.id, Run.worker_id == worker.id
                    )
                ).scalar() == 1

        wait_until(expanded, message="expansion by the scheduler process")
        process.send_signal(stop_signal)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = stderr_path.read_text()
    assert "scheduler started" in output
    assert f"{stop_signal.name} received, stopping" in output
    assert "scheduler stopped" in output
    assert "Traceback" not in output
