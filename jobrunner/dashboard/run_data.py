"""The runs of a job's page and of a run's page, in their REST form plus
what the REST form does not say (killed, held back by a disabled switch).

A job's runs come in two lists: ``next``, the runs waiting for their time
or a worker's claim (soonest first), and ``runs``, the last 100 others by
their latest activity (returned, started, claimed), newest first, so the run
just started sits above the next recurring one instead of below it.
"""
from pyramid.view import view_config
from sqlalchemy import func, or_, select

from ..models import Job, Run, utcnow
from ..security.permissions import Permission
from .run_facts import describe_runs
from .views import json_error, object_in_reach, overview_forbidden

RECENT_RUNS = 100
NEXT_RUNS = 20


def latest_activity(run):
    return run.return_dts or run.start_dts or run.enqueue_dts or run.schedule_dts


def job_runs(dbsession, job):
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
    return {
        "next": describe_runs(dbsession, waiting),
        "runs": describe_runs(dbsession, recent),
        "total": total,
    }


@view_config(route_name="dashboard_job_runs", request_method="GET", renderer="json",
             permission=Permission.VIEW)
def job_runs_json(request):
    job = object_in_reach(request, "job", Job)
    if job is None:
        return json_error(request, 404, "No such job.")
    data = job_runs(request.dbsession, job)
    data["now"] = utcnow().isoformat()
    request.response.headers["Cache-Control"] = "no-store"
    return data


@view_config(route_name="dashboard_run", request_method="GET", renderer="json",
             permission=Permission.VIEW)
def run_json(request):
    run = object_in_reach(request, "run", Run)
    if run is None:
        return json_error(request, 404, "No such run.")
    request.response.headers["Cache-Control"] = "no-store"
    return describe_runs(request.dbsession, [run])[0]


def includeme(config):
    config.add_route("dashboard_job_runs", "/dashboard/jobs/{id}/runs.json")
    config.add_route("dashboard_run", "/dashboard/runs/{id}.json")
    # A script asks for it: a 401/403 in JSON, not a redirect to the login.
    config.add_forbidden_view(overview_forbidden, route_name="dashboard_job_runs")
    config.add_forbidden_view(overview_forbidden, route_name="dashboard_run")
    config.scan(".run_data")
