"""The runs overview: every state of the dashboard's first page in one
consistent read, narrowed exactly as the REST API narrows (same helpers)."""
from sqlalchemy import func, select

from ..api import query as q
from ..api.resources import RESOURCE_TYPES
from ..api.serialize import serialize
from ..models import Job, JobTemplate, Run, Worker
from .run_facts import add_run_facts

RUN = RESOURCE_TYPES["run"]

# state -> (ordering, at most this many runs)
SECTIONS = {
    "scheduled": ((Run.schedule_dts, Run.id), 100),
    "in_queue": ((Run.enqueue_dts, Run.id), 200),
    "started": ((Run.start_dts, Run.id), 200),
    "last_completed": ((Run.return_dts.desc(), Run.id.desc()), 100),
}


def escape_like(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def runs_overview(dbsession, identity, project_id=None, title=None):
    """{"sections": {state: {"total", "objects"}}} with each run in its REST
    form plus job_title, job_id, project_id and worker_title."""
    sections = {}
    for state, (ordering, limit) in SECTIONS.items():
        query = q.apply_state(q.base_query(RUN, identity), state, identity)
        if project_id is not None:
            query = query.where(RUN.in_projects([project_id]))
        if title:
            matching_jobs = select(Job.id).where(
                Job.title.ilike(f"%{escape_like(title)}%", escape="\\")
            )
            query = query.where(Run.job_id.in_(matching_jobs))
        total = dbsession.scalar(select(func.count()).select_from(query.subquery()))
        runs = dbsession.scalars(
            query.options(*RUN.load_options()).order_by(*ordering).limit(limit)
        ).all()
        sections[state] = {"total": total, "objects": runs}

    runs = [run for section in sections.values() for run in section["objects"]]
    jobs = _job_facts(dbsession, {run.job_id for run in runs})
    workers = _worker_titles(dbsession, {run.worker_id for run in runs if run.worker_id})
    for section in sections.values():
        section["objects"] = [_describe(run, jobs, workers) for run in section["objects"]]
        add_run_facts(dbsession, section["objects"])  # killed, job_enabled, held
    return {"sections": sections}


def _job_facts(dbsession, job_ids):
    if not job_ids:
        return {}
    rows = dbsession.execute(
        select(Job.id, Job.title, JobTemplate.project_id)
        .join(JobTemplate, JobTemplate.id == Job.job_template_id)
        .where(Job.id.in_(job_ids))
    )
    return {row.id: (row.title, row.project_id) for row in rows}


def _worker_titles(dbsession, worker_ids):
    if not worker_ids:
        return {}
    rows = dbsession.execute(select(Worker.id, Worker.title).where(Worker.id.in_(worker_ids)))
    return {row.id: row.title for row in rows}


def _describe(run, jobs, workers):
    data = serialize(RUN, run)
    title, project_id = jobs.get(run.job_id, ("", None))
    data.update(
        job_id=run.job_id,
        job_title=title,
        project_id=project_id,
        worker_title=workers.get(run.worker_id) if run.worker_id else None,
    )
    return data
