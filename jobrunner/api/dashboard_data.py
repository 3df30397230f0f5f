"""The dashboard's JSON beyond the overview: a job's runs, one run, the
workers. Runs in their REST form plus what the REST form does not say
(killed, held back by a disabled switch)."""
from pyramid.view import view_config

from ..contexts import JobFactory, Missing, ObjectContext, RunFactory
from ..errors import json_error
from ..models import utcnow
from ..queries.job_runs import job_runs
from ..queries.run_facts import add_run_facts
from ..queries.workers import workers_overview
from ..security.permissions import Permission
from .fields import format_datetime, resource_uri
from .overview import overview_forbidden
from .resources import RESOURCE_TYPES
from .serialize import serialize

RUN = RESOURCE_TYPES["run"]


def describe_runs(dbsession, runs):
    """Model runs to their REST form plus job_id and the run facts."""
    return add_run_facts(dbsession, [dict(serialize(RUN, run), job_id=run.job_id) for run in runs])


def _no_store(request):
    request.response.headers["Cache-Control"] = "no-store"


@view_config(route_name="dashboard_job_runs", context=ObjectContext, request_method="GET",
             renderer="json", permission=Permission.VIEW)
def job_runs_json(context, request):
    data = job_runs(request.dbsession, context.obj)
    _no_store(request)
    return {
        "next": describe_runs(request.dbsession, data["next"]),
        "runs": describe_runs(request.dbsession, data["runs"]),
        "total": data["total"],
        "now": utcnow().isoformat(),
    }


@view_config(route_name="dashboard_run", context=ObjectContext, request_method="GET",
             renderer="json", permission=Permission.VIEW)
def run_json(context, request):
    _no_store(request)
    return describe_runs(request.dbsession, [context.obj])[0]


@view_config(route_name="dashboard_job_runs", context=Missing)
@view_config(route_name="dashboard_run", context=Missing)
def missing_json(context, request):
    return json_error(request, 404, "Not found.")


def data_forbidden(exc, request):
    # Out of reach looks the same as not there, once the caller is logged in.
    if request.identity is None:
        return json_error(request, 401, "Authentication required.")
    return json_error(request, 404, "Not found.")


@view_config(route_name="dashboard_workers", request_method="GET", renderer="json",
             permission=Permission.VIEW)
def workers_json(request):
    now = utcnow()
    data = workers_overview(
        request.dbsession, request.identity, request.registry.jobrunner_settings, now
    )
    for worker in data["workers"]:
        worker["resource_uri"] = resource_uri("worker", worker["id"])
        if worker["ping_response_dts"] is not None:
            worker["ping_response_dts"] = format_datetime(worker["ping_response_dts"])
        for run in worker["running"]:
            run["start_dts"] = format_datetime(run["start_dts"])
    data["now"] = now.isoformat()
    _no_store(request)
    return data


def includeme(config):
    config.add_route("dashboard_job_runs", "/dashboard/jobs/{id}/runs.json",
                     factory=JobFactory, traverse="/{id}")
    config.add_route("dashboard_run", "/dashboard/runs/{id}.json",
                     factory=RunFactory, traverse="/{id}")
    config.add_route("dashboard_workers", "/dashboard/workers.json")
    # A script asks for these: a 401/404 in JSON, not a redirect to the login.
    config.add_forbidden_view(data_forbidden, route_name="dashboard_job_runs")
    config.add_forbidden_view(data_forbidden, route_name="dashboard_run")
    config.add_forbidden_view(overview_forbidden, route_name="dashboard_workers")
    config.scan(".dashboard_data")
