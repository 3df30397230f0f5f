"""The runs overview: every state of the dashboard's first page in one
consistent read, narrowed by the caller's reach exactly as the API's lists."""
from sqlalchemy import func, select

from ..models import Job, JobTemplate, Run, Worker
from ..security.reach import RUN, Reach
from .run_states import in_state

RUN_REACH = Reach(RUN)

# state -> (ordering, at most this many runs)
SECTIONS = {
    "scheduled": ((Run.schedule_dts, Run.id), 100),
    "in_queue": ((Run.enqueue_dts, Run.id), 200),
    "started": ((Run.start_dts, Run.id), 200),
    "last_completed": ((Run.return_dts.desc(), Run.id.desc()), 100),
}


def escape_like(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def runs_overview(dbsession, identity, project_id=None, title=None, load_options=()):
    """{state: {"total", "runs"}} for each section, and the facts the page
    shows beside each run: {job_id: (job title, project id)} and
    {worker_id: worker title}."""
    sections = {}
    for state, (ordering, limit) in SECTIONS.items():
        query = in_state(RUN_REACH.narrow(select(Run), identity), state, identity)
        if project_id is not None:
            query = query.where(RUN_REACH.in_projects([project_id]))
        if title:
            matching_jobs = select(Job.id).where(
                Job.title.ilike(f"%{escape_like(title)}%", escape="\\")
            )
            query = query.where(Run.job_id.in_(matching_jobs))
        total = dbsession.scalar(select(func.count()).select_from(query.subquery()))
        runs = dbsession.scalars(query.options(*load_options).order_by(*ordering).limit(limit)).all()
        sections[state] = {"total": total, "runs": runs}

    runs = [run for section in sections.values() for run in section["runs"]]
    jobs = _job_facts(dbsession, {run.job_id for run in runs})
    workers = _worker_titles(dbsession, {run.worker_id for run in runs if run.worker_id})
    return sections, jobs, workers


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
