"""The scheduler (SPEC section 7): `jobrunner-scheduler CONFIG_URI`, or the
same loop in a thread of the web process (`jobrunner.scheduler.embedded`).

Every duty is idempotent and safe with several schedulers at once. A duty is
split in two plain functions over a SQLAlchemy session: one lists the
candidates, the other handles one candidate after taking its rows. The loop
runs the listing and then each candidate in a short transaction of its own;
the duty functions below run the same steps in the caller's transaction.

How two schedulers stay out of each other's way on PostgreSQL: a candidate's
job row (or pool row) is taken first with FOR UPDATE SKIP LOCKED, in the
same order as the API's claims and returns take them (job, then run), then
the run row with FOR UPDATE SKIP LOCKED, re-checking the candidate's
conditions. A row held by someone else is skipped and retried in the next
iteration; a row already handled no longer matches. On SQLite the loop's
transactions start with BEGIN IMMEDIATE, so writers are serialised.
"""
import logging
import os
import signal
import sys
import threading
from datetime import timedelta

import transaction
from sqlalchemy import and_, exists, or_, select

from ..models import (
    Job,
    Run,
    Worker,
    WorkerPool,
    begin_write,
    get_engine,
    get_session_factory,
    get_tm_session,
    utcnow,
)
from ..models.tables import worker_pool_workers
from . import mail, notify
from .retention import Retention
from .returns import process_return
from .runs import RunConflict, append_log, create_run, mark_returned
from .webhooks import DEFAULT_TIMEOUT as DEFAULT_WEBHOOK_TIMEOUT
from .webhooks import WebhookSender

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0
DEFAULT_PING_INTERVAL = 60.0
DEFAULT_PING_MARGIN = 15.0
DEFAULT_UNRESPONSIVE_AFTER_INTERVALS = 3.0


# --- settings ----------------------------------------------------------------


def _seconds(settings, name, default):
    value = settings.get(name)
    if value is None or str(value).strip() == "":
        return float(default)
    seconds = float(value)
    if seconds < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return seconds


def scheduler_interval(settings):
    return _seconds(settings, "jobrunner.scheduler.interval", DEFAULT_INTERVAL)


def unresponsive_limit(settings):
    """Seconds without a ping after which an enabled worker is unresponsive."""
    ping_interval = _seconds(settings, "jobrunner.worker.ping_interval", DEFAULT_PING_INTERVAL)
    margin = _seconds(settings, "jobrunner.worker.ping_margin", DEFAULT_PING_MARGIN)
    intervals = _seconds(
        settings, "jobrunner.worker.unresponsive_after_intervals", DEFAULT_UNRESPONSIVE_AFTER_INTERVALS
    )
    return intervals * ping_interval + margin


def unresponsive_cutoff(settings, now):
    return now - timedelta(seconds=unresponsive_limit(settings))


# --- row taking ----------------------------------------------------------------


def take_job(dbsession, job_id):
    """Locks the job's row unless another transaction holds it (claims and
    returns of the API lock it too). SQLite ignores FOR UPDATE."""
    taken = dbsession.scalar(
        select(Job.id).where(Job.id == job_id).with_for_update(skip_locked=True)
    )
    return taken is not None


def is_unresponsive(cutoff):
    """SQL condition on Worker: enabled, and no ping since the cutoff."""
    return and_(
        Worker.enqueue_is_enabled.is_(True),
        or_(Worker.ping_response_dts.is_(None), Worker.ping_response_dts < cutoff),
    )


def is_responsive(cutoff):
    return and_(Worker.enqueue_is_enabled.is_(True), Worker.ping_response_dts >= cutoff)


# --- duty 1: run-on-all-workers expansion ---------------------------------------


def _to_expand(now):
    return [
        Run.worker_id.is_(None),
        Run.enqueue_dts.is_(None),
        Run.return_dts.is_(None),
        Run.schedule_dts <= now,
        Job.run_on_all_workers.is_(True),
    ]


def runs_to_expand(dbsession, now):
    """(run id, job id) of the due, unexpanded runs of run-on-all-workers jobs."""
    query = (
        select(Run.id, Run.job_id)
        .join(Job, Job.id == Run.job_id)
        .where(*_to_expand(now))
        .order_by(Run.schedule_dts, Run.id)
    )
    return [tuple(row) for row in dbsession.execute(query)]


