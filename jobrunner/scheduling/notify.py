"""The events people are told about: each sends its mail and queues its
webhooks, in the transaction of the event (both go out only if it commits)."""
from . import mail, webhooks


def run_failed(dbsession, context, run, log_text, killed=False):
    mail.send_run_error(context, run, log_text, killed=killed)
    job = run.job
    worker = f" on {run.worker.title}" if run.worker is not None else ""
    text = f"Run {run.id} of job {job.title!r} (project {job.job_template.project.title!r}) failed{worker}"
    if killed:
        text += " (killed)"
    webhooks.queue_run_event(dbsession, context, "run_failed", run, text)


def run_succeeded(dbsession, context, run):
    """Only for jobs with webhook_on_success: no mail for a success."""
    job = run.job
    if not job.webhook_on_success:
        return
    worker = f" on {run.worker.title}" if run.worker is not None else ""
    text = f"Run {run.id} of job {job.title!r} (project {job.job_template.project.title!r}) succeeded{worker}"
    webhooks.queue_run_event(dbsession, context, "run_succeeded", run, text)


def reschedule_failed(dbsession, context, job, reason):
    mail.send_reschedule_error(context, job, reason)
    webhooks.queue_job_event(dbsession, context, "reschedule_failed", job,
                             f"Job {job.title!r} could not be rescheduled: {reason}")


def pool_unresponsive(dbsession, context, pool, workers):
    mail.send_pool_unresponsive(context, pool, workers)
    webhooks.queue_pool_event(dbsession, context, "pool_unresponsive", pool,
                              f"All enabled workers of the pool {pool.title!r} are unresponsive")
