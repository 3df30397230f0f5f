"""Every create, update and delete of the admin pages goes through here.

The views hand in values the API's types have validated; these functions
check the rules that need the database, change the objects, and raise
APIError (400 naming the fields, 403 out of reach, 409 a refusal with its
reason). Jobs go through the API's own write functions, so a job saved in a
form obeys exactly the rules of a job sent to the API.
"""
from sqlalchemy import delete, select, update

from ..admin import new_worker_credentials
from ..api import writes
from ..api.errors import bad_request, conflict, forbidden
from ..models import (
    Group,
    Job,
    JobTemplate,
    KillRequest,
    Project,
    Run,
    RunLog,
    Worker,
    WorkerPool,
)
from ..security.passwords import hash_password
from ..security.permissions import Permission
from .managed import managed_project_ids

RELATED_MODELS = {"group": Group, "worker_pool": WorkerPool, "worker": Worker, "project": Project,
                  "job_template": JobTemplate, "job": Job}


# --- saving ----------------------------------------------------------------------


def save(request, resource, obj, values):
    """Creates (obj None) or updates an object; returns (obj, secret) where
    secret is a worker's new secret, shown once."""
    saver = SAVERS.get(resource.name, _save_fields)
    dbsession = request.dbsession
    with dbsession.no_autoflush:
        result = saver(request, resource, obj, dict(values))
    obj, secret = result if isinstance(result, tuple) else (result, None)
    dbsession.flush()
    return obj, secret


def _save_fields(request, resource, obj, values, nodes=None):
    """Sets plain fields, addresses and relations, after checking that the
    unique fields stay unique and related objects exist."""
    dbsession = request.dbsession
    nodes = {node.name: node for node in (nodes or resource.nodes())}
    errors = {}
    created = obj is None
    if created:
        obj = resource.model()
    for name, value in values.items():
        node = nodes[name]
        if node.unique and _taken(dbsession, resource.model, node.attr, value, obj):
            errors[name] = f"Another {resource.label.lower()} has this {name} already."
    resolved = {}
    for name, value in values.items():
        node = nodes[name]
        if node.kind == "to_many":
            model = RELATED_MODELS[node.typ.resource]
            found = dbsession.scalars(select(model).where(model.id.in_(value))).all() if value else []
            missing = set(value) - {o.id for o in found}
            if missing:
                errors[name] = f"No {node.typ.resource} with id {min(missing)}."
            order = {object_id: index for index, object_id in enumerate(value)}
            resolved[name] = sorted(found, key=lambda o: order[o.id])
        elif node.kind == "to_one":
            model = RELATED_MODELS[node.typ.resource]
            if value is not None and dbsession.get(model, value) is None:
                errors[name] = f"No {node.typ.resource} with id {value}."
            resolved[name] = value
        elif node.kind == "addresses":
            resolved[name] = "\n".join(value)
        else:
            resolved[name] = value
    if errors:
        raise bad_request("Invalid fields.", errors)
    for name, value in resolved.items():
        setattr(obj, nodes[name].attr, value)
    if created:
        dbsession.add(obj)
    return obj


def _taken(dbsession, model, attr, value, obj):
    column = getattr(model, attr)
    query = select(model.id).where(column == value)
    if obj.id is not None:
        query = query.where(model.id != obj.id)
    return dbsession.scalar(query.limit(1)) is not None


def _save_user(request, resource, obj, values):
    password = values.pop("password", "")
    if obj is None and not password:
        raise bad_request("Invalid fields.", {"password": "A new user needs a password."})
    me = request.identity.user
    if obj is not None and obj.id == me.id and not (values.get("is_admin") and values.get("is_active")):
        raise bad_request("Invalid fields.", {
            "is_admin": "You cannot take away your own administrator rights or deactivate yourself.",
        })
    user = _save_fields(request, resource, obj, values)
    if password:
        user.password_hash = hash_password(password)
    return user


def _save_worker(request, resource, obj, values):
    secret = None
    if obj is None:
        api_key, secret = new_worker_credentials()
        obj = Worker(api_key=api_key, secret=secret, worker_version="")
        request.dbsession.add(obj)
    if values.get("concurrent_jobs") is not None and not 0 <= values["concurrent_jobs"] <= 1000:
        raise bad_request("Invalid fields.", {"concurrent_jobs": "Between 0 and 1000."})
    return _save_fields(request, resource, obj, values), secret


def rotate_secret(request, worker):
    """A new secret for a worker: the old one stops working at once in this
    process, and within jobrunner.worker_cache_seconds in the others."""
    _, worker.secret = new_worker_credentials()
    request.dbsession.flush()
    return worker.secret


