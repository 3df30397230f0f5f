"""The life cycle of a run, in one place: created, claimed by a worker,
started, given a pid and a log, returned; released when its worker lets it
go or stops answering; killed on request.

The rules:

* Only a worker claims a run, and only for itself. A claim is one
  conditional UPDATE: the run becomes the worker's only while it is still
  unclaimed and enqueueable for that worker.
* The claim is the fencing token: only the worker holding it may set the
  start, the pid, the return, write the run's log or act on a kill request.
  Another worker, a user, or the holder after a release is refused.
* A run returns once; a second return changes nothing, so no result is ever
  counted twice. Once returned, its log and its schedule are history.
* A started run is never released: its script may be running, and a second
  worker would run it again. It is returned (as failed if need be).
* A run's schedule lies within 100 years of now.

Plain functions over a SQLAlchemy session that raise the errors of
jobrunner.errors; the REST API and the scheduler call the same code.
"""
from datetime import timedelta

from sqlalchemy import exists, inspect, select, update
from sqlalchemy.orm import load_only
from sqlalchemy.orm.attributes import set_committed_value

from ..domain_errors import InvalidFields, NotAllowed, NotHolder, RunConflict
from ..models import Job, KillRequest, Run, RunLog, utcnow
from .enqueueable import enqueueable_run_ids
from . import wakeups  # noqa: F401  (its session hook tells waiting workers)

__all__ = [
    "RunConflict", "NotHolder", "create_run", "claim", "claim_due", "release", "reset_claim", "progress",
    "report_return", "mark_returned", "append_log", "create_log", "write_final_log", "holder_update",
    "request_kill", "check_schedule", "move_schedule",
]


def lock_job(dbsession, job_id, column=Job.id):
    """Serialises claims and returns of one job's runs (no-op on SQLite,
    whose writers are serialised by BEGIN IMMEDIATE already). Returns the
    job's `column`, read under the lock."""
    return dbsession.scalar(select(column).where(Job.id == job_id).with_for_update())


def _written(run, row):
    """The run's attributes as an UPDATE ... RETURNING wrote them: the
    answer is built from them, without reloading the run."""
    for name, value in row._mapping.items():
        set_committed_value(run, name, value)


def create_run(dbsession, job, schedule_dts, is_manual, schedule_children=True, worker_id=None,
               schedule_id=None):
    """A new run; without a schedule id it starts a schedule of its own."""
    run = Run(
        job_id=job.id,
        schedule_dts=schedule_dts,
        is_manual=is_manual,
        schedule_children=schedule_children,
        worker_id=worker_id,
        schedule_id=schedule_id,
    )
    dbsession.add(run)
    dbsession.flush()
    if run.schedule_id is None:
        run.schedule_id = run.id
        dbsession.flush()
    return run


# A schedule further away than this is a typing error, not a plan; and the
# reschedule arithmetic stays far from the year 9999.
SCHEDULE_REACH = timedelta(days=100 * 366)


def check_schedule(schedule_dts, now=None):
    now = now or utcnow()
    if not now - SCHEDULE_REACH <= schedule_dts <= now + SCHEDULE_REACH:
        raise InvalidFields({"schedule_dts": "A run's schedule must lie within 100 years of now."})


def move_schedule(run, worker, schedule_dts):
    """A new schedule_dts: a worker moves only a run it holds; nobody moves
    a run that has returned."""
    if schedule_dts == run.schedule_dts:
        return
    check_schedule(schedule_dts)
    if worker is not None:
        require_holder(run, worker)
    if run.return_dts is not None:
        raise RunConflict("The run has returned; its schedule is history.")
    run.schedule_dts = schedule_dts


def require_holder(run, worker):
    if worker is None or run.worker_id != worker.id or run.enqueue_dts is None:
        raise NotHolder()


# --- claim and release ---------------------------------------------------------


