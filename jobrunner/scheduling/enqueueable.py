"""Which runs a worker may take now: due, for this worker or its pool, every
switch on, and no run of another schedule of the job active (unless the
job allows overlapping runs)."""
from datetime import datetime, timezone

from sqlalchemy import and_, exists, false, func, or_, select

from ..models import Job, JobTemplate, Project, Run, WorkerPool, utcnow
from ..models.tables import worker_pool_workers


# Core aliases of the run table, made once: the same SQL as ORM aliases made
# per call, in a fraction of the time (this runs on every poll and claim).
OTHER_RUN = Run.__table__.alias("other_run")
EARLIER_RUN = Run.__table__.alias("earlier_run")


def switches_enabled():
    """Job, template, project and pool all enabled (joined in the query)."""
    return and_(
        Job.enqueue_is_enabled.is_(True),
        JobTemplate.enqueue_is_enabled.is_(True),
        Project.enqueue_is_enabled.is_(True),
        WorkerPool.enqueue_is_enabled.is_(True),
    )


def due_conditions(now):
    """A run is due: scheduled (not claimed, not returned), its time has
    come, and nothing switched it off. A manual run ignores the job,
    template, project and pool switches. Over Run joined as join_switches."""
    run = Run.__table__.c
    return [
        run.enqueue_dts.is_(None),
        run.return_dts.is_(None),
        run.schedule_dts <= now,
        or_(run.is_manual.is_(True), switches_enabled()),
    ]


def due_runs(query, now):
    """Narrows a SELECT over runs to the due ones (any worker)."""
    return join_switches(query).where(*due_conditions(now))


def enqueueable_conditions(worker, now, earliest_only):
    """WHERE clauses over Run joined to Job, JobTemplate, Project, WorkerPool."""
    if not worker.enqueue_is_enabled:
        return [false()]
    run = Run.__table__.c
    pools_of_worker = select(worker_pool_workers.c.worker_pool_id).where(
        worker_pool_workers.c.worker_id == worker.id
    )
    other = OTHER_RUN.c
    conditions = [
        *due_conditions(now),
        or_(
            run.worker_id == worker.id,
            and_(
                run.worker_id.is_(None),
                Job.worker_pool_id.in_(pools_of_worker),
                # The scheduler expands such a run into one per worker first.
                Job.run_on_all_workers.is_(False),
            ),
        ),
        # A manual run ignores the job, template, project and pool switches.
        or_(run.is_manual.is_(True), switches_enabled()),
        # Two schedules of one job are never active together, unless the
        # job allows overlapping runs (replace waits for the old run's
        # return: the scheduler asks for it to be killed).
        or_(
            Job.concurrency_policy == "allow",
            ~exists().where(
                other.job_id == run.job_id,
                other.schedule_id != run.schedule_id,
                other.enqueue_dts.is_not(None),
                other.return_dts.is_(None),
            ),
        ),
    ]
    if earliest_only:
        earlier = EARLIER_RUN.c
        conditions.append(
            ~exists().where(
                earlier.job_id == run.job_id,
                earlier.enqueue_dts.is_(None),
                earlier.return_dts.is_(None),
                earlier.schedule_dts <= now,
                or_(
                    earlier.worker_id == worker.id,
                    and_(earlier.worker_id.is_(None), Job.run_on_all_workers.is_(False)),
                ),
                or_(earlier.is_manual.is_(True), switches_enabled()),
                or_(
                    earlier.schedule_dts < run.schedule_dts,
                    and_(earlier.schedule_dts == run.schedule_dts, earlier.id < run.id),
                ),
            )
        )
    return conditions


def join_switches(query):
    """A SELECT over runs joined to what switches_enabled() reads."""
    return join_job_switches(query.join(Job, Job.id == Run.job_id))


def join_job_switches(query):
    """A SELECT over jobs joined to the template, project and pool whose
    switches switches_enabled() reads."""
    return (
        query.join(JobTemplate, JobTemplate.id == Job.job_template_id)
        .join(Project, Project.id == JobTemplate.project_id)
        .join(WorkerPool, WorkerPool.id == Job.worker_pool_id)
    )


def enqueueable_runs(query, worker, now=None):
    """Narrows a SELECT of runs to the enqueueable list for `worker`."""
    now = now or utcnow()
    return join_switches(query).where(*enqueueable_conditions(worker, now, earliest_only=True))


def enqueueable_run_ids(worker, now):
    return join_switches(select(Run.id)).where(
        *enqueueable_conditions(worker, now, earliest_only=False)
    )


# "Due by the end of time": every pending run, whenever it falls due.
END_OF_TIME = datetime(9999, 1, 1, tzinfo=timezone.utc)


def next_due_dts(worker, now):
    """The query of when the next run that would be enqueueable for
    `worker` falls due after `now` (NULL: none pending); a waiting worker
    is woken then."""
    query = join_switches(select(func.min(Run.schedule_dts)).select_from(Run))
    return query.where(
        *enqueueable_conditions(worker, END_OF_TIME, earliest_only=False),
        Run.schedule_dts > now,
    )


__all__ = ["due_runs", "enqueueable_runs", "enqueueable_run_ids", "join_job_switches",
           "join_switches", "next_due_dts"]
