"""What each admin page edits: the fields, the list's columns, the choices.

The fields are the REST API's colander nodes (jobrunner/api/resources.py),
so a field added to a resource appears in its form, validated by the same
types. The fields the API does not carry (a project's viewer groups, the
notification addresses, users) are declared here once, with the same
`field()` helper and types.
"""
from dataclasses import dataclass, field as dataclass_field
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..api.fields import AddressList, Boolean, DateTime, Text, ToMany, field
from ..api.resources import RESOURCE_TYPES
from ..models import Group, Job, JobTemplate, Project, User, Worker, WorkerPool
from ..models.tables import project_worker_pools
from .managed import in_managed_projects, managed_projects

# Runtime state a worker reports itself; no person types it.
WORKER_STATE = ("ping_response_dts", "worker_version")


def api_nodes(name, skip=()):
    """The writable fields of an API resource, in the API's order."""
    return [node.clone() for node in RESOURCE_TYPES[name].schema.children
            if not node.readonly and node.name not in skip]


def addresses():
    return field(AddressList(), "notification_addresses", kind="addresses",
                 help_text="E-mail addresses for failure mails, one per line.")


def user_nodes():
    return [
        field(Text(150), "username", required=True, unique=True),
        field(Text(255), "email"),
        field(Text(), "password", kind="password",
              help_text="A new password; left empty, the password stays as it is."),
        field(Boolean(), "is_active", default=True, help_text="Only active users may log in."),
        field(Boolean(), "is_admin", default=False, help_text="Administrators may do everything."),
        field(ToMany("group"), "groups", kind="to_many"),
    ]


def project_nodes():
    nodes = api_nodes("project")
    viewers = field(ToMany("group"), "groups", kind="to_many",
                    help_text="Groups whose members see the project.")
    position = [n.name for n in nodes].index("auth_groups")
    nodes.insert(position, viewers)
    return nodes + [addresses()]


def job_nodes():
    nodes = api_nodes("job")
    if "first_run_at" not in {node.name for node in nodes}:
        nodes.append(field(DateTime(), "first_run_at", nullable=True, kind="first_run_at",
                           help_text="Local date and time of the first scheduled run, "
                                     "in the job's time zone."))
    return nodes


# --- choices for relations -----------------------------------------------------
# Each returns [(id, label)] of what the caller may pick; `obj` is the object
# being edited (None on "new").


def _all(model, order):
    def choices(request, obj):
        rows = request.dbsession.scalars(select(model).order_by(order, model.id))
        return [(o.id, getattr(o, order.key)) for o in rows]

    return choices


def _projects(request, obj):
    return [(p.id, p.title) for p in managed_projects(request)]


def _templates(request, obj):
    query = select(JobTemplate).join(Project).order_by(Project.title, JobTemplate.title)
    query = in_managed_projects(request, query, JobTemplate)
    return [(t.id, f"{t.project.title} › {t.title}") for t in request.dbsession.scalars(query)]


def _job_project_ids(request, obj):
    """The projects a job's relations may come from: its own when it has one."""
    if obj is not None and obj.job_template is not None:
        return [obj.job_template.project_id]
    return [p.id for p in managed_projects(request)]


def _pools(request, obj):
    project_ids = _job_project_ids(request, obj)
    query = (
        select(WorkerPool)
        .where(WorkerPool.id.in_(
            select(project_worker_pools.c.worker_pool_id)
            .where(project_worker_pools.c.project_id.in_(project_ids))
        ))
        .order_by(WorkerPool.title)
    )
    return [(p.id, p.title) for p in request.dbsession.scalars(query)]


def _parents(request, obj):
    project_ids = _job_project_ids(request, obj)
    query = (
        select(Job).join(JobTemplate).join(Project)
        .where(JobTemplate.project_id.in_(project_ids))
        .order_by(Project.title, Job.title)
    )
    if obj is not None and obj.id is not None:
        query = query.where(Job.id != obj.id)
    return [(j.id, f"{j.job_template.project.title} › {j.title}")
            for j in request.dbsession.scalars(query)]


# --- the resources -------------------------------------------------------------


