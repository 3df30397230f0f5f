"""What the dashboard tells about a run beyond its REST form: killed, and
whether its job and the switches above it let it run when due.

The rules themselves live in the domain (scheduling.kills: when a run counts
as killed; scheduling.enqueueable: which switches hold a due run back); this
module only gathers them for a page of runs in two queries.
"""
from sqlalchemy import select

from ..models import Job
from ..scheduling.enqueueable import join_job_switches, switches_enabled
from ..scheduling.kills import killed_run_ids


def job_switches(dbsession, job_ids):
    """{job id: (job enabled, job, template, project and pool all enabled)}."""
    if not job_ids:
        return {}
    # From the jobs, not their runs: a job's history may hold a million.
    rows = dbsession.execute(
        join_job_switches(
            select(Job.id, Job.enqueue_is_enabled, switches_enabled().label("all_enabled"))
        ).where(Job.id.in_(job_ids))
    )
    return {row.id: (bool(row.enqueue_is_enabled), bool(row.all_enabled)) for row in rows}


def add_run_facts(dbsession, runs):
    """Adds to each run (its REST form with ``job_id``) ``killed``, ``job_enabled``
    and ``held``: a run that is due but waits because the job, its template,
    project or pool is disabled (a manual run is never held)."""
    killed = killed_run_ids(dbsession, [run["id"] for run in runs])
    switches = job_switches(dbsession, {run["job_id"] for run in runs})
    for run in runs:
        job_enabled, all_enabled = switches.get(run["job_id"], (True, True))
        run["killed"] = run["id"] in killed
        run["job_enabled"] = job_enabled
        run["held"] = not (run["is_manual"] or all_enabled)
    return runs
