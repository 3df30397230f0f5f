"""The runs of a job's page, in two lists: ``next``, the runs waiting for
their time or a worker's claim (soonest first), and ``runs``, the last 100
others by their latest activity (returned, started, claimed), newest first,
so the run just started sits above the next recurring one instead of below
it."""
from sqlalchemy import func, or_, select

from ..models import Run

RECENT_RUNS = 100
NEXT_RUNS = 20


def latest_activity(run):
    return run.return_dts or run.start_dts or run.enqueue_dts or run.schedule_dts


def job_runs(dbsession, job):
    """{"next": [Run], "runs": [Run], "total": int}"""
    waiting = dbsession.scalars(
        select(Run)
        .where(Run.job_id == job.id, Run.enqueue_dts.is_(None), Run.return_dts.is_(None))
        .order_by(Run.schedule_dts, Run.id)
        .limit(NEXT_RUNS)
    ).all()
    # The last runs by schedule (the index), then ordered by activity: a run
    # scheduled long ago that just returned moves to the top.
    recent = dbsession.scalars(
        select(Run)
        .where(Run.job_id == job.id, or_(Run.enqueue_dts.is_not(None), Run.return_dts.is_not(None)))
        .order_by(Run.schedule_dts.desc(), Run.id.desc())
        .limit(RECENT_RUNS)
    ).all()
    recent = sorted(recent, key=lambda run: (latest_activity(run), run.id), reverse=True)
    total = dbsession.scalar(select(func.count()).select_from(Run).where(Run.job_id == job.id))
    return {"next": waiting, "runs": recent, "total": total}