def claim(dbsession, run, worker, enqueue_dts, for_worker_id):
    """`worker` (None when a user asks) claims `run` for `for_worker_id`.
    Returns what the worker needs of the job to run it (its script, title
    and timeout), read under the job's lock, so they are the claimed run's."""
    if worker is None:
        raise NotAllowed("Only a worker claims a run.")
    if for_worker_id != worker.id:
        raise NotAllowed("A worker claims runs for itself only.")
    job = dbsession.execute(
        select(Job.script_content, Job.title, Job.timeout)
        .where(Job.id == run.job_id).with_for_update()
    ).one()
    row = dbsession.execute(
        update(Run.__table__)
        # The subquery looks at this run only (not at every enqueueable one).
        .where(Run.id == run.id,
               Run.id.in_(enqueueable_run_ids(worker, utcnow()).where(Run.id == run.id)))
        .values(enqueue_dts=enqueue_dts, worker_id=worker.id)
        .returning(*Run.__table__.c)
    ).first()
    if row is None:
        raise RunConflict("The run is no longer enqueueable for this worker.")
    _written(run, row)
    return {"script_content": job.script_content, "job_title": job.title, "job_timeout": job.timeout}


def claim_due(dbsession, worker, candidates, limit, context=None, start=False):
    """`worker` claims up to `limit` runs of `candidates` (a SELECT of run
    ids and job ids: the worker's enqueueable list, in its order), each by
    the rule of `claim`: the runs' jobs locked with the list, then one
    conditional UPDATE for all of them. With `start` the runs start as they are claimed (the
    worker stores the start before it runs a script anyway), and a start
    makes the next run of a job that allows or replaces overlapping runs,
    as `progress` does.

    On PostgreSQL a job another transaction holds (another worker claiming
    it, a return) is skipped, not waited for: it is someone else's now, or
    listed again next time. Returns [(run, job)]: the claimed runs as
    written and what the worker needs of each job (script, title, timeout)."""
    from .next_run import next_run_at_start, next_run_at_start_for

    if worker is None:
        raise NotAllowed("Only a worker claims a run.")
    # The jobs' locks are taken with the list itself: on PostgreSQL a run
    # whose job another transaction holds is passed over and the next one
    # taken (the queue's SKIP LOCKED), so two workers claiming at once take
    # different runs instead of waiting for, or skipping, each other's.
    head = dbsession.execute(
        candidates.limit(limit).with_for_update(of=Job.__table__, skip_locked=True)
    ).all()
    if not head:
        return []
    jobs = {
        job.id: job for job in dbsession.execute(
            select(Job.id, Job.script_content, Job.title, Job.timeout, Job.concurrency_policy)
            .where(Job.id.in_(sorted({row.job_id for row in head})))
        )
    }
    taken = [row.id for row in head]
    now = utcnow()
    values = {"enqueue_dts": now, "worker_id": worker.id}
    if start:
        values["start_dts"] = now
    claimed = dbsession.scalars(
        update(Run)
        .where(Run.id.in_(taken),
               Run.id.in_(enqueueable_run_ids(worker, now).where(Run.id.in_(taken))))
        .values(**values)
        .returning(Run)
        .execution_options(populate_existing=True)
    ).all()
    logs = dict(dbsession.execute(
        select(RunLog.run_id, RunLog.id).where(RunLog.run_id.in_([run.id for run in claimed]))
    ).all()) if claimed else {}
    for run in claimed:
        # The answer names the run's log, if it has one (a run claimed again).
        log_id = logs.get(run.id)
        set_committed_value(run, "run_log", None if log_id is None
                            else dbsession.get(RunLog, log_id, options=[load_only(RunLog.id)]))
    if start and context is not None:
        for job_id in sorted({run.job_id for run in claimed}):
            if next_run_at_start_for(jobs[job_id].concurrency_policy):
                next_run_at_start(dbsession, dbsession.get(Job, job_id), context, now)
    order = {run_id: index for index, run_id in enumerate(taken)}
    claimed.sort(key=lambda run: order[run.id])
    return [(run, jobs[run.job_id]) for run in claimed]


