"""The states a run is in, by its timestamps: one vocabulary for the API's
`state` filter, the dashboard's overview and the scheduler.

A run is scheduled until a worker takes it into its queue (enqueue_dts), in
the queue until it starts (start_dts), started until it returns
(return_dts), and completed after. The last completed runs of a job are
those of its last completed schedule. Enqueueable runs are the ones a given
worker may take now, which only a worker can ask for.
"""
from sqlalchemy import and_, exists, select

from ..models import Job, Run

ENQUEUEABLE = "enqueueable"

RUN_STATES = {
    "scheduled": lambda: and_(Run.enqueue_dts.is_(None), Run.return_dts.is_(None)),
    "in_queue": lambda: and_(
        Run.enqueue_dts.is_not(None), Run.start_dts.is_(None), Run.return_dts.is_(None)
    ),
    "started": lambda: and_(Run.start_dts.is_not(None), Run.return_dts.is_(None)),
    "completed": lambda: Run.return_dts.is_not(None),
    "completed_successful": lambda: and_(Run.return_dts.is_not(None), Run.return_success.is_(True)),
    "completed_with_errors": lambda: and_(
        Run.return_dts.is_not(None), Run.return_success.is_not(True)
    ),
    "last_completed": lambda: and_(
        Run.return_dts.is_not(None),
        # The IN lets the database start from the jobs' few schedule ids
        # (ix_run_schedule_id) instead of every completed run in history.
        Run.schedule_id.in_(
            select(Job.last_completed_schedule_id).where(Job.last_completed_schedule_id.is_not(None))
        ),
        exists().where(Job.id == Run.job_id, Job.last_completed_schedule_id == Run.schedule_id),
    ),
}
RUN_STATES["completed_with_error"] = RUN_STATES["completed_with_errors"]
STATE_NAMES = sorted(RUN_STATES) + [ENQUEUEABLE]


class StateError(ValueError):
    """A state that is not in the vocabulary, or not for this caller."""


def in_state(query, state, identity):
    """The query of runs narrowed to the runs in `state`."""
    if state == ENQUEUEABLE:
        # Imported on use: the scheduling package decides enqueueability and
        # will itself use this vocabulary, so a module-level import would loop.
        from ..scheduling.enqueueable import enqueueable_runs

        if identity.worker is None:
            raise StateError("state=enqueueable is for workers.")
        return enqueueable_runs(query, identity.worker)
    if state not in RUN_STATES:
        raise StateError("state takes one of: " + ", ".join(STATE_NAMES) + ".")
    return query.where(RUN_STATES[state]())