@dataclass
class AdminResource:
    name: str
    model: type
    label: str
    nodes: Callable
    columns: list
    admin_only: bool = True
    choices: dict = dataclass_field(default_factory=dict)
    order_by: tuple = ()
    # What the list's columns read, loaded with the list (not a query a row).
    list_loads: Callable = lambda: ()

    @property
    def plural(self):
        return self.label + "s"

    def title_of(self, obj):
        return getattr(obj, "username", None) or getattr(obj, "name", None) or obj.title


def _yes(value):
    return "yes" if value else "no"


RESOURCES = {
    r.name: r
    for r in (
        AdminResource(
            "user", User, "User", user_nodes,
            [("Username", lambda u: u.username), ("E-mail", lambda u: u.email),
             ("Active", lambda u: _yes(u.is_active)), ("Admin", lambda u: _yes(u.is_admin)),
             ("Groups", lambda u: ", ".join(g.name for g in u.groups))],
            choices={"groups": _all(Group, Group.name)}, order_by=(User.username,),
            list_loads=lambda: (selectinload(User.groups),),
        ),
        AdminResource(
            "group", Group, "Group", lambda: api_nodes("group"),
            [("Name", lambda g: g.name)], order_by=(Group.name,),
        ),
        AdminResource(
            "project", Project, "Project", project_nodes,
            [("Title", lambda p: p.title), ("Enabled", lambda p: _yes(p.enqueue_is_enabled)),
             ("Viewer groups", lambda p: ", ".join(g.name for g in p.groups)),
             ("Admin groups", lambda p: ", ".join(g.name for g in p.auth_groups)),
             ("Pools", lambda p: ", ".join(w.title for w in p.worker_pools))],
            choices={"groups": _all(Group, Group.name), "auth_groups": _all(Group, Group.name),
                     "worker_pools": _all(WorkerPool, WorkerPool.title)},
            order_by=(Project.title,),
            list_loads=lambda: (selectinload(Project.groups), selectinload(Project.auth_groups),
                                selectinload(Project.worker_pools)),
        ),
        AdminResource(
            "worker_pool", WorkerPool, "Worker pool",
            lambda: api_nodes("worker_pool") + [addresses()],
            [("Title", lambda p: p.title), ("Enabled", lambda p: _yes(p.enqueue_is_enabled)),
             ("Workers", lambda p: ", ".join(w.title for w in p.workers))],
            choices={"workers": _all(Worker, Worker.title)}, order_by=(WorkerPool.title,),
            list_loads=lambda: (selectinload(WorkerPool.workers),),
        ),
        AdminResource(
            "worker", Worker, "Worker", lambda: api_nodes("worker", skip=WORKER_STATE),
            [("Title", lambda w: w.title), ("API key", lambda w: w.api_key),
             ("Enabled", lambda w: _yes(w.enqueue_is_enabled)),
             ("Pools", lambda w: ", ".join(p.title for p in w.pools))],
            order_by=(Worker.title,), list_loads=lambda: (selectinload(Worker.pools),),
        ),
        AdminResource(
            "job_template", JobTemplate, "Job template",
            lambda: api_nodes("job_template") + [addresses()],
            [("Title", lambda t: t.title), ("Project", lambda t: t.project.title),
             ("Enabled", lambda t: _yes(t.enqueue_is_enabled))],
            admin_only=False, choices={"project": _projects},
            order_by=(JobTemplate.project_id, JobTemplate.title),
            list_loads=lambda: (selectinload(JobTemplate.project),),
        ),
        AdminResource(
            "job", Job, "Job", job_nodes,
            [("Title", lambda j: j.title), ("Project", lambda j: j.job_template.project.title),
             ("Template", lambda j: j.job_template.title),
             ("Pool", lambda j: j.worker_pool.title),
             ("Enabled", lambda j: _yes(j.enqueue_is_enabled))],
            admin_only=False,
            choices={"job_template": _templates, "worker_pool": _pools, "parent": _parents},
            order_by=(Job.job_template_id, Job.title),
            list_loads=lambda: (selectinload(Job.job_template).selectinload(JobTemplate.project),
                                selectinload(Job.worker_pool)),
        ),
    )
}
