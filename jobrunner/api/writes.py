"""What POST, PUT and PATCH do to each resource, beyond storing fields.

Views hand in validated values; these functions check reach and the rules
of the data model, then change the objects.
"""
from sqlalchemy import select

from ..models import (
    Job,
    JobTemplate,
    KillRequest,
    RescheduleExclude,
    Run,
    RunLog,
    Worker,
    WorkerPool,
    utcnow,
)
from ..models.tables import project_worker_pools
from ..scheduling import runs as run_rules
from ..scheduling.mail import mail_context
from ..scheduling.reschedule import interval_in_range
from ..scheduling.returns import process_return
from ..security.permissions import Permission
from ..security.scope import WORKER_SELF_FIELDS
from .errors import APIError, bad_request, conflict, forbidden
from .traversal import item_for


def related(request, resource_name, model, obj_id, permission=Permission.VIEW, field=None):
    """The object a relation in a body points at: 400 if there is none,
    403 if it is out of the caller's reach. `field` names the body's field
    when it is not the resource's name (a job's parent is a job)."""
    obj = request.dbsession.get(model, obj_id) if obj_id is not None else None
    if obj is None:
        raise bad_request(
            "Invalid fields.", {field or resource_name: f"No {resource_name} with id {obj_id}."}
        )
    if not request.has_permission(permission, item_for(request, resource_name, obj)):
        raise forbidden(f"The {resource_name} {obj_id} is out of your reach.")
    return obj


def caller_worker(request):
    identity = request.identity
    return identity.worker if identity is not None else None


def _set_addresses(obj, values):
    if "notification_addresses" in values:
        obj.notification_addresses = "\n".join(values.pop("notification_addresses"))


def _changed(values, obj, names):
    return {name for name in names if name in values and values[name] != getattr(obj, name)}


# --- job ---------------------------------------------------------------------


def _project_pool_ids(dbsession, project_id):
    return set(
        dbsession.scalars(
            select(project_worker_pools.c.worker_pool_id).where(
                project_worker_pools.c.project_id == project_id
            )
        )
    )


def _check_job(request, job, template):
    dbsession = request.dbsession
    errors = {}
    if job.worker_pool_id not in _project_pool_ids(dbsession, template.project_id):
        errors["worker_pool"] = "The worker pool must be one of the project's pools."
    if job.parent_id is not None:
        parent = dbsession.get(Job, job.parent_id)
        if parent is None:
            errors["parent"] = f"No job with id {job.parent_id}."
        else:
            parent_project = dbsession.scalar(
                select(JobTemplate.project_id).where(JobTemplate.id == parent.job_template_id)
            )
            if parent_project != template.project_id:
                errors["parent"] = "The parent must be a job of the same project."
            elif job.id is not None and _creates_cycle(dbsession, job.id, job.parent_id):
                errors["parent"] = "This parent would make the job chain a cycle."
    if job.reschedule_interval is not None:
        if job.reschedule_interval <= 0:
            errors["reschedule_interval"] = "The interval must be greater than zero."
        elif job.reschedule_interval_type is None:
            errors["reschedule_interval_type"] = "An interval needs an interval type."
        elif not interval_in_range(job.reschedule_interval, job.reschedule_interval_type, utcnow()):
            errors["reschedule_interval"] = "The interval must land before year 9999."
    if job.disable_enqueue_after_fails is not None and job.disable_enqueue_after_fails < 0:
        errors["disable_enqueue_after_fails"] = "May not be negative."
    duplicate = dbsession.scalar(
        select(Job.id).where(
            Job.job_template_id == template.id, Job.title == job.title, Job.id != (job.id or 0)
        )
    )
    if duplicate is not None:
        errors["title"] = "A job with this title exists in this template already."
    if errors:
        raise bad_request("Invalid fields.", errors)


def _creates_cycle(dbsession, job_id, parent_id):
    seen = set()
    current = parent_id
    while current is not None and current not in seen:
        if current == job_id:
            return True
        seen.add(current)
        current = dbsession.scalar(select(Job.parent_id).where(Job.id == current))
    return current is not None


def _apply_job_values(request, job, values):
    # The checks query the database: they must see the stored rows, not a
    # half-changed job flushed early (a duplicate title would be an
    # IntegrityError instead of a 400 naming the field).
    with request.dbsession.no_autoflush:
        _apply_job_values_unflushed(request, job, values)


