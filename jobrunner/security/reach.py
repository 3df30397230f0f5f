"""Who reaches what, written once.

A caller reaches a project in one of three ways: a user through a group that
views the project, a user through a group that administers it, a worker
through a pool the project uses. Application admins reach everything. Every
other object hangs off projects (a job through its template, a run through its
job, a pool through the projects that use it, ...), and is reached through
them.

From this one description come both answers the web needs: the WHERE that
narrows a list to what the caller reaches (`Reach.narrow`), and the ACL of one
object (`Reach.acl`), which ends in DENY_ALL so that nothing above it in a
traversal tree can let a caller through.
"""
from dataclasses import dataclass

from pyramid.authorization import ALL_PERMISSIONS, DENY_ALL, Allow, Authenticated
from sqlalchemy import Select, false, literal_column, select, union

from ..models import AuditEvent, Group, Job, JobTemplate, KillRequest, Project, Run, RunLog, Worker, WorkerPool
from ..models.tables import (
    project_auth_groups,
    project_groups,
    project_worker_pools,
    user_groups,
    worker_pool_workers,
)
from .permissions import (
    ADMIN_PRINCIPAL,
    PROJECT_ADMIN_PERMISSIONS,
    WORKER_PERMISSIONS,
    Permission,
    group_principal,
    worker_principal,
)

# Anybody logged in may look at the lists; what they list is narrowed.
COLLECTION_ACL = [(Allow, Authenticated, Permission.VIEW)]


# --- the ways into a project ---------------------------------------------------


@dataclass(frozen=True)
class Way:
    """Members (groups or workers) reach a project through the rows of
    `links`; in an ACL a member is `principal(name)`."""

    role: str
    links: object
    project_id: object
    member_id: object
    member: object
    name: object
    principal: object


WAYS = (
    Way("viewer", project_groups, project_groups.c.project_id, project_groups.c.group_id,
        Group, Group.name, group_principal),
    Way("admin", project_auth_groups, project_auth_groups.c.project_id,
        project_auth_groups.c.group_id, Group, Group.name, group_principal),
    Way(
        "worker",
        project_worker_pools.join(
            worker_pool_workers,
            worker_pool_workers.c.worker_pool_id == project_worker_pools.c.worker_pool_id,
        ),
        project_worker_pools.c.project_id,
        worker_pool_workers.c.worker_id,
        Worker,
        Worker.api_key,
        worker_principal,
    ),
)
VIEWER, ADMIN, WORKER_OF_POOL = WAYS


def _projects_reached(way, member_ids):
    return select(way.project_id).select_from(way.links).where(way.member_id.in_(member_ids))


def reached_project_ids(identity):
    """The ids of the projects the caller reaches (a SELECT of them, or for
    a worker the list its identity holds); None means all."""
    if identity.is_admin:
        return None
    if identity.worker is not None:
        return sorted(identity.worker.project_ids)
    group_ids = select(user_groups.c.group_id).where(user_groups.c.user_id == identity.user.id)
    return union(_projects_reached(VIEWER, group_ids), _projects_reached(ADMIN, group_ids))


def managed_project_ids(identity):
    """A SELECT of the ids of the projects the caller administers (through
    its admin groups); None means all (an application admin)."""
    if identity is not None and identity.is_admin:
        return None
    if identity is None or identity.user is None:
        return select(Project.id).where(false())
    group_ids = select(user_groups.c.group_id).where(user_groups.c.user_id == identity.user.id)
    return _projects_reached(ADMIN, group_ids)


def role_permissions(view_only):
    """What each way into a project allows."""
    return {
        VIEWER.role: Permission.VIEW,
        # MANAGE: the admin pages only; the API never asks for it.
        ADMIN.role: Permission.VIEW if view_only else PROJECT_ADMIN_PERMISSIONS + (Permission.MANAGE,),
        WORKER_OF_POOL.role: Permission.VIEW if view_only else WORKER_PERMISSIONS,
    }


