"""The mails Job-Runner sends: one message per event (a failed run, a job
that cannot be rescheduled, a pool without a responsive worker), sent to
every recipient once. A message goes out after the transaction that caused
it commits, and not at all if it aborts; a mail server that is down is logged
and never undoes or fails what was committed. Sending happens on a thread of
its own (one per process, in order), so a mail server that hangs delays mail
only: each attempt gives up after the mailer's timeout (10 s) and is logged;
a message is sent at most once, and what is still queued when the process
ends is not sent."""
import logging
import queue
import threading
from dataclasses import dataclass
from email.policy import compat32
from zoneinfo import ZoneInfo

from pyramid_mailer.message import Message

from ..values import address_list

log = logging.getLogger(__name__)

MAX_LOG_IN_MAIL = 200_000

# SMTP wants CRLF line ends; the mailer sends the message's bytes as they
# are, and servers refuse bare LF (a whole message becomes one long line).
SMTP_POLICY = compat32.clone(linesep="\r\n")


class SMTPMessage(Message):
    def to_message(self):
        message = super().to_message()
        message.policy = SMTP_POLICY
        return message


def build_mailer(settings):
    """SMTP from the `mail.*` settings, or with a mail folder a mailer that
    writes each message as a file there (development). `settings` is a
    jobrunner.settings.Settings."""
    from pyramid_mailer.mailer import DebugMailer, Mailer

    if settings.mail_folder:
        return DebugMailer(settings.mail_folder)
    return Mailer.from_settings(settings.ini)


@dataclass
class MailContext:
    mailer: object
    transaction_manager: object
    tz: ZoneInfo
    admin_emails: list
    base_url: str
    sender: str | None = None
    background: bool = False


def mail_context_from_settings(settings, mailer, transaction_manager):
    """The context of mails sent under `settings` (a jobrunner.settings.Settings)."""
    return MailContext(
        mailer=mailer,
        transaction_manager=transaction_manager,
        tz=settings.tz,
        admin_emails=list(settings.admin_emails),
        base_url=settings.mail_base_url,
        sender=settings.mail_sender,
        background=settings.mail_in_background,
    )


def mail_context(request):
    """The context of a web request: mail goes out when its transaction commits."""
    return mail_context_from_settings(request.registry.jobrunner_settings, request.mailer, request.tm)


def split_addresses(*texts):
    """Addresses from one-per-line fields and lists, first occurrence kept."""
    seen = []
    for text in texts:
        for address in address_list(text) if isinstance(text, str) else list(text or []):
            address = address.strip()
            if address and address.lower() not in {a.lower() for a in seen}:
                seen.append(address)
    return seen


def gather_from_job(job, field, *extra):
    """A one-per-line field of the job, its template, its project and its
    pool (notification addresses, webhook URLs), each entry once."""
    template = job.job_template
    return split_addresses(
        getattr(job, field),
        getattr(template, field),
        getattr(template.project, field),
        getattr(job.worker_pool, field),
        *extra,
    )


def job_recipients(job, admin_emails):
    return gather_from_job(job, "notification_addresses", admin_emails)


def _send(context, subject, recipients, body):
    if not recipients:
        return
    message = SMTPMessage(subject=subject, recipients=recipients, body=body, sender=context.sender)
    context.transaction_manager.get().addAfterCommitHook(
        _deliver, args=(context.mailer, message, context.background))


def _deliver(committed, mailer, message, background=False):
    if not committed:
        return
    if not background:
        _send_now(mailer, message)
        return
    try:
        _OUTBOX.put_nowait((mailer, message))
    except queue.Full:
        log.error("mail queue full (the mail server is down?): %r to %s not sent",
                  message.subject, ", ".join(message.recipients))
        return
    _start_sender()


def _send_now(mailer, message):
    try:
        mailer.send_immediately(message)
    except Exception:
        log.exception("could not send %r to %s", message.subject, ", ".join(message.recipients))


# Bounded: a mail server that stays away costs memory for this many
# messages at most; beyond it they are logged and dropped.
_OUTBOX = queue.Queue(maxsize=1000)
_SENDER_LOCK = threading.Lock()
_sender = None


def _start_sender():
    global _sender
    with _SENDER_LOCK:
        if _sender is None or not _sender.is_alive():
            _sender = threading.Thread(target=_send_queued, name="mail-sender", daemon=True)
            _sender.start()


def _send_queued():
    while True:
        mailer, message = _OUTBOX.get()
        _send_now(mailer, message)


def _local(context, dts):
    if dts is None:
        return "-"
    return dts.astimezone(context.tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def send_run_error(context, run, log_text, killed=False):
    job = run.job
    template = job.job_template
    base = context.base_url.rstrip("/")
    body = "\n".join(
        [
            f"The run {run.id} of the job {job.title!r} failed.",
            "",
            f"Job:        {job.title}",
            f"Project:    {template.project.title}",
            f"Template:   {template.title}",
            f"Pool:       {job.worker_pool.title}",
            f"Worker:     {run.worker.title if run.worker else '-'}",
            f"Run id:     {run.id}",
            f"Manual:     {'yes' if run.is_manual else 'no'}",
            f"Killed:     {'yes' if killed else 'no'}",
            f"Scheduled:  {_local(context, run.schedule_dts)}",
            f"Returned:   {_local(context, run.return_dts)}",
            f"Dashboard:  {base}/runs/{run.id}",
            "",
            "Script:",
            job.script_content,
            "",
            "Log:",
            (log_text or "(empty)")[-MAX_LOG_IN_MAIL:],
        ]
    )
    _send(context, f"Run error for: {job.title}", job_recipients(job, context.admin_emails), body)


def send_reschedule_error(context, job, reason):
    base = context.base_url.rstrip("/")
    body = (
        f"The job {job.title!r} could not be rescheduled: {reason}\n\n"
        f"Dashboard: {base}/jobs/{job.id}\n"
    )
    _send(context, f"Reschedule error for: {job.title}", job_recipients(job, context.admin_emails), body)


def send_pool_unresponsive(context, pool, workers):
    names = "\n".join(f"  {w.title} (last ping: {_local(context, w.ping_response_dts)})" for w in workers)
    body = (
        f"All enabled workers of the pool {pool.title!r} are unresponsive:\n{names}\n\n"
        "Runs of this pool will not start until a worker answers again.\n"
    )
    recipients = split_addresses(pool.notification_addresses, context.admin_emails)
    _send(context, f"Worker-pool unresponsive: {pool.title}", recipients, body)