def _check_managed_project(request, project_id):
    ids = managed_project_ids(request)
    if ids is not None and project_id not in set(request.dbsession.scalars(ids)):
        raise forbidden(f"The project {project_id} is out of your reach.")


def _save_template(request, resource, obj, values):
    dbsession = request.dbsession
    project_id = values.get("project", obj.project_id if obj is not None else None)
    if project_id is None or dbsession.get(Project, project_id) is None:
        raise bad_request("Invalid fields.", {"project": f"No project with id {project_id}."})
    _check_managed_project(request, project_id)
    errors = {}
    if obj is not None and project_id != obj.project_id and obj.jobs:
        errors["project"] = "A template with jobs stays in its project."
    title = values.get("title", obj.title if obj is not None else "")
    duplicate = select(JobTemplate.id).where(JobTemplate.project_id == project_id,
                                             JobTemplate.title == title)
    if obj is not None:
        duplicate = duplicate.where(JobTemplate.id != obj.id)
    if dbsession.scalar(duplicate) is not None:
        errors["title"] = "A template with this title exists in this project already."
    if errors:
        raise bad_request("Invalid fields.", errors)
    old_body = obj.body if obj is not None else None
    template = _save_fields(request, resource, obj, values)
    if obj is not None and template.body != old_body:
        # A job's script is its template rendered with its part.
        for job in template.jobs:
            job.script_content = job.render_script()
    return template


def _save_job(request, resource, obj, values):
    if obj is None:
        return writes.create_job(request, None, values, template_permission=Permission.MANAGE)
    first_run_at = values.pop("first_run_at", None)
    writes.apply_job_values(request, obj, values, template_permission=Permission.MANAGE)
    # A new "first run at" typed into the form moves the waiting run.
    writes.first_run(request, obj, first_run_at, move_waiting=True)
    return obj


SAVERS = {"user": _save_user, "worker": _save_worker, "job_template": _save_template,
          "job": _save_job}


# --- deleting -----------------------------------------------------------------------


def started_runs(dbsession, *conditions):
    return dbsession.scalar(
        select(Run.id).where(Run.start_dts.is_not(None), Run.return_dts.is_(None), *conditions).limit(1)
    )


def refusal(request, resource, obj):
    """Why the object may not be deleted, or None."""
    dbsession = request.dbsession
    name = resource.name
    if name == "job" and started_runs(dbsession, Run.job_id == obj.id) is not None:
        return "The job has a started run; kill it or wait until it has returned."
    if name == "job_template" and obj.jobs:
        return f"The template has {len(obj.jobs)} job(s); delete or move them first."
    if name == "worker_pool":
        jobs = dbsession.scalar(select(Job.id).where(Job.worker_pool_id == obj.id).limit(1))
        if jobs is not None:
            return "Jobs run on this pool; give them another pool first."
    if name == "worker" and started_runs(dbsession, Run.worker_id == obj.id) is not None:
        return "The worker holds started runs; wait until they have returned or stop the worker."
    if name == "project" and obj.job_templates:
        return "The project has job templates; delete them first."
    if name == "user" and obj.id == request.identity.user.id:
        return "You cannot delete yourself."
    return None


def remove(request, resource, obj):
    """Deletes the object, or raises a 409 with the reason it may not go."""
    reason = refusal(request, resource, obj)
    if reason:
        raise conflict(reason)
    dbsession = request.dbsession
    if resource.name == "job":
        _delete_job_rows(dbsession, obj)
    elif resource.name == "worker":
        # Claimed but not started runs go back to the queue of the pool.
        dbsession.execute(
            update(Run).where(Run.worker_id == obj.id, Run.start_dts.is_(None),
                              Run.return_dts.is_(None))
            .values(worker_id=None, enqueue_dts=None)
            .execution_options(synchronize_session=False)
        )
    dbsession.delete(obj)
    dbsession.flush()


def _delete_job_rows(dbsession, job):
    """A job's runs with their logs and kill requests, in a few statements
    (a job may have a long history); its children lose their parent."""
    run_ids = select(Run.id).where(Run.job_id == job.id)
    for model in (KillRequest, RunLog):
        dbsession.execute(delete(model).where(model.run_id.in_(run_ids))
                          .execution_options(synchronize_session=False))
    dbsession.execute(delete(Run).where(Run.job_id == job.id)
                      .execution_options(synchronize_session=False))
    dbsession.execute(update(Job).where(Job.parent_id == job.id).values(parent_id=None)
                      .execution_options(synchronize_session=False))
    dbsession.expire_all()
