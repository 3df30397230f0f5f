"""`GET /healthz`: does the database answer within HEALTH_TIMEOUT seconds?

The probe runs in a thread of its own, so a database that hangs (a lost
connection, a full pool, a server that accepts and never answers) cannot
hang the health check: the answer comes after HEALTH_TIMEOUT at the latest.
Concurrent checks share one probe, and while a probe hangs no new one is
started, so a hung database does not pile up threads either.
"""
import logging
import threading
import time

from sqlalchemy import text

log = logging.getLogger(__name__)

HEALTH_TIMEOUT = 2.0


class Probe:
    def __init__(self):
        self.started = time.monotonic()
        self.done = threading.Event()
        self.ok = False


class DatabaseHealth:
    def __init__(self, engine, timeout=HEALTH_TIMEOUT):
        self.engine = engine
        self.timeout = timeout
        self.lock = threading.Lock()
        self.probe = None

    def answers(self):
        with self.lock:
            probe = self.probe
            if probe is None or probe.done.is_set():
                probe = self.probe = Probe()
                threading.Thread(target=self._run, args=(probe,), name="jobrunner-healthz",
                                 daemon=True).start()
        remaining = self.timeout - (time.monotonic() - probe.started)
        return probe.done.wait(max(remaining, 0)) and probe.ok

    def _run(self, probe):
        try:
            with self.engine.connect() as connection:
                with connection.begin():
                    if connection.dialect.name == "postgresql":
                        # The server gives up on its own too; SET LOCAL ends
                        # with this transaction, the pooled connection keeps
                        # its own setting.
                        milliseconds = int(self.timeout * 1000)
                        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
                    connection.execute(text("SELECT 1")).scalar()
            probe.ok = True
        except Exception as exc:
            log.warning("health check: the database does not answer: %s", exc)
        finally:
            probe.done.set()