def expand_run(dbsession, run_id, job_id, now):
    """One run per enabled worker of the job's pool, in the original's
    schedule, then the original goes. Returns the runs created ([] when
    another scheduler has it or has done it already)."""
    if not take_job(dbsession, job_id):
        return []
    run = dbsession.scalar(
        select(Run)
        .join(Job, Job.id == Run.job_id)
        .where(Run.id == run_id, *_to_expand(now))
        .with_for_update(skip_locked=True, of=Run)
    )
    if run is None:
        return []
    job = dbsession.get(Job, job_id)
    workers = dbsession.scalars(
        select(Worker)
        .join(worker_pool_workers, worker_pool_workers.c.worker_id == Worker.id)
        .where(
            worker_pool_workers.c.worker_pool_id == job.worker_pool_id,
            Worker.enqueue_is_enabled.is_(True),
        )
        .order_by(Worker.id)
    ).all()
    if not workers:
        # Deleting the run would lose the schedule; it waits for a worker.
        log.debug("run %s of job %s waits: its pool has no enabled worker", run.id, job.id)
        return []
    schedule_id = run.schedule_id if run.schedule_id is not None else run.id
    created = [
        create_run(
            dbsession,
            job,
            run.schedule_dts,
            is_manual=run.is_manual,
            schedule_children=run.schedule_children,
            worker_id=worker.id,
            schedule_id=schedule_id,
        )
        for worker in workers
    ]
    dbsession.delete(run)
    dbsession.flush()
    log.info("expanded run %s of job %r into %d runs", run_id, job.title, len(created))
    return created


def expand_run_on_all_workers(dbsession, now):
    """Duty 1 in the caller's transaction. Returns the runs created."""
    created = []
    for run_id, job_id in runs_to_expand(dbsession, now):
        created.extend(expand_run(dbsession, run_id, job_id, now))
    return created


# --- duty 2: runs of unresponsive workers ----------------------------------------


def _held_by_unresponsive(cutoff, now):
    return [
        Run.return_dts.is_(None),
        is_unresponsive(cutoff),
        or_(
            Run.enqueue_dts.is_not(None),
            # A due run pinned to the worker by a run-on-all-workers schedule
            # can run nowhere else; left alone it would hold back the
            # schedule's children and the job's next schedule for ever.
            and_(Job.run_on_all_workers.is_(True), Run.schedule_dts <= now),
        ),
    ]


def runs_of_unresponsive_workers(dbsession, now, settings):
    """(run id, job id) of the runs that unresponsive workers hold."""
    cutoff = unresponsive_cutoff(settings, now)
    query = (
        select(Run.id, Run.job_id)
        .join(Worker, Worker.id == Run.worker_id)
        .join(Job, Job.id == Run.job_id)
        .where(*_held_by_unresponsive(cutoff, now))
        .order_by(Run.id)
    )
    return [tuple(row) for row in dbsession.execute(query)]


def _local(context, dts):
    return dts.astimezone(context.tz).strftime("%Y-%m-%d %H:%M:%S %Z") if dts else "never"


def settle_run_of_unresponsive_worker(dbsession, run_id, job_id, now, settings, context):
    """A started run (or any run of a run-on-all-workers schedule) is returned
    as failed, with the reason in its log, and its return is processed like
    any other; a run that was only in queue is freed for the pool.
    Returns "failed", "freed" or None (another scheduler has it)."""
    if not take_job(dbsession, job_id):
        return None
    cutoff = unresponsive_cutoff(settings, now)
    run = dbsession.scalar(
        select(Run)
        .join(Worker, Worker.id == Run.worker_id)
        .join(Job, Job.id == Run.job_id)
        .where(Run.id == run_id, *_held_by_unresponsive(cutoff, now))
        .with_for_update(skip_locked=True, of=Run)
    )
    if run is None:
        return None
    job = dbsession.get(Job, job_id)
    worker = dbsession.get(Worker, run.worker_id)
    started = run.start_dts is not None
    if not started and not job.run_on_all_workers:
        run.worker_id = None
        run.enqueue_dts = None
        run.pid = None
        dbsession.flush()
        log.info("freed run %s of job %r: worker %r is unresponsive", run.id, job.title, worker.title)
        return "freed"
    try:
        mark_returned(dbsession, run, now, False)
    except RunConflict:
        return None
    append_log(
        dbsession,
        run,
        f"[jobrunner scheduler] {_local(context, now)}: the worker {worker.title!r} is "
        f"unresponsive (last ping: {_local(context, worker.ping_response_dts)}; allowed "
        f"{unresponsive_limit(settings):g} seconds without a ping). The run was returned as "
        f"failed{'' if started else ' before it started'}.\n",
    )
    process_return(dbsession, run, context)
    log.warning("returned run %s of job %r as failed: worker %r is unresponsive",
                run.id, job.title, worker.title)
    return "failed"