def _apply_job_values_unflushed(request, job, values):
    template = job.job_template
    if "job_template" in values:
        template = related(request, "job_template", JobTemplate, values.pop("job_template"), Permission.EDIT)
        job.job_template_id = template.id
        job.job_template = template
    if "worker_pool" in values:
        pool = related(request, "worker_pool", WorkerPool, values.pop("worker_pool"))
        job.worker_pool_id = pool.id
    if "parent" in values:
        parent_id = values.pop("parent")
        if parent_id is not None:
            related(request, "job", Job, parent_id, field="parent")
        job.parent_id = parent_id
    excludes = values.pop("reschedule_excludes", None)
    _set_addresses(job, values)
    for name, value in values.items():
        setattr(job, name, value)
    _check_job(request, job, template)
    if excludes is not None:
        job.reschedule_excludes = [RescheduleExclude(**e) for e in excludes]
    job.script_content = job.render_script()


def create_job(request, collection, values):
    template = related(request, "job_template", JobTemplate, values["job_template"], Permission.EDIT)
    job = Job(title=values["title"], job_template=template, fail_times=0)
    job.job_template_id = template.id
    _apply_job_values(request, job, values)
    request.dbsession.add(job)
    request.dbsession.flush()
    return job


def update_job(request, item, values):
    job = item.obj
    changed = {
        name for name, value in values.items()
        if name not in ("enqueue_is_enabled",) and _differs(item, name, value)
    }
    if changed or not request.has_permission(Permission.TOGGLE_JOB, item):
        if not request.has_permission(Permission.EDIT, item):
            raise forbidden("You may only enable or disable this job.")
    elif not request.has_permission(Permission.EDIT, item):
        # A project admin PUTs back the job as read: the other fields are
        # unchanged, and their relations need not be checked (or reached).
        values = {name: value for name, value in values.items() if name == "enqueue_is_enabled"}
    _apply_job_values(request, job, values)
    return job


def _differs(item, name, value):
    from .serialize import current_value

    node = item.resource_type.schema[name]
    return current_value(node, item.obj) != value


# --- run ---------------------------------------------------------------------

FENCED_RUN_FIELDS = ("start_dts", "pid", "return_dts", "return_success")


def create_run(request, collection, values):
    job = related(request, "job", Job, values.pop("job"), Permission.SCHEDULE_RUN)
    not_on_create = set(values) - {"schedule_dts", "schedule_children", "worker"}
    if not_on_create:
        raise bad_request(
            "Invalid fields.",
            {name: "Set by the worker, not on create." for name in sorted(not_on_create)},
        )
    worker_id = values.get("worker")
    if worker_id is not None:
        worker = related(request, "worker", Worker, worker_id)
        if job.worker_pool not in worker.pools:
            raise bad_request("Invalid fields.", {"worker": "The worker is not in the job's pool."})
    schedule_dts = values.get("schedule_dts") or utcnow()
    _check_schedule(schedule_dts)
    return run_rules.create_run(
        request.dbsession,
        job,
        schedule_dts,
        is_manual=True,
        schedule_children=values.get("schedule_children", True),
        worker_id=worker_id,
    )


def update_run(request, item, values):
    run = item.obj
    dbsession = request.dbsession
    if not request.has_permission(Permission.EDIT, item):
        raise forbidden("Only the workers of the run's project may change a run.")
    worker = caller_worker(request)
    if "job" in values and values.pop("job") != run.job_id:
        raise bad_request("Invalid fields.", {"job": "A run cannot move to another job."})

    claim = values.get("enqueue_dts") is not None and run.enqueue_dts is None
    reset = "enqueue_dts" in values and values["enqueue_dts"] is None and run.enqueue_dts is not None
    if claim:
        if worker is None:
            raise forbidden("Only a worker claims a run.")
        wanted = values.pop("worker", worker.id)
        if wanted != worker.id:
            raise forbidden("A worker claims runs for itself only.")
        try:
            run_rules.claim_run(dbsession, run, worker, values.pop("enqueue_dts"))
        except run_rules.RunConflict as exc:
            raise conflict(str(exc))
    elif reset:
        _require_holder(request, run)
        values.pop("enqueue_dts")
        if values.get("start_dts", None) is not None:
            raise bad_request("Invalid fields.", {"start_dts": "A reset run has not started."})
        values.pop("start_dts", None)
        release = "worker" in values and values.pop("worker") is None
        try:
            run_rules.reset_claim(dbsession, run, release_worker=release)
        except run_rules.RunConflict as exc:
            raise conflict(str(exc))
    elif "enqueue_dts" in values:
        if values["enqueue_dts"] != run.enqueue_dts:
            if run.enqueue_dts is not None:
                raise conflict("The run has been claimed already.")
        values.pop("enqueue_dts")

    if "worker" in values:
        if values["worker"] != run.worker_id:
            raise conflict("The run's worker changes only with a claim or a reset.")
        values.pop("worker")

    fenced = [name for name in FENCED_RUN_FIELDS if name in values]
    if fenced:
        _require_holder(request, run)
        if run.return_dts is not None:
            raise conflict("The run has returned already.")
    returning = values.get("return_dts") is not None
    if "return_dts" in values and values["return_dts"] is None:
        values.pop("return_dts")
    if "schedule_dts" in values and values["schedule_dts"] != run.schedule_dts:
        _check_schedule(values["schedule_dts"])
        if worker is not None:
            _require_holder(request, run)
        if run.return_dts is not None:
            raise conflict("The run has returned; its schedule is history.")
    for name in ("start_dts", "pid", "schedule_dts", "schedule_children"):
        if name in values:
            setattr(run, name, values.pop(name))
    if returning:
        return_success = values.pop("return_success", run.return_success)
        dbsession.flush()
        try:
            run_rules.mark_returned(
                dbsession, run, values.pop("return_dts"), return_success, worker_id=worker.id
            )
        except run_rules.RunConflict as exc:
            raise conflict(str(exc))
        process_return(request.dbsession, run, mail_context(request))
    elif "return_success" in values:
        run.return_success = values.pop("return_success")
    return run