def release(dbsession, run, worker, release_worker, start_dts=None):
    """The holder gives the run back (it could not start it): scheduled
    again, for itself or, with release_worker, for any worker of the pool."""
    require_holder(run, worker)
    if start_dts is not None:
        raise InvalidFields({"start_dts": "A reset run has not started."})
    if run.start_dts is not None:
        raise RunConflict("Only a run that has not started can be released.")
    reset_claim(dbsession, run, release_worker)


def reset_claim(dbsession, run, release_worker):
    """Back to scheduled, whoever asks (a holder's release, the scheduler
    freeing the queue of a worker that stopped answering)."""
    values = {"enqueue_dts": None, "start_dts": None, "pid": None}
    if release_worker:
        values["worker_id"] = None
    result = dbsession.execute(
        update(Run)
        .where(Run.id == run.id, Run.return_dts.is_(None))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise RunConflict("The run has returned already.")
    dbsession.expire(run)


# --- progress and return ---------------------------------------------------------


def _require_running(run, worker):
    require_holder(run, worker)
    if run.return_dts is not None:
        raise RunConflict("The run has returned already.")


def progress(dbsession, run, worker, context=None, **values):
    """The holder reports the start (start_dts), the pid or, before its
    return, the outcome (return_success) of a run that has not returned.
    A start makes the next run of a job that allows or replaces
    overlapping runs."""
    from .next_run import next_run_at_start, next_run_at_start_for

    _require_running(run, worker)
    for name in ("timed_out", "log_content"):
        if name in values:
            raise InvalidFields({name: f"{name} is set with the return (return_dts)."})
    starting = values.get("start_dts") is not None and run.start_dts is None
    for name, value in values.items():
        setattr(run, name, value)
    if starting and context is not None:
        dbsession.flush()
        # Two runs of the job starting at once make one next run.
        policy = lock_job(dbsession, run.job_id, Job.concurrency_policy)
        if next_run_at_start_for(policy):
            next_run_at_start(dbsession, dbsession.get(Job, run.job_id), context, utcnow())


def report_return(dbsession, run, worker, return_dts, return_success, context, log_content=None,
                  **values):
    """The holder returns the run; what a return sets in motion (the job's
    failure count, mail, children, the next schedule) follows in the same
    transaction. With `log_content` the run's final log is written first
    (created or replaced), under the same holder check as any log write.
    `values` (the pid, timed_out) are stored by the return's own UPDATE."""
    from .returns import process_return

    _require_running(run, worker)
    if log_content is not None:
        write_final_log(dbsession, run, worker, log_content)
    dbsession.flush()
    # The job, locked by the return, stays loaded for what follows (the
    # session holds only weak references to unchanged objects).
    job, killed = mark_returned(dbsession, run, return_dts, return_success, worker_id=worker.id,
                                **values)
    process_return(dbsession, run, context, killed=killed)
    del job


def mark_returned(dbsession, run, return_dts, return_success, worker_id=None, **values):
    """Sets the return once (for `worker_id` only, when given), with
    `values` beside it; a second return is a RunConflict and changes
    nothing. Returns (the run's job, locked; whether the run was killed),
    read by the same statements that lock and write: what the return sets
    in motion needs both."""
    from .kills import was_killed_clause

    # Siblings of a schedule return one after the other, so exactly one of
    # them sees the schedule complete and schedules the children. (The whole
    # job: what the return sets in motion reads it next.)
    job, has_children = dbsession.execute(
        select(Job, exists().where(CHILD_JOB.c.parent_id == Job.id))
        .where(Job.id == run.job_id)
        .with_for_update(of=Job.__table__)
        # As it is once the lock is held (another return may have written it).
        .execution_options(populate_existing=True)
    ).one()
    if not has_children:
        # Known to be empty: no statement looks for them again.
        set_committed_value(job, "children", [])
    conditions = [Run.id == run.id, Run.return_dts.is_(None)]
    if worker_id is not None:
        conditions.append(Run.worker_id == worker_id)
    row = dbsession.execute(
        update(Run.__table__)
        .where(*conditions)
        .values(return_dts=return_dts, return_success=bool(return_success), **values)
        # The run by its id, not correlated: SQLite names RETURNING's columns
        # unqualified, which inside the subquery would be the kill request's.
        .returning(*Run.__table__.c, was_killed_clause(run.id).label(KILLED))
    ).first()
    if row is None:
        raise RunConflict("The run has returned already.")
    mapping = dict(row._mapping)
    killed = bool(mapping.pop(KILLED))
    for name, value in mapping.items():
        set_committed_value(run, name, value)
    return job, killed


KILLED = "jobrunner_was_killed"
# Another job, whose parent may be the returning run's job.
CHILD_JOB = Job.__table__.alias("child_job")


# --- the log and kill requests -----------------------------------------------------


def create_log(dbsession, run, worker, content):
    """The holder starts the run's log; a run has one log."""
    require_holder(run, worker)
    _require_log_open(run)
    existing = dbsession.scalar(select(RunLog.id).where(RunLog.run_id == run.id))
    if existing is not None:
        raise RunConflict(f"The run has a log already: /api/v1/run_log/{existing}/.")
    log = RunLog(run_id=run.id, content=content)
    dbsession.add(log)
    dbsession.flush()
    return log


def write_final_log(dbsession, run, worker, content):
    """The holder's whole log of a run about to return: the run's one log,
    created or replaced."""
    require_holder(run, worker)
    _require_log_open(run)
    # A run item is loaded with its log's id: when it has none, no UPDATE
    # need look for it.
    known_absent = "run_log" not in inspect(run).unloaded and run.run_log is None
    log_id = None if known_absent else dbsession.scalar(
        update(RunLog.__table__).where(RunLog.run_id == run.id).values(content=content)
        .returning(RunLog.id)
    )
    if log_id is None:
        log = RunLog(run_id=run.id, content=content)
        dbsession.add(log)
        dbsession.flush()
        set_committed_value(run, "run_log", log)
        return
    # A copy of the log loaded earlier in this session is out of date.
    loaded = dbsession.identity_map.get(dbsession.identity_key(RunLog, log_id))
    if loaded is not None:
        dbsession.expire(loaded, ["content"])


def holder_update(obj, worker, values):
    """A run's log and its kill requests belong to the run: only the holder
    of the run changes them, and they stay with their run."""
    require_holder(obj.run, worker)
    if isinstance(obj, RunLog):
        _require_log_open(obj.run)
    if "run" in values and values.pop("run") != obj.run_id:
        noun = "A log" if isinstance(obj, RunLog) else "A kill request"
        raise InvalidFields({"run": f"{noun} cannot move to another run."})
    for name, value in values.items():
        setattr(obj, name, value)
    return obj


def _require_log_open(run):
    # What a run printed is final once its result is in.
    if run.return_dts is not None:
        raise RunConflict("The run has returned; its log is read-only.")


def append_log(dbsession, run, text):
    """Adds a line to a run's log (when the server ends a run itself)."""
    log = dbsession.scalar(select(RunLog).where(RunLog.run_id == run.id))
    if log is None:
        dbsession.add(RunLog(run_id=run.id, content=text))
    else:
        separator = "" if not log.content or log.content.endswith("\n") else "\n"
        log.content = f"{log.content}{separator}{text}"
    dbsession.flush()


def request_kill(dbsession, run):
    """Only a started run that has not returned can be killed."""
    if run.start_dts is None or run.return_dts is not None:
        raise RunConflict("Only a started run that has not returned can be killed.")
    kill_request = KillRequest(run_id=run.id, schedule_dts=utcnow())
    dbsession.add(kill_request)
    dbsession.flush()
    return kill_request