def fail_unresponsive_workers(dbsession, now, settings, context):
    """Duty 2 in the caller's transaction. Returns {"failed": n, "freed": n}."""
    counts = {"failed": 0, "freed": 0}
    for run_id, job_id in runs_of_unresponsive_workers(dbsession, now, settings):
        outcome = settle_run_of_unresponsive_worker(dbsession, run_id, job_id, now, settings, context)
        if outcome:
            counts[outcome] += 1
    return counts


# --- duty 3: pool alerts -----------------------------------------------------------


def _pool_workers(condition):
    return (
        exists()
        .where(
            worker_pool_workers.c.worker_pool_id == WorkerPool.id,
            worker_pool_workers.c.worker_id == Worker.id,
            condition,
        )
        .correlate(WorkerPool)
    )


def _pool_state_changes(cutoff):
    has_enabled = _pool_workers(Worker.enqueue_is_enabled.is_(True))
    has_responsive = _pool_workers(is_responsive(cutoff))
    return or_(
        and_(WorkerPool.unresponsive_since_dts.is_(None), has_enabled, ~has_responsive),
        and_(WorkerPool.unresponsive_since_dts.is_not(None), has_responsive),
    )


def pools_to_check(dbsession, now, settings):
    """Pools whose outage starts or ends now."""
    cutoff = unresponsive_cutoff(settings, now)
    return list(
        dbsession.scalars(
            select(WorkerPool.id).where(_pool_state_changes(cutoff)).order_by(WorkerPool.id)
        )
    )


def check_pool(dbsession, pool_id, now, settings, context):
    """Mails once per outage. Returns "alerted", "recovered" or None."""
    cutoff = unresponsive_cutoff(settings, now)
    pool = dbsession.scalar(
        select(WorkerPool)
        .where(WorkerPool.id == pool_id, _pool_state_changes(cutoff))
        .with_for_update(skip_locked=True)
    )
    if pool is None:
        return None
    if pool.unresponsive_since_dts is not None:
        pool.unresponsive_since_dts = None
        dbsession.flush()
        log.info("worker pool %r answers again", pool.title)
        return "recovered"
    workers = dbsession.scalars(
        select(Worker)
        .join(worker_pool_workers, worker_pool_workers.c.worker_id == Worker.id)
        .where(worker_pool_workers.c.worker_pool_id == pool.id, Worker.enqueue_is_enabled.is_(True))
        .order_by(Worker.id)
    ).all()
    pool.unresponsive_since_dts = now
    dbsession.flush()
    notify.pool_unresponsive(dbsession, context, pool, workers)
    log.warning("worker pool %r is unresponsive", pool.title)
    return "alerted"


def alert_unresponsive_pools(dbsession, now, settings, context):
    """Duty 3 in the caller's transaction. Returns {"alerted": n, "recovered": n}."""
    counts = {"alerted": 0, "recovered": 0}
    for pool_id in pools_to_check(dbsession, now, settings):
        outcome = check_pool(dbsession, pool_id, now, settings, context)
        if outcome:
            counts[outcome] += 1
    return counts


# --- the loop ------------------------------------------------------------------------


def in_own_transaction(session_factory, work, write=True):
    """work(dbsession) in a plain session committed at the end (no mail)."""
    dbsession = session_factory()
    try:
        if write:
            begin_write(dbsession)
        result = work(dbsession)
        dbsession.commit()
        return result
    finally:
        dbsession.close()


def mailer_from_settings(settings):
    """The mailer the web process would use with these settings."""
    from pyramid_mailer.mailer import DebugMailer

    includes = (settings.get("pyramid.includes") or "").split()
    if "pyramid_mailer.debug" in includes:
        # Where pyramid_mailer.debug puts the web process's mails.
        return DebugMailer(os.path.join(os.getcwd(), "mail"))
    return mail.build_mailer(settings)


