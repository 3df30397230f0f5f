"""What POST, PUT and PATCH do to each resource, beyond storing fields.

Views hand in validated values; these functions check reach, then turn the
values into a call of the domain (jobrunner.jobs, jobrunner.scheduling.runs),
whose errors one exception view turns into JSON answers.
"""
from .. import audit
from ..domain_errors import RunConflict
from ..jobs import check_job
from ..models import Job, JobTemplate, RescheduleExclude, Run, Worker, WorkerPool, utcnow
from ..scheduling import runs
from ..scheduling.mail import mail_context
from ..scheduling.next_run import ensure_first_run
from ..security.permissions import Permission
from ..security.scope import WORKER_SELF_FIELDS
from ..values import addresses_text
from .errors import APIError, bad_request, forbidden
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


# --- job ---------------------------------------------------------------------


def apply_job_values(request, job, values, template_permission=Permission.EDIT):
    """Sets a job's fields and checks the job's rules. `template_permission`
    is what the caller needs on the job's template: the API's EDIT, or the
    admin pages' MANAGE, which a project's admin groups hold."""
    # The rules query the database: they must see the stored rows, not a
    # half-changed job flushed early (a duplicate title would be an
    # IntegrityError instead of a 400 naming the field).
    with request.dbsession.no_autoflush:
        if "job_template" in values:
            job.job_template = related(
                request, "job_template", JobTemplate, values.pop("job_template"), template_permission)
        if "worker_pool" in values:
            job.worker_pool = related(request, "worker_pool", WorkerPool, values.pop("worker_pool"))
        if "parent" in values:
            parent_id = values.pop("parent")
            job.parent = (None if parent_id is None
                          else related(request, "job", Job, parent_id, field="parent"))
        excludes = values.pop("reschedule_excludes", None)
        for name in ("notification_addresses", "webhook_urls"):
            if name in values:
                setattr(job, name, addresses_text(values.pop(name)))
        for name, value in values.items():
            setattr(job, name, value)
        check_job(request.dbsession, job, job.job_template.project)
        if excludes is not None:
            job.reschedule_excludes = [RescheduleExclude(**e) for e in excludes]
        job.script_content = job.render_script()


def create_job(request, collection, values, template_permission=Permission.EDIT):
    template = related(request, "job_template", JobTemplate, values["job_template"], template_permission)
    job = Job(title=values["title"], job_template=template, fail_times=0)
    first_run_at = values.pop("first_run_at", None)
    apply_job_values(request, job, values, template_permission)
    request.dbsession.add(job)
    request.dbsession.flush()
    first_run(request, job, first_run_at)
    return job


def first_run(request, job, first_run_at, move_waiting=False):
    """The job's first scheduled run, by the one rule of next_run."""
    request.dbsession.flush()
    ensure_first_run(request.dbsession, job, request.registry.jobrunner_settings.tz,
                     first_run_at=first_run_at, move_waiting=move_waiting)


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
    first_run_at = values.pop("first_run_at", None)
    apply_job_values(request, job, values)
    first_run(request, job, first_run_at)
    return job


def _differs(item, name, value):
    from .serialize import current_value

    node = item.resource_type.schema[name]
    return current_value(node, item.obj) != value


# --- run ---------------------------------------------------------------------


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
    runs.check_schedule(schedule_dts)
    run = runs.create_run(
        request.dbsession,
        job,
        schedule_dts,
        is_manual=True,
        schedule_children=values.get("schedule_children", True),
        worker_id=worker_id,
    )
    audit.record_schedule(request.dbsession, run)
    return run


def update_run(request, item, values):
    """A PATCH of a run is one step of its life cycle: a claim (enqueue_dts
    set), a release (enqueue_dts cleared), the holder's progress (start,
    pid) or return (return_dts); schedule_dts and schedule_children are
    anyone's of the project."""
    run = item.obj
    dbsession = request.dbsession
    if not request.has_permission(Permission.EDIT, item):
        raise forbidden("Only the workers of the run's project may change a run.")
    worker = caller_worker(request)
    if "job" in values and values.pop("job") != run.job_id:
        raise bad_request("Invalid fields.", {"job": "A run cannot move to another job."})

    if "enqueue_dts" in values:
        enqueue_dts = values.pop("enqueue_dts")
        if enqueue_dts is not None and run.enqueue_dts is None:
            for_worker_id = values.pop("worker", worker.id if worker is not None else None)
            # The worker needs the job's script next: it comes with the claim.
            item.answer_extra.update(runs.claim(dbsession, run, worker, enqueue_dts, for_worker_id))
        elif enqueue_dts is None and run.enqueue_dts is not None:
            release_worker = "worker" in values and values.pop("worker") is None
            runs.release(dbsession, run, worker, release_worker, values.pop("start_dts", None))
        elif enqueue_dts != run.enqueue_dts:
            raise RunConflict("The run has been claimed already.")
    if "worker" in values and values.pop("worker") != run.worker_id:
        raise RunConflict("The run's worker changes only with a claim or a reset.")

    if "schedule_dts" in values:
        runs.move_schedule(run, worker, values.pop("schedule_dts"))
    if "schedule_children" in values:
        run.schedule_children = values.pop("schedule_children")
    fenced = {name: values.pop(name) for name in FENCED_RUN_FIELDS if name in values}
    if fenced:
        return_dts = fenced.pop("return_dts", None)
        if return_dts is None:
            runs.progress(dbsession, run, worker, mail_context(request), **fenced)
        else:
            return_success = fenced.pop("return_success", run.return_success)
            runs.report_return(dbsession, run, worker, return_dts, return_success,
                               mail_context(request), **fenced)
    return run


FENCED_RUN_FIELDS = ("start_dts", "pid", "return_dts", "return_success", "timed_out", "log_content")


# --- kill_request and run_log --------------------------------------------------


def create_kill_request(request, collection, values):
    run = related(request, "run", Run, values.pop("run"), Permission.KILL_RUN)
    if values:
        raise bad_request(
            "Invalid fields.", {name: "Set by the worker, not on create." for name in values}
        )
    kill_request = runs.request_kill(request.dbsession, run)
    audit.record_kill(request.dbsession, run)
    return kill_request


def update_kill_request(request, item, values):
    if not request.has_permission(Permission.EDIT, item):
        raise forbidden("Only the run's worker acts on a kill request.")
    return runs.holder_update(item.obj, caller_worker(request), values)


def create_run_log(request, collection, values):
    run = related(request, "run", Run, values["run"], Permission.EDIT)
    return runs.create_log(request.dbsession, run, caller_worker(request), values.get("content", ""))


def update_run_log(request, item, values):
    if not request.has_permission(Permission.EDIT, item):
        raise forbidden("Only the run's worker writes its log.")
    return runs.holder_update(item.obj, caller_worker(request), values)


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
