"""The audit log: who changed what, in the transaction of the change.

One home for every write a person makes: a session whose `info` carries
`audit_actor` (`user:<username>` for a user's request, set by the security
policy; `cli:<os user>` for `jobrunner-admin`) records each create, update and
delete of the models people manage, whatever code made the change (REST API,
admin pages, YAML loader). Sessions without an actor (workers, the scheduler)
record nothing, so routine worker traffic never reaches the log. Actions that
are not a change of such a model (schedule a run, kill it, log in) call
`record()`.

The events of a transaction are gathered after each flush and written just
before it commits: several flushes of one object in one transaction make one
event, and a transaction that rolls back leaves none.
"""
import enum
import getpass
import os
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import event, insert, inspect, select
from sqlalchemy.orm import Session

from .models import AuditEvent, Group, Job, JobTemplate, Project, User, Worker, WorkerPool, utcnow

ACTOR_KEY = "audit_actor"
PENDING_KEY = "audit_pending"
REDACTED = "[redacted]"

ACTIONS = ("create", "update", "delete", "schedule", "kill", "login", "login_failed")


@dataclass(frozen=True)
class Audited:
    """How one model appears in the log."""

    object_type: str
    # fields never recorded (derived or kept by the system)
    skipped: tuple = ()
    # field -> the name under which a change is recorded, without values
    redacted: tuple = ()
    # to-many relations recorded as lists of ids
    collections: tuple = ()


AUDITED = {
    User: Audited("user", redacted=(("password_hash", "password"),), collections=("groups",)),
    Group: Audited("group"),
    Project: Audited("project", collections=("groups", "auth_groups", "worker_pools")),
    WorkerPool: Audited("worker_pool", skipped=("unresponsive_since_dts",), collections=("workers",)),
    Worker: Audited("worker", skipped=("ping_response_dts",), redacted=(("secret", "secret"),)),
    JobTemplate: Audited("job_template"),
    Job: Audited("job", skipped=("script_content",), collections=("reschedule_excludes",)),
}


def actor_of_user(user):
    return f"user:{user.username}"


def actor_of_os_user(name):
    return f"cli:{name}"


def os_user_name():
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a bare container)
        return str(os.getuid())


def set_actor(dbsession, actor):
    dbsession.info[ACTOR_KEY] = actor


def _plain(value):
    """A value as JSON can hold it."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "__table__"):
        if hasattr(value, "start_time"):  # a reschedule exclude
            return f"{value.start_time.isoformat()}-{value.end_time.isoformat()} {value.note}".strip()
        return value.id
    return value


def _pending(dbsession):
    return dbsession.info.setdefault(PENDING_KEY, {})


def record(dbsession, action, object_type, object_id, changes=None, project_id=None, actor=None):
    """An event that is not a model change (schedule, kill, login), added to
    the session like any change. Without an actor (a worker's request, the
    scheduler) nothing is recorded."""
    actor = actor or dbsession.info.get(ACTOR_KEY)
    if actor is None:
        return
    dbsession.add(AuditEvent(
        dts=utcnow(),
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        project_id=project_id,
        changes={name: [_plain(old), _plain(new)] for name, (old, new) in (changes or {}).items()},
    ))


def project_of_job(dbsession, job_id):
    return dbsession.scalar(
        select(JobTemplate.project_id).join(Job, Job.job_template_id == JobTemplate.id).where(Job.id == job_id)
    )


def record_schedule(dbsession, run):
    """A person scheduled a run now (manual run)."""
    record(dbsession, "schedule", "run", run.id,
           {"job": (None, run.job_id), "schedule_dts": (None, run.schedule_dts)},
           project_id=project_of_job(dbsession, run.job_id))


def record_kill(dbsession, run):
    record(dbsession, "kill", "run", run.id, {"kill_requested": (False, True)},
           project_id=project_of_job(dbsession, run.job_id))


# --- model changes -------------------------------------------------------------


def _project_id(connection, obj):
    if isinstance(obj, Project):
        return obj.id
    if isinstance(obj, JobTemplate):
        return obj.project_id
    if isinstance(obj, Job):
        return connection.scalar(
            select(JobTemplate.project_id).where(JobTemplate.id == obj.job_template_id)
        )
    return None


def _changes(obj, spec, action):
    state = inspect(obj)
    mapper = state.mapper
    redacted = dict(spec.redacted)
    changes = {}
    for prop in mapper.column_attrs:
        key = prop.key
        if key == "id" or key in spec.skipped:
            continue
        history = state.attrs[key].history
        if action == "create":
            new = state.dict.get(key)
            if new in (None, "", False):
                continue
            changes[redacted.get(key, key)] = [None, REDACTED if key in redacted else _plain(new)]
        elif action == "delete":
            continue
        elif history.has_changes():
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if old == new:
                continue
            if key in redacted:
                changes[redacted[key]] = [REDACTED, REDACTED]
            else:
                changes[key] = [_plain(old), _plain(new)]
    for key in spec.collections:
        history = state.attrs[key].history
        if action == "create":
            if history.added:
                changes[key] = [[], _sorted(history.added)]
        elif action == "update" and history.has_changes():
            old = _sorted(list(history.unchanged) + list(history.deleted))
            new = _sorted(list(history.unchanged) + list(history.added))
            if old != new:
                changes[key] = [old, new]
    return changes


def _sorted(objects):
    values = [_plain(obj) for obj in objects]
    return sorted(values, key=str)


def _after_flush(session, flush_context):
    actor = session.info.get(ACTOR_KEY)
    if actor is None:
        return
    connection = session.connection()
    pending = _pending(session)
    for objects, action in ((session.new, "create"), (session.dirty, "update"), (session.deleted, "delete")):
        for obj in objects:
            spec = AUDITED.get(type(obj))
            if spec is None:
                continue
            changes = _changes(obj, spec, action)
            if action == "update" and not changes:
                continue
            key = (spec.object_type, obj.id)
            _merge(pending, key, {
                "dts": utcnow(),
                "actor": actor,
                "action": action,
                "object_type": spec.object_type,
                "object_id": obj.id,
                "project_id": _project_id(connection, obj),
                "changes": changes,
            })


def _merge(pending, key, event_):
    """Several flushes of one object in one transaction make one event."""
    earlier = pending.get(key)
    if earlier is None:
        pending[key] = event_
        return
    if earlier["action"] == "create" and event_["action"] == "delete":
        pending[key] = event_
        return
    if event_["action"] == "delete":
        earlier["action"] = "delete"
    for name, (old, new) in event_["changes"].items():
        if name in earlier["changes"]:
            earlier["changes"][name][1] = new
        else:
            earlier["changes"][name] = [old, new]


def _before_commit(session):
    if session.info.get(ACTOR_KEY) is None:
        return
    # The commit's own flush comes after this hook: the last changes are
    # gathered here first.
    session.flush()
    events = list(session.info.pop(PENDING_KEY, {}).values())
    if events:
        session.execute(insert(AuditEvent), events)


def _forget(session, previous_transaction):
    # A savepoint rolled back inside the transaction keeps the events of
    # the transaction around it; only the end of the whole one drops them.
    if not previous_transaction.nested:
        session.info.pop(PENDING_KEY, None)


event.listen(Session, "after_flush", _after_flush)
event.listen(Session, "before_commit", _before_commit)
event.listen(Session, "after_soft_rollback", _forget)
