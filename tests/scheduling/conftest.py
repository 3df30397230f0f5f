"""Fixtures for the scheduler's tests.

Two ways to give the scheduler a database:

* rolled back: the duty functions and the Scheduler run on the test's outer
  transaction (`dbsession`, `factory`, `rolled_back_scheduler`), like the API
  tests; commits are savepoints.
* committed: `committed` is a Factory on an engine of its own whose rows are
  really committed, so other connections (scheduler threads, subprocesses)
  see them; everything it created is deleted at the end.
"""
import threading
import time
from datetime import timedelta

import pytest
import transaction
from pyramid_mailer.mailer import Mailer
from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker

from jobrunner.models import Group, Project, User, Worker, WorkerPool, get_engine, get_session_factory
from jobrunner.scheduling.daemon import Scheduler
from jobrunner.scheduling.mail import mail_context_from_settings
from jobrunner.settings import Settings
from tests.conftest import Factory, app_settings, now

# ping_interval 10 s, margin 5 s, 3 intervals: unresponsive after 35 s.
UNRESPONSIVE_AFTER = timedelta(seconds=35)


def long_ago():
    return now() - timedelta(hours=1)


@pytest.fixture
def scheduler_settings(database_url, mail_sink):
    return app_settings(
        database_url,
        mail_sink.port,
        **{
            "jobrunner.scheduler.interval": "0.02",
            "jobrunner.worker.ping_interval": "10",
            "jobrunner.worker.ping_margin": "5",
            "jobrunner.worker.unresponsive_after_intervals": "3",
        },
    )


class MailTransaction:
    """A real mailer bound to a transaction manager of its own: what the
    duties send goes out when `with mail_tx.tm:` commits."""

    def __init__(self, settings):
        self.tm = transaction.TransactionManager(explicit=True)
        mailer = Mailer.from_settings(settings).bind(transaction_manager=self.tm)
        self.context = mail_context_from_settings(Settings.from_mapping(settings), mailer, self.tm)


@pytest.fixture
def mail_tx(scheduler_settings):
    return MailTransaction(scheduler_settings)


@pytest.fixture
def rolled_back_scheduler(connection, scheduler_settings):
    """A Scheduler whose transactions are savepoints of the test's transaction."""
    session_factory = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    return Scheduler(
        session_factory, Settings.from_mapping(scheduler_settings), Mailer.from_settings(scheduler_settings)
    )


# --- committed data ----------------------------------------------------------------


class CommittingFactory(Factory):
    """Remembers the roots it created; deleting them cascades to templates,
    jobs, runs, logs and links."""

    ROOTS = (Project, WorkerPool, Worker, Group, User)

    def __init__(self, dbsession, engine):
        super().__init__(dbsession)
        self.engine = engine
        self.created = {model: [] for model in self.ROOTS}

    def _add(self, obj):
        obj = super()._add(obj)
        if type(obj) in self.created:
            self.created[type(obj)].append(obj.id)
        return obj

    def commit(self):
        self.db.commit()

    def delete_created(self):
        self.db.rollback()
        with self.engine.begin() as conn:
            for model in self.ROOTS:
                ids = self.created[model]
                if ids:
                    conn.execute(delete(model).where(model.id.in_(ids)))


@pytest.fixture
def committed(database_url):
    engine = get_engine({"sqlalchemy.url": database_url})
    session = get_session_factory(engine)()
    factory = CommittingFactory(session, engine)
    yield factory
    try:
        factory.delete_created()
    finally:
        session.close()
        engine.dispose()


@pytest.fixture
def postgres_only(is_postgres):
    if not is_postgres:
        pytest.skip("races between connections need PostgreSQL; SQLite serialises its writers")


class SchedulerThreads:
    """Scheduler loops side by side, each in a thread with its own engine."""

    def __init__(self, settings, count):
        self.engines = [get_engine(settings) for _ in range(count)]
        self.schedulers = [
            Scheduler(get_session_factory(engine), Settings.from_mapping(settings), Mailer.from_settings(settings))
            for engine in self.engines
        ]
        self.stop_event = threading.Event()
        start = threading.Barrier(count)

        def run(scheduler):
            start.wait()
            scheduler.run(self.stop_event)

        self.threads = [
            threading.Thread(target=run, args=(s,), name=f"scheduler-{i}", daemon=True)
            for i, s in enumerate(self.schedulers)
        ]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)
        alive = [t.name for t in self.threads if t.is_alive()]
        for engine in self.engines:
            engine.dispose()
        assert not alive, f"scheduler threads did not stop: {alive}"


@pytest.fixture
def scheduler_threads(scheduler_settings):
    return lambda count=2: SchedulerThreads(scheduler_settings, count)


def wait_until(condition, timeout=60, message="condition"):
    """Polls condition() until it is true."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.02)