def project_acl(dbsession, project_ids, view_only=False, ways=WAYS):
    """The ACL that reaching the projects gives (without the final DENY_ALL).

    `project_ids` is a list of ids or a SELECT of them (which saves a round
    trip: the ACL of an object is one query). Viewer groups may look; admin
    groups may also schedule, kill and toggle; the pools' workers may also
    write. With view_only (objects that merely hang off projects, such as
    pools and groups) everybody who reaches one of the projects may look,
    nothing more. `ways` limits the ACL to the members of some ways.
    """
    acl = [(Allow, ADMIN_PRINCIPAL, ALL_PERMISSIONS)]
    if not isinstance(project_ids, Select):
        project_ids = list(project_ids)
        if not project_ids:
            return acl
    members = [
        select(literal_column(f"'{way.role}'").label("role"), way.name.label("name"))
        .select_from(way.links.join(way.member.__table__, way.member.id == way.member_id))
        .where(way.project_id.in_(project_ids))
        for way in ways
    ]
    # UNION, not UNION ALL: each principal once per role.
    rows = dbsession.execute(union(*members)).all()
    permissions = role_permissions(view_only)
    for way in ways:
        acl += [(Allow, way.principal(name), permissions[way.role]) for role, name in rows if role == way.role]
    return acl


# --- how objects hang off projects ---------------------------------------------


@dataclass(frozen=True)
class Hang:
    """Rows hang off projects through `column`: a project id itself when
    `parent` is None, else the `parent_key` of rows that hang off them."""

    column: object
    parent_key: object = None
    parent: "Hang" = None

    def in_projects(self, project_ids):
        """A WHERE clause: the row hangs off one of the projects."""
        if self.parent is None:
            return self.column.in_(project_ids)
        return self.column.in_(select(self.parent_key).where(self.parent.in_projects(project_ids)))

    def project_ids_where(self, condition):
        """A SELECT of the project ids of the rows that meet `condition`."""
        if self.parent is None:
            return select(self.column).where(condition)
        return self.parent.project_ids_where(
            self.parent_key.in_(select(self.column).where(condition))
        )

    def project_ids_of(self, obj):
        """The ids of obj's projects: a list, or a SELECT of them."""
        value = getattr(obj, self.column.key)
        if self.parent is None:
            return [value]
        return self.parent.project_ids_where(self.parent_key == value)


PROJECT = Hang(Project.id)
JOB_TEMPLATE = Hang(JobTemplate.project_id)
JOB = Hang(Job.job_template_id, JobTemplate.id, JOB_TEMPLATE)
RUN = Hang(Run.job_id, Job.id, JOB)
KILL_REQUEST = Hang(KillRequest.run_id, Run.id, RUN)
RUN_LOG = Hang(RunLog.run_id, Run.id, RUN)
_POOL_OF_PROJECT = Hang(project_worker_pools.c.project_id)
WORKER_POOL = Hang(WorkerPool.id, project_worker_pools.c.worker_pool_id, _POOL_OF_PROJECT)
_WORKER_IN_POOL = Hang(
    worker_pool_workers.c.worker_pool_id, project_worker_pools.c.worker_pool_id, _POOL_OF_PROJECT
)
WORKER = Hang(Worker.id, worker_pool_workers.c.worker_id, _WORKER_IN_POOL)
GROUP = Hang(Group.id, project_groups.c.group_id, Hang(project_groups.c.project_id))
# An audit event keeps the project its object belonged to.
AUDIT_EVENT = Hang(AuditEvent.project_id)


# --- reach of a kind of object -------------------------------------------------


