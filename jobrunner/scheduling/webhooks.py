"""Webhooks: a POST for each event that sends mail (and, when a job asks for
it, for each successful run).

A delivery is a row of the outbox table written in the transaction of the
event, so it exists exactly when the event committed. The scheduler sends
due deliveries after the commit: it takes a few rows at a time (FOR UPDATE
SKIP LOCKED on PostgreSQL, so two schedulers never take the same row), leases
them by moving their next attempt a minute on, and posts each from a small
thread pool with short timeouts, so a hanging endpoint holds up neither the
loop nor the other deliveries. A 2xx answer ends a delivery; anything else is
retried after RETRY_DELAY seconds, then with doubling delays (at most
MAX_DELAY apart) until MAX_ATTEMPTS attempts have failed, which takes hours.
Everything is in the table: a restart loses no delivery, and one that
succeeded is never sent again (a process killed between a 2xx and storing it
sends it once more: at least once, never lost).
"""
import hashlib
import hmac
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
from sqlalchemy import delete, or_, select, update

from ..models import WebhookDelivery, utcnow

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-JobRunner-Signature"
EVENTS = ("run_failed", "run_succeeded", "reschedule_failed", "pool_unresponsive")
RETRY_DELAY = 10.0
MAX_DELAY = 3600.0
MAX_ATTEMPTS = 12
DEFAULT_TIMEOUT = 5.0
# Longer than an attempt takes (connect and read timeouts, then storing the
# outcome), so a leased row is not sent twice at once.
LEASE = timedelta(seconds=60)
SENDERS = 4
KEEP_FINISHED = timedelta(days=14)
MAX_ERROR_LENGTH = 500


# --- the URLs ----------------------------------------------------------------------


def job_webhook_urls(job):
    """The job's, its template's, its project's and its pool's URLs, each once
    (gathered like the notification addresses)."""
    from .mail import gather_from_job

    return gather_from_job(job, "webhook_urls")


# --- writing to the outbox ---------------------------------------------------------


def _run_data(run):
    if run is None:
        return None
    return {
        "id": run.id,
        "resource_uri": f"/api/v1/run/{run.id}/",
        "schedule_id": run.schedule_id,
        "worker": run.worker.title if run.worker is not None else None,
        "schedule_dts": run.schedule_dts.isoformat() if run.schedule_dts else None,
        "start_dts": run.start_dts.isoformat() if run.start_dts else None,
        "return_dts": run.return_dts.isoformat() if run.return_dts else None,
        "return_success": run.return_success,
        "is_manual": run.is_manual,
    }


def _job_data(job):
    return {"id": job.id, "title": job.title, "resource_uri": f"/api/v1/job/{job.id}/",
            "job_template": job.job_template.title, "worker_pool": job.worker_pool.title}


def _project_data(project):
    return {"id": project.id, "title": project.title, "resource_uri": f"/api/v1/project/{project.id}/"}


def queue(dbsession, urls, event, text, url, job=None, run=None, project=None, **extra):
    """One delivery per URL, in the caller's transaction."""
    if not urls:
        return []
    body = json.dumps(
        {
            "event": event,
            "text": " ".join(text.split()),
            "job": _job_data(job) if job is not None else None,
            "run": _run_data(run),
            "project": _project_data(project) if project is not None else None,
            "url": url,
            **extra,
        },
        sort_keys=True,
    )
    now = utcnow()
    deliveries = [
        WebhookDelivery(created_dts=now, event=event, url=target, body=body, attempts=0,
                        next_attempt_dts=now, last_error="")
        for target in urls
    ]
    dbsession.add_all(deliveries)
    dbsession.flush()
    return deliveries


def queue_run_event(dbsession, context, event, run, text):
    job = run.job
    queue(dbsession, job_webhook_urls(job), event, text,
          f"{context.base_url.rstrip('/')}/runs/{run.id}",
          job=job, run=run, project=job.job_template.project)


def queue_job_event(dbsession, context, event, job, text):
    queue(dbsession, job_webhook_urls(job), event, text,
          f"{context.base_url.rstrip('/')}/jobs/{job.id}",
          job=job, project=job.job_template.project)


