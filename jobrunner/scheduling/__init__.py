"""Scheduling: claiming, returning, rescheduling, chains and the scheduler loop."""
import logging
import os
import threading

from pyramid.events import ApplicationCreated, NewRequest
from pyramid_mailer import get_mailer
from pyramid_mailer.interfaces import IMailer

from .mail import build_mailer

log = logging.getLogger(__name__)

REGISTRY_KEY = "jobrunner.scheduler"


class EmbeddedScheduler:
    """The scheduler loop in a daemon thread of the web process, started
    once per process: a process forked from the one that started it (a
    pre-forking server) starts its own on its first request."""

    def __init__(self, registry):
        self.registry = registry
        self.lock = threading.Lock()
        self.pid = None
        self.thread = None
        self.stop_event = threading.Event()

    def ensure_started(self):
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            from .daemon import run_scheduler

            self.pid = os.getpid()
            self.stop_event = threading.Event()
            mailer = self.registry.queryUtility(IMailer)
            self.thread = threading.Thread(
                target=self._run,
                args=(run_scheduler, self.registry.jobrunner_settings, self.stop_event, mailer),
                name="jobrunner-scheduler",
                daemon=True,
            )
            self.thread.start()

    @staticmethod
    def _run(run_scheduler, settings, stop_event, mailer):
        try:
            run_scheduler(settings, stop_event, mailer=mailer)
        except Exception:  # e.g. a database URL that fails: the web process keeps serving
            log.exception("the embedded scheduler could not start")

    def stop(self, timeout=None):
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)


def _start_embedded(event):
    registry = event.app.registry if isinstance(event, ApplicationCreated) else event.request.registry
    scheduler = registry.get(REGISTRY_KEY)
    if scheduler is not None:
        scheduler.ensure_started()


def includeme(config):
    # pyramid_mailer.debug in pyramid.includes has registered its mailer
    # already; it stays the configured one.
    if config.registry.queryUtility(IMailer) is None:
        config.registry.registerUtility(build_mailer(config.registry.jobrunner_settings), IMailer)
        config.add_request_method(get_mailer, "mailer", reify=True)
    if config.registry.jobrunner_settings.scheduler_embedded:
        config.registry[REGISTRY_KEY] = EmbeddedScheduler(config.registry)
        config.add_subscriber(_start_embedded, ApplicationCreated)
        config.add_subscriber(_start_embedded, NewRequest)
