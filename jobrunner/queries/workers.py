"""The Workers page's facts: each worker's health, running runs and pools.

Everyone who sees a pool sees its workers (the reach of pools and workers,
the same narrowing the REST API's lists use). A worker is responsive by the
scheduler's own rule (a ping within the unresponsive limit), so this page and
the scheduler never disagree.
"""
from sqlalchemy import select

from ..models import Job, Run, Worker, WorkerPool
from ..scheduling.duties import is_responsive, unresponsive_cutoff
from ..security.reach import RUN, WORKER, WORKER_POOL, Reach, SharedReach, WorkerReach

MAX_RUNNING_SHOWN = 50
POOL_REACH = SharedReach(WORKER_POOL)
WORKER_REACH = WorkerReach(WORKER)
RUN_REACH = Reach(RUN)


def workers_overview(dbsession, identity, settings, now):
    """{"pools": [...], "workers": [...], "unresponsive_after_seconds"}: what
    the caller may see, by title; datetimes as datetime objects."""
    pools = dbsession.scalars(
        POOL_REACH.narrow(select(WorkerPool), identity).order_by(WorkerPool.title)
    ).all()
    workers = dbsession.scalars(
        WORKER_REACH.narrow(select(Worker), identity).order_by(Worker.title, Worker.id)
    ).all()
    worker_ids = [worker.id for worker in workers]
    cutoff = unresponsive_cutoff(settings, now)
    responsive = set(
        dbsession.scalars(select(Worker.id).where(Worker.id.in_(worker_ids), is_responsive(cutoff)))
    ) if worker_ids else set()
    running = _running_runs(dbsession, identity, worker_ids)
    visible_pools = {pool.id for pool in pools}
    return {
        "unresponsive_after_seconds": settings.unresponsive_limit,
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
                "title": worker.title,
                "enqueue_is_enabled": worker.enqueue_is_enabled,
                "ping_response_dts": worker.ping_response_dts,
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
    query = RUN_REACH.narrow(
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
                "start_dts": row.start_dts,
            })
    return running