def queue_pool_event(dbsession, context, event, pool, text):
    from .mail import split_addresses

    queue(dbsession, split_addresses(pool.webhook_urls), event, text,
          f"{context.base_url.rstrip('/')}/",
          pool={"id": pool.id, "title": pool.title, "resource_uri": f"/api/v1/worker_pool/{pool.id}/"})


# --- sending -----------------------------------------------------------------------


def signature(secret, body):
    digest = hmac.new((secret or "").encode("utf-8"), body.encode("utf-8"), hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def retry_delay(attempts):
    """Seconds before the next attempt after `attempts` failed ones."""
    return min(RETRY_DELAY * 2 ** (attempts - 1), MAX_DELAY)


def take_due(dbsession, now, limit):
    """Leases up to `limit` due deliveries: (id, url, body) of each."""
    rows = dbsession.execute(
        select(WebhookDelivery.id, WebhookDelivery.url, WebhookDelivery.body)
        .where(WebhookDelivery.delivered_dts.is_(None), WebhookDelivery.failed_dts.is_(None),
               WebhookDelivery.next_attempt_dts <= now)
        .order_by(WebhookDelivery.next_attempt_dts, WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if rows:
        dbsession.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([row.id for row in rows]))
            .values(next_attempt_dts=now + LEASE)
            .execution_options(synchronize_session=False)
        )
    return [tuple(row) for row in rows]


def post(url, body, secret, timeout=DEFAULT_TIMEOUT):
    """One attempt: (status or None, error text or "")."""
    headers = {"Content-Type": "application/json", "User-Agent": "jobrunner-webhook"}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    try:
        response = requests.post(url, data=body.encode("utf-8"), headers=headers,
                                 timeout=(timeout, timeout), allow_redirects=False)
        response.close()
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
    if 200 <= response.status_code < 300:
        return response.status_code, ""
    return response.status_code, f"HTTP {response.status_code}"


def store_outcome(dbsession, delivery_id, status, error, now):
    """A 2xx ends the delivery; anything else schedules the next attempt or,
    when the attempts are used up, gives up."""
    delivery = dbsession.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.delivered_dts is not None:
        return
    delivery.attempts += 1
    delivery.last_status = status
    delivery.last_error = error
    if not error:
        delivery.delivered_dts = now
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.failed_dts = now
        log.warning("webhook to %s given up after %d attempts: %s", delivery.url, delivery.attempts, error)
    else:
        delivery.next_attempt_dts = now + timedelta(seconds=retry_delay(delivery.attempts))
    dbsession.flush()


def forget_finished(dbsession, now):
    """Deliveries that ended long ago leave the table (the admin page shows
    the recent ones)."""
    cutoff = now - KEEP_FINISHED
    dbsession.execute(
        delete(WebhookDelivery).where(
            or_(WebhookDelivery.delivered_dts < cutoff, WebhookDelivery.failed_dts < cutoff)
        )
    )


class WebhookSender:
    """The scheduler's senders: a bounded pool of threads, each attempt with
    its outcome stored in a transaction of its own."""

    def __init__(self, in_transaction, secret, timeout=DEFAULT_TIMEOUT, senders=SENDERS):
        self.in_transaction = in_transaction
        self.secret = secret
        self.timeout = timeout
        self.senders = senders
        self.executor = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="jobrunner-webhook")
        self.lock = threading.Lock()
        self.busy = 0

    def deliver_due(self):
        """Duty: leases as many due deliveries as there are idle senders and
        hands them over. Returns how many were handed over (never waits for
        an answer)."""
        with self.lock:
            free = self.senders - self.busy
        if free <= 0:
            return 0
        due = self.in_transaction(lambda s: take_due(s, utcnow(), free))
        for delivery in due:
            with self.lock:
                self.busy += 1
            self.executor.submit(self._attempt, *delivery)
        return len(due)

    def _attempt(self, delivery_id, url, body):
        try:
            status, error = post(url, body, self.secret, self.timeout)
            self.in_transaction(lambda s: store_outcome(s, delivery_id, status, error, utcnow()))
        except Exception:
            # The lease runs out and the delivery is tried again.
            log.exception("webhook delivery %s could not be stored", delivery_id)
        finally:
            with self.lock:
                self.busy -= 1

    def idle(self):
        with self.lock:
            return self.busy == 0

    def shutdown(self, wait=True):
        self.executor.shutdown(wait=wait, cancel_futures=True)
