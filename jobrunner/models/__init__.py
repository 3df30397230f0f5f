"""Database set-up: engine, sessions bound to the request's transaction."""
import logging

import zope.sqlalchemy
from sqlalchemy import engine_from_config, event
from sqlalchemy.orm import configure_mappers, sessionmaker

from .meta import Base, metadata, utcnow  # noqa: F401
from .observability import AuditEvent, RunPurgeTally, WebhookDelivery  # noqa: F401
from .tables import (  # noqa: F401
    Group,
    IntervalType,
    Job,
    JobTemplate,
    KillRequest,
    Project,
    RescheduleExclude,
    Run,
    RunLog,
    User,
    Worker,
    WorkerPool,
)

from .security import ApiToken, LoginFailure, RequestNonce, UserSession  # noqa: F401,E402

log = logging.getLogger(__name__)

configure_mappers()

WRITE_OPTION = "jobrunner_write"


def normalize_url(url):
    """`postgresql://` means psycopg 3 here, the driver we ship."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def get_engine(settings, prefix="sqlalchemy."):
    settings = dict(settings)
    settings[prefix + "url"] = normalize_url(settings[prefix + "url"])
    # A connection of the pool may have died with its server (a restart,
    # pg_terminate_backend): test each one as it is checked out, so the
    # first request after the database is back does not fail on it.
    pre_ping = str(settings.pop(prefix + "pool_pre_ping", "true")).strip().lower()
    engine = engine_from_config(settings, prefix, future=True,
                                pool_pre_ping=pre_ping in ("true", "yes", "on", "1"))
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine):
    # pysqlite's own transaction handling breaks SAVEPOINT and starts
    # transactions late; take over BEGIN ourselves. A transaction that will
    # write starts with BEGIN IMMEDIATE so concurrent writers queue on the
    # busy timeout instead of failing when they upgrade a read lock.
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def get_session_factory(engine):
    return sessionmaker(bind=engine, expire_on_commit=False)


def get_tm_session(session_factory, transaction_manager, request=None):
    """A session joined to the transaction manager: pyramid_tm commits it."""
    dbsession = session_factory(info={"request": request})
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def begin_write(dbsession):
    """Mark the session's transaction as a writer (matters on SQLite only)."""
    if dbsession.get_bind().dialect.name == "sqlite" and not dbsession.in_transaction():
        dbsession.connection(execution_options={WRITE_OPTION: True})


def commit_midway(request):
    """Commit what the request did so far and begin the transaction
    pyramid_tm will end. What was committed stays: from here on the request
    is never run again by pyramid_retry (a second attempt would repeat it)."""
    request.tm.commit()
    attempt = request.environ.get("retry.attempt")
    if attempt is not None:
        request.environ["retry.attempts"] = attempt + 1
    request.tm.begin()


def _log_retry(event):
    log.warning("%s %s: a transient database error (%s); trying the request again",
                event.request.method, event.request.path, event.exception)


def includeme(config):
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    # A 4xx or 5xx answer changes nothing.
    settings.setdefault("tm.commit_veto", "pyramid_tm.default_commit_veto")
    # pyramid_tm would otherwise ask for the user (a database query, and a
    # nonce stored for a signed request) before any exception view can
    # answer: with the database away that was a bare 500 from waitress.
    settings.setdefault("tm.annotate_user", "false")
    config.include("pyramid_tm")
    config.include("pyramid_retry")
    config.add_subscriber(_log_retry, "pyramid_retry.IBeforeRetry")
    engine = get_engine(settings)
    session_factory = get_session_factory(engine)
    config.registry["dbsession_factory"] = session_factory
    config.registry["dbengine"] = engine

    def dbsession(request):
        session = get_tm_session(request.registry["dbsession_factory"], request.tm, request=request)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            begin_write(session)
        return session

    config.add_request_method(dbsession, reify=True)
