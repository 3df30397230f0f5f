"""The Workers page: each worker's health, running runs and pools.

Everyone who sees a pool sees its workers (the REST API's reach, through the
same narrowing helpers); admins get enable/disable buttons that PATCH the
worker through the REST API like every other dashboard action. A worker is
responsive by the scheduler's own rule (a ping within the unresponsive
limit), so this page and the scheduler never disagree.
"""
from pyramid.view import view_config
from sqlalchemy import select

from ..api.fields import format_datetime, resource_uri
from ..api.resources import RESOURCE_TYPES
from ..models import Job, Run, Worker, WorkerPool, utcnow
from ..scheduling.daemon import is_responsive, unresponsive_cutoff, unresponsive_limit
from ..security.permissions import Permission
from .views import TEMPLATES, frame, overview_forbidden

MAX_RUNNING_SHOWN = 50


def workers_overview(dbsession, identity, settings, now):
    """{"pools": [...], "workers": [...], "unresponsive_after_seconds"}: what
    the caller may see, by title."""
    pools = dbsession.scalars(
        RESOURCE_TYPES["worker_pool"].narrow(select(WorkerPool), identity).order_by(WorkerPool.title)
    ).all()
    workers = dbsession.scalars(
        RESOURCE_TYPES["worker"].narrow(select(Worker), identity).order_by(Worker.title, Worker.id)
    ).all()
    worker_ids = [worker.id for worker in workers]
    cutoff = unresponsive_cutoff(settings, now)
    responsive = set(
        dbsession.scalars(select(Worker.id).where(Worker.id.in_(worker_ids), is_responsive(cutoff)))
    ) if worker_ids else set()
    running = _running_runs(dbsession, identity, worker_ids)
    visible_pools = {pool.id for pool in pools}
    return {
        "unresponsive_after_seconds": unresponsive_limit(settings),
        "pools": [
            {
                "id": pool.id,
                "title": pool.title,
                "enqueue_is_enabled": pool.enqueue_is_enabled,
                "workers": [worker.id for worker in pool.workers],
                "responsive_workers": sum(1 for worker in pool.workers if worker.id in responsive),
            }
            for pool in pools
        ],
        "workers": [
            {
                "id": worker.id,
                "resource_uri": resource_uri("worker", worker.id),
                "title": worker.title,
                "enqueue_is_enabled": worker.enqueue_is_enabled,
                "ping_response_dts": format_datetime(worker.ping_response_dts)
                if worker.ping_response_dts else None,
                "responsive": worker.id in responsive,
                "worker_version": worker.worker_version,
                "concurrent_jobs": worker.concurrent_jobs,
                "pools": [
                    {"id": pool.id, "title": pool.title}
                    for pool in sorted(worker.pools, key=lambda p: p.title)
                    if pool.id in visible_pools
                ],
                "running": running.get(worker.id, []),
            }
            for worker in workers
        ],
    }


def _running_runs(dbsession, identity, worker_ids):
    """{worker id: [started runs the caller may see]}, oldest start first."""
    if not worker_ids:
        return {}
    query = RESOURCE_TYPES["run"].narrow(
        select(Run.id, Run.worker_id, Run.start_dts, Run.job_id, Job.title)
        .join(Job, Job.id == Run.job_id)
        .where(
            Run.worker_id.in_(worker_ids), Run.start_dts.is_not(None), Run.return_dts.is_(None)
        ),
        identity,
    )
    running = {}
    for row in dbsession.execute(query.order_by(Run.start_dts, Run.id)):
        shown = running.setdefault(row.worker_id, [])
        if len(shown) < MAX_RUNNING_SHOWN:
            shown.append({
                "id": row.id,
                "job_id": row.job_id,
                "job_title": row.title,
                "start_dts": format_datetime(row.start_dts),
            })
    return running


@view_config(route_name="workers", request_method="GET", renderer=TEMPLATES + "workers.jinja2",
             permission=Permission.VIEW)
def workers_page(request):
    return frame(request, "workers")


@view_config(route_name="dashboard_workers", request_method="GET", renderer="json",
             permission=Permission.VIEW)
def workers_json(request):
    now = utcnow()
    data = workers_overview(request.dbsession, request.identity, request.registry.settings, now)
    data["now"] = now.isoformat()
    request.response.headers["Cache-Control"] = "no-store"
    return data


def includeme(config):
    config.add_route("workers", "/workers")
    config.add_route("dashboard_workers", "/dashboard/workers.json")
    # A script asks for it: a 401/403 in JSON, not a redirect to the login.
    config.add_forbidden_view(overview_forbidden, route_name="dashboard_workers")
    config.scan(".workers")
