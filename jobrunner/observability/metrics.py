"""`GET /metrics`: Prometheus' text format through prometheus_client.

Runs and workers are counted in the database at scrape time (a custom
collector), so every server process tells the same; the HTTP request counter
and histogram are this process's own (a tween measures every request).
"""
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select

from ..queries.run_states import RUN_STATES
from ..models import Run, Worker, utcnow
from ..scheduling.duties import is_responsive, is_unresponsive, unresponsive_cutoff
from ..scheduling.enqueueable import due_runs
from ..scheduling.retention import count_by_result, purged_counts

REGISTRY_KEY = "jobrunner.metrics_registry"
GAUGED_STATES = ("scheduled", "in_queue", "started")
KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def run_and_worker_metrics(dbsession, settings, now):
    """The metric families that the database knows, at `now` (`settings`:
    a jobrunner.settings.Settings)."""
    runs = GaugeMetricFamily("jobrunner_runs", "Runs that have not completed, by state.",
                             labels=["state"])
    for state in GAUGED_STATES:
        count = dbsession.scalar(select(func.count()).select_from(Run).where(RUN_STATES[state]()))
        runs.add_metric([state], count)

    due_count, oldest = dbsession.execute(
        due_runs(select(func.count(), func.min(Run.schedule_dts)).select_from(Run), now)
    ).one()
    due = GaugeMetricFamily("jobrunner_runs_due",
                            "Scheduled runs that are due and not claimed by a worker.", value=due_count)
    age = 0.0 if oldest is None else max((now - oldest.replace(tzinfo=now.tzinfo)).total_seconds(), 0.0)
    oldest_age = GaugeMetricFamily("jobrunner_oldest_due_run_age_seconds",
                                   "Seconds since the oldest due, unclaimed run was due (0: none).",
                                   value=age)

    completed = CounterMetricFamily("jobrunner_runs_completed",
                                    "Runs completed, by result (retention's deletions included).",
                                    labels=["result"])
    in_table = count_by_result(dbsession)
    purged = purged_counts(dbsession)
    for result in ("success", "failure"):
        completed.add_metric([result], in_table[result] + purged[result])

    cutoff = unresponsive_cutoff(settings, now)
    workers = GaugeMetricFamily("jobrunner_workers", "Workers by state.", labels=["state"])
    for state, condition in (
        ("responsive", is_responsive(cutoff)),
        ("unresponsive", is_unresponsive(cutoff)),
        ("disabled", Worker.enqueue_is_enabled.is_(False)),
    ):
        workers.add_metric([state], dbsession.scalar(select(func.count(Worker.id)).where(condition)))

    ping_age = GaugeMetricFamily("jobrunner_worker_last_ping_age_seconds",
                                 "Seconds since each worker's last ping (workers that pinged).",
                                 labels=["worker"])
    rows = dbsession.execute(
        select(Worker.id, Worker.title, Worker.ping_response_dts)
        .where(Worker.ping_response_dts.is_not(None))
        .order_by(Worker.title, Worker.id)
    ).all()
    seen = set()
    for worker_id, title, pinged in rows:
        # Titles need not be unique; a label set must be.
        label = title if title not in seen else f"{title}#{worker_id}"
        seen.add(title)
        ping_age.add_metric([label], max((now - pinged).total_seconds(), 0.0))
    return [runs, due, oldest_age, completed, workers, ping_age]


class DatabaseCollector:
    """Asks the database at each scrape, in a session of its own."""

    def __init__(self, registry):
        self.registry = registry

    def describe(self):
        # Nothing at registration time: no database query before a scrape.
        return []

    def collect(self):
        dbsession = self.registry["dbsession_factory"]()
        try:
            yield from run_and_worker_metrics(dbsession, self.registry.jobrunner_settings, utcnow())
        finally:
            dbsession.rollback()
            dbsession.close()


class HTTPMetrics:
    def __init__(self, metrics_registry):
        self.requests = Counter("jobrunner_http_requests", "HTTP requests answered by this process.",
                                ["method", "status"], registry=metrics_registry)
        self.duration = Histogram("jobrunner_http_request_duration_seconds",
                                  "Time to answer an HTTP request, in seconds.",
                                  registry=metrics_registry)

    def observe(self, method, status, seconds):
        method = method if method in KNOWN_METHODS else "other"
        self.requests.labels(method=method, status=str(status)).inc()
        self.duration.observe(seconds)


def build_registry(registry):
    """A prometheus registry per app (tests build several apps in one process)."""
    metrics_registry = CollectorRegistry(auto_describe=False)
    metrics_registry.register(DatabaseCollector(registry))
    registry[REGISTRY_KEY] = metrics_registry
    registry["jobrunner.http_metrics"] = HTTPMetrics(metrics_registry)
    return metrics_registry


def metrics_tween_factory(handler, registry):
    http_metrics = registry["jobrunner.http_metrics"]

    def tween(request):
        start = time.perf_counter()
        try:
            response = handler(request)
        except Exception:
            http_metrics.observe(request.method, 500, time.perf_counter() - start)
            raise
        # A view may ask the transaction tween (below this one) to commit a
        # 4xx answer; the client has no use for that header.
        response.headers.pop("x-tm", None)
        http_metrics.observe(request.method, response.status_code, time.perf_counter() - start)
        return response

    return tween
