"""The scheduler loop: `jobrunner-scheduler CONFIG_URI`, or the same loop in
a thread of the web process (`jobrunner.scheduler.embedded`).

Each round runs every duty of duties.py and run_limits.py: the candidates are listed in one
transaction, then each is handled in a short transaction of its own, so one
bad candidate or a lock held elsewhere holds back nothing else. An error is
logged and the loop goes on: the database may come back.
"""
import logging
import os
import signal
import sys
import threading

import transaction

from ..models import begin_write, get_engine, get_session_factory, get_tm_session, utcnow
from . import mail
from .retention import Retention
from .webhooks import WebhookSender
from .duties import (
    check_pool,
    expand_run,
    pools_to_check,
    runs_of_unresponsive_workers,
    runs_to_expand,
    settle_run_of_unresponsive_worker,
)
from .run_limits import fail_overdue_run, overdue_runs, replace_run, runs_to_replace

log = logging.getLogger(__name__)


def mailer_from_settings(settings):
    """The mailer the web process would use with these settings."""
    from pyramid_mailer.mailer import DebugMailer

    includes = (settings.ini.get("pyramid.includes") or "").split()
    if "pyramid_mailer.debug" in includes:
        # Where pyramid_mailer.debug puts the web process's mails.
        return DebugMailer(os.path.join(os.getcwd(), "mail"))
    return mail.build_mailer(settings)


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


class Scheduler:
    """One scheduler: its own transaction manager, so its mail goes out only
    when the transaction that caused it commits. `settings` is a
    jobrunner.settings.Settings (bad values fail when it is built)."""

    def __init__(self, session_factory, settings, mailer):
        self.session_factory = session_factory
        self.settings = settings
        self.interval = settings.scheduler_interval
        self.tm = transaction.TransactionManager(explicit=True)
        self.context = mail.mail_context_from_settings(settings, mailer, self.tm)
        self.retention = Retention(settings)
        # The senders' threads store outcomes in sessions of their own: the
        # transaction manager above belongs to the loop's thread.
        self.webhooks = WebhookSender(
            lambda work, write=True: in_own_transaction(session_factory, work, write),
            settings.webhook_secret,
            settings.webhook_timeout,
        )
        self.iterations = 0
        self.failed_iterations = 0
        self._failing = False
        # When the database answered again after an iteration failed on it
        # (None: no outage seen).
        self.back_since = None
        self._database_lost = False

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
        try:
            return self._run_once(stop_event)
        except Exception:
            self._database_lost = True
            raise

    def judges_workers(self, now):
        """Whether workers may be judged by their pings now. While the
        database was away no ping could be stored: after an outage the
        workers get one unresponsive limit to ping again, or every run under
        way would be failed the moment the database is back."""
        if self.back_since is None:
            return True
        return (now - self.back_since).total_seconds() >= self.settings.unresponsive_limit

    def _run_once(self, stop_event):
        settings, context = self.settings, self.context
        summary = {"expanded": 0, "failed": 0, "freed": 0, "alerted": 0, "recovered": 0,
                   "timed_out": 0, "replaced": 0, "webhooks": 0, "purged": 0}

        now = utcnow()
        to_expand = self.in_transaction(lambda s: runs_to_expand(s, now), write=False)
        if self._database_lost:
            self._database_lost = False
            self.back_since = now
        for created in self._each(
            to_expand, lambda s, c: len(expand_run(s, c[0], c[1], now)), stop_event
        ):
            summary["expanded"] += 1 if created else 0

        now = utcnow()
        judging = self.judges_workers(now)
        held = self.in_transaction(
            lambda s: runs_of_unresponsive_workers(s, now, settings), write=False
        ) if judging else []
        for outcome in self._each(
            held,
            lambda s, c: settle_run_of_unresponsive_worker(s, c[0], c[1], now, settings, context),
            stop_event,
        ):
            if outcome:
                summary[outcome] += 1

        now = utcnow()
        overdue = self.in_transaction(lambda s: overdue_runs(s, now, settings), write=False)
        for outcome in self._each(
            overdue, lambda s, c: fail_overdue_run(s, c[0], c[1], now, settings, context), stop_event
        ):
            if outcome:
                summary[outcome] += 1

        now = utcnow()
        to_replace = self.in_transaction(lambda s: runs_to_replace(s, now), write=False)
        for outcome in self._each(
            to_replace, lambda s, c: replace_run(s, c[0], c[1], c[2], now), stop_event
        ):
            if outcome:
                summary[outcome] += 1

        now = utcnow()
        pools = self.in_transaction(
            lambda s: pools_to_check(s, now, settings), write=False) if judging else []
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
    engine = get_engine(settings.ini)
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

    from ..settings import MissingEnvironment, SettingsError, load_settings

    parser = argparse.ArgumentParser(
        prog="jobrunner-scheduler",
        description="Job-Runner scheduler: run-on-all-workers expansion, unresponsive "
        "workers and pools, webhook delivery, retention (settings from the [app:main] section).",
    )
    parser.add_argument("config_uri", help="the paste ini file, e.g. production.ini")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.config_uri)
    try:
        settings = load_settings(args.config_uri)
    except (MissingEnvironment, SettingsError) as exc:
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