class Reach:
    """Objects of one or more projects: the projects' reach is theirs."""

    view_only = False

    def __init__(self, hang):
        self.hang = hang

    def in_projects(self, project_ids):
        return self.hang.in_projects(project_ids)

    def narrow(self, query, identity):
        project_ids = reached_project_ids(identity)
        if project_ids is None:
            return query
        return query.where(self.hang.in_projects(project_ids))

    def acl(self, dbsession, obj, identity=None):
        """The object's ACL; for a signing worker (`identity`) only the
        entries that concern it, which need no query of the members."""
        if identity is not None and identity.worker is not None:
            return [(Allow, ADMIN_PRINCIPAL, ALL_PERMISSIONS)] + self.worker_entries(
                dbsession, obj, identity.worker) + [DENY_ALL]
        project_ids = self.hang.project_ids_of(obj)
        return project_acl(dbsession, project_ids, view_only=self.view_only) + [DENY_ALL]

    def worker_entries(self, dbsession, obj, worker):
        """What project_acl gives the worker's principal, from the projects
        the worker reaches (held by its identity, security/workers.py)."""
        if not self.reached_by(dbsession, obj, worker):
            return []
        permissions = role_permissions(self.view_only)[WORKER_OF_POOL.role]
        return [(Allow, worker_principal(worker.api_key), permissions)]

    def reached_by(self, dbsession, obj, worker):
        project_ids = self.hang.project_ids_of(obj)
        if isinstance(project_ids, Select):
            project_ids = dbsession.scalars(project_ids)
        return any(project_id in worker.project_ids for project_id in project_ids)


class SharedReach(Reach):
    """Objects that merely hang off projects (pools): reaching one of the
    projects lets a caller look, nothing more."""

    view_only = True


class WorkerReach(SharedReach):
    """A worker is shown to the users who reach one of its projects; of the
    workers, each sees and updates itself only."""

    def narrow(self, query, identity):
        if identity.worker is not None:
            return query.where(Worker.id == identity.worker.id)
        return super().narrow(query, identity)

    def worker_entries(self, dbsession, obj, worker):
        return [(Allow, worker_principal(obj.api_key), (Permission.VIEW, Permission.EDIT))]

    def acl(self, dbsession, obj, identity=None):
        if identity is not None and identity.worker is not None:
            return super().acl(dbsession, obj, identity)
        users = project_acl(dbsession, self.hang.project_ids_of(obj), view_only=True,
                            ways=(VIEWER, ADMIN))
        return users + [(Allow, worker_principal(obj.api_key), (Permission.VIEW, Permission.EDIT)),
                        DENY_ALL]


class GroupReach(SharedReach):
    """A group is seen by its members, and by the workers of the projects it
    views (a worker learns who may look at its projects)."""

    def narrow(self, query, identity):
        if identity.is_admin:
            return query
        if identity.worker is not None:
            return super().narrow(query, identity)
        return query.where(
            Group.id.in_(select(user_groups.c.group_id).where(user_groups.c.user_id == identity.user.id))
        )

    def acl(self, dbsession, obj, identity=None):
        if identity is not None and identity.worker is not None:
            return super().acl(dbsession, obj, identity)
        workers = project_acl(dbsession, self.hang.project_ids_of(obj), view_only=True,
                              ways=(WORKER_OF_POOL,))
        return workers + [(Allow, group_principal(obj.name), Permission.VIEW), DENY_ALL]


class AuditReach(Reach):
    """The events of a project's objects are for the project's admin groups;
    the other events (users, groups, pools, workers, logins) for admins."""

    def narrow(self, query, identity):
        project_ids = managed_project_ids(identity)
        if project_ids is None:
            return query
        return query.where(self.hang.in_projects(project_ids))

    def worker_entries(self, dbsession, obj, worker):
        return []

    def acl(self, dbsession, obj, identity=None):
        if identity is not None and identity.worker is not None:
            return super().acl(dbsession, obj, identity)
        if obj.project_id is None:
            return [(Allow, ADMIN_PRINCIPAL, ALL_PERMISSIONS), DENY_ALL]
        admins = project_acl(dbsession, [obj.project_id], view_only=True, ways=(ADMIN,))
        return admins + [DENY_ALL]