def _check_schedule(schedule_dts):
    try:
        run_rules.check_schedule_dts(schedule_dts)
    except run_rules.InvalidSchedule as exc:
        raise bad_request("Invalid fields.", {"schedule_dts": str(exc)})


def _require_holder(request, run):
    """The claim is the fencing token: only the worker holding the run."""
    worker = caller_worker(request)
    if worker is None or run.worker_id != worker.id or run.enqueue_dts is None:
        raise forbidden("Only the worker that holds this run may do that.")


# --- kill_request ------------------------------------------------------------


def create_kill_request(request, collection, values):
    run = related(request, "run", Run, values.pop("run"), Permission.KILL_RUN)
    if values:
        raise bad_request(
            "Invalid fields.", {name: "Set by the worker, not on create." for name in values}
        )
    if run.start_dts is None or run.return_dts is not None:
        raise conflict("Only a started run that has not returned can be killed.")
    kill_request = KillRequest(run_id=run.id, schedule_dts=utcnow())
    request.dbsession.add(kill_request)
    request.dbsession.flush()
    return kill_request


def update_kill_request(request, item, values):
    return _update_for_holder(request, item, values, "a kill request", "acts on a kill request")


def _update_for_holder(request, item, values, noun, action):
    """Kill requests and logs belong to their run: only its holder changes them."""
    obj = item.obj
    if not request.has_permission(Permission.EDIT, item):
        raise forbidden(f"Only the run's worker {action}.")
    _require_holder(request, obj.run)
    if "run" in values and values.pop("run") != obj.run_id:
        raise bad_request("Invalid fields.", {"run": f"{noun.capitalize()} cannot move to another run."})
    for name, value in values.items():
        setattr(obj, name, value)
    return obj


# --- run_log -----------------------------------------------------------------


def create_run_log(request, collection, values):
    run = related(request, "run", Run, values["run"], Permission.EDIT)
    _require_holder(request, run)
    _require_not_returned(run)
    existing = request.dbsession.scalar(select(RunLog.id).where(RunLog.run_id == run.id))
    if existing is not None:
        raise conflict(f"The run has a log already: /api/v1/run_log/{existing}/.")
    log = RunLog(run_id=run.id, content=values.get("content", ""))
    request.dbsession.add(log)
    request.dbsession.flush()
    return log


def update_run_log(request, item, values):
    _require_not_returned(item.obj.run)
    return _update_for_holder(request, item, values, "a log", "writes its log")


def _require_not_returned(run):
    # What a run printed is final once its result is in.
    if run.return_dts is not None:
        raise conflict("The run has returned; its log is read-only.")


# --- worker ------------------------------------------------------------------


def update_worker(request, item, values):
    worker = item.obj
    if not request.has_permission(Permission.EDIT, item):
        raise forbidden("A worker changes only itself.")
    if caller_worker(request) is not None:
        others = sorted(name for name in values if name not in WORKER_SELF_FIELDS
                        and values[name] != getattr(worker, name))
        if others:
            raise APIError(403, "A worker sets only its ping, version and concurrency.",
                           {name: "Set by an administrator." for name in others})
        if values.get("ping_response_dts") is not None:
            # A ping is taken by the server's clock: a worker's clock (or a
            # made-up future) must not keep a dead worker looking alive.
            values["ping_response_dts"] = utcnow()
    if values.get("concurrent_jobs") is not None and not 0 <= values["concurrent_jobs"] <= 1000:
        raise bad_request("Invalid fields.", {"concurrent_jobs": "Between 0 and 1000."})
    for name, value in values.items():
        setattr(worker, name, value)
    return worker


CREATE = {
    "job": create_job,
    "run": create_run,
    "kill_request": create_kill_request,
    "run_log": create_run_log,
}
UPDATE = {
    "job": update_job,
    "run": update_run,
    "kill_request": update_kill_request,
    "run_log": update_run_log,
    "worker": update_worker,
}

__all__ = ["APIError", "CREATE", "UPDATE"]
