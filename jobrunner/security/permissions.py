"""Permissions and principals, and the ACLs computed from project data."""
import enum

from pyramid.authorization import ALL_PERMISSIONS, Allow, Authenticated
from sqlalchemy import Select, literal_column, select, union

from ..models import Group, Worker
from ..models.tables import (
    project_auth_groups,
    project_groups,
    project_worker_pools,
    worker_pool_workers,
)


class Permission(str, enum.Enum):
    VIEW = "view"
    # What members of a project's admin groups may do (SPEC section 4).
    SCHEDULE_RUN = "schedule_run"
    KILL_RUN = "kill_run"
    TOGGLE_JOB = "toggle_job"
    # Any other write: workers on what reaches them, and admins.
    EDIT = "edit"
    # The admin pages: a project's admin groups create, edit and delete the
    # project's templates and jobs there (the API does not grant it).
    MANAGE = "manage"


ADMIN_PRINCIPAL = "role:admin"
PROJECT_ADMIN_PERMISSIONS = (
    Permission.VIEW,
    Permission.SCHEDULE_RUN,
    Permission.KILL_RUN,
    Permission.TOGGLE_JOB,
)
WORKER_PERMISSIONS = PROJECT_ADMIN_PERMISSIONS + (Permission.EDIT,)


def worker_principal(api_key):
    return f"worker:{api_key}"


def group_principal(name):
    return f"group:{name}"


def project_acl(dbsession, project_ids, view_only=False):
    """The ACL that the projects' groups and pools' workers give.

    `project_ids` is a list of ids or a SELECT of them (which saves a round
    trip: the ACL of an item is one query). With view_only (objects that
    merely hang off projects, such as pools and groups) everybody who reaches
    one of the projects may look, nothing more.
    """
    acl = [(Allow, ADMIN_PRINCIPAL, ALL_PERMISSIONS)]
    if not isinstance(project_ids, Select):
        project_ids = list(project_ids)
        if not project_ids:
            return acl
    viewers = (
        select(literal_column("'viewer'").label("role"), Group.name.label("name"))
        .join(project_groups, project_groups.c.group_id == Group.id)
        .where(project_groups.c.project_id.in_(project_ids))
    )
    admins = (
        select(literal_column("'admin'"), Group.name)
        .join(project_auth_groups, project_auth_groups.c.group_id == Group.id)
        .where(project_auth_groups.c.project_id.in_(project_ids))
    )
    workers = (
        select(literal_column("'worker'"), Worker.api_key)
        .join(worker_pool_workers, worker_pool_workers.c.worker_id == Worker.id)
        .join(
            project_worker_pools,
            project_worker_pools.c.worker_pool_id == worker_pool_workers.c.worker_pool_id,
        )
        .where(project_worker_pools.c.project_id.in_(project_ids))
    )
    # UNION, not UNION ALL: each principal once per role, as DISTINCT gave.
    rows = dbsession.execute(union(viewers, admins, workers)).all()
    admin_perms = Permission.VIEW if view_only else PROJECT_ADMIN_PERMISSIONS + (Permission.MANAGE,)
    worker_perms = Permission.VIEW if view_only else WORKER_PERMISSIONS
    acl += [(Allow, group_principal(name), Permission.VIEW) for role, name in rows if role == "viewer"]
    acl += [(Allow, group_principal(name), admin_perms) for role, name in rows if role == "admin"]
    acl += [(Allow, worker_principal(name), worker_perms) for role, name in rows if role == "worker"]
    return acl


COLLECTION_ACL = [(Allow, Authenticated, Permission.VIEW)]