class Scheduler:
    """One scheduler: its own transaction manager, so its mail goes out only
    when the transaction that caused it commits."""

    def __init__(self, session_factory, settings, mailer):
        self.session_factory = session_factory
        self.settings = settings
        self.interval = scheduler_interval(settings)
        unresponsive_limit(settings)  # bad settings fail at start, not in the loop
        self.tm = transaction.TransactionManager(explicit=True)
        self.context = mail.mail_context_from_settings(settings, mailer, self.tm)
        self.retention = Retention(settings)  # bad settings fail at start
        # The senders' threads store outcomes in sessions of their own: the
        # transaction manager above belongs to the loop's thread.
        self.webhooks = WebhookSender(
            lambda work, write=True: in_own_transaction(session_factory, work, write),
            settings.get("jobrunner.webhook_secret") or "",
            _seconds(settings, "jobrunner.webhook_timeout", DEFAULT_WEBHOOK_TIMEOUT),
        )
        self.iterations = 0
        self.failed_iterations = 0
        self._failing = False

    def in_transaction(self, work, write=True):
        """work(dbsession) in a transaction of its own, committed at the end."""
        self.tm.begin()
        try:
            dbsession = get_tm_session(self.session_factory, self.tm)
            if write:
                begin_write(dbsession)
            result = work(dbsession)
            self.tm.commit()
            return result
        except BaseException:
            try:
                self.tm.abort()
            except Exception:  # the connection may be gone; nothing left to undo
                log.debug("abort failed", exc_info=True)
            raise

    def _each(self, candidates, handle, stop_event):
        outcomes = []
        for candidate in candidates:
            if stop_event is not None and stop_event.is_set():
                break
            try:
                outcomes.append(self.in_transaction(lambda s: handle(s, candidate)))
            except Exception:
                # One bad candidate must not hold back the others.
                log.exception("scheduler: handling %r failed", candidate)
        return outcomes

    def run_once(self, stop_event=None):
        """One pass over every duty. Returns what was done, for logs and tests."""
        settings, context = self.settings, self.context
        summary = {"expanded": 0, "failed": 0, "freed": 0, "alerted": 0, "recovered": 0,
                   "webhooks": 0, "purged": 0}

        now = utcnow()
        to_expand = self.in_transaction(lambda s: runs_to_expand(s, now), write=False)
        for created in self._each(
            to_expand, lambda s, c: len(expand_run(s, c[0], c[1], now)), stop_event
        ):
            summary["expanded"] += 1 if created else 0

        now = utcnow()
        held = self.in_transaction(
            lambda s: runs_of_unresponsive_workers(s, now, settings), write=False
        )
        for outcome in self._each(
            held,
            lambda s, c: settle_run_of_unresponsive_worker(s, c[0], c[1], now, settings, context),
            stop_event,
        ):
            if outcome:
                summary[outcome] += 1

        now = utcnow()
        pools = self.in_transaction(lambda s: pools_to_check(s, now, settings), write=False)
        for outcome in self._each(
            pools, lambda s, pool_id: check_pool(s, pool_id, now, settings, context), stop_event
        ):
            if outcome:
                summary[outcome] += 1

        summary["webhooks"] = self.webhooks.deliver_due()
        summary["purged"] = self.retention.run(self.in_transaction, stop_event)
        return summary

    def run(self, stop_event):
        """Every `interval` seconds until stop_event is set; errors are logged
        and the loop goes on (the database may come back)."""
        log.info("scheduler started (every %g s)", self.interval)
        while not stop_event.is_set():
            try:
                summary = self.run_once(stop_event)
            except Exception as exc:
                self.failed_iterations += 1
                if self._failing:
                    log.error("scheduler iteration failed again: %s", exc)
                else:
                    log.exception("scheduler iteration failed")
                self._failing = True
            else:
                if self._failing:
                    log.info("scheduler recovered")
                self._failing = False
                if any(summary.values()):
                    log.info("scheduler: %s", ", ".join(f"{k} {v}" for k, v in summary.items() if v))
            self.iterations += 1
            stop_event.wait(self.interval)
        # Attempts under way finish (each within its timeouts) and are stored.
        self.webhooks.shutdown()
        log.info("scheduler stopped")


def run_scheduler(settings, stop_event, mailer=None):
    """The scheduler loop on an engine of its own, until stop_event is set."""
    engine = get_engine(settings)
    try:
        scheduler = Scheduler(
            get_session_factory(engine), settings, mailer or mailer_from_settings(settings)
        )
        scheduler.run(stop_event)
    finally:
        engine.dispose()


def main(argv=None):
    """`jobrunner-scheduler CONFIG_URI`: SIGTERM or SIGINT stop it between
    iterations, with exit status 0."""
    import argparse

    from pyramid.paster import setup_logging

    from ..settings import MissingEnvironment, get_settings

    parser = argparse.ArgumentParser(
        prog="jobrunner-scheduler",
        description="Job-Runner scheduler: run-on-all-workers expansion, unresponsive "
        "workers and pools (settings from the [app:main] section).",
    )
    parser.add_argument("config_uri", help="the paste ini file, e.g. production.ini")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.config_uri)
    try:
        settings = get_settings(args.config_uri)
    except MissingEnvironment as exc:
        parser.exit(2, f"jobrunner-scheduler: {exc}\n")

    stop_event = threading.Event()

    def stop(signum, frame):
        log.info("scheduler: %s received, stopping", signal.Signals(signum).name)
        stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    run_scheduler(settings, stop_event)
    return 0


if __name__ == "__main__":
    sys.exit(main())
