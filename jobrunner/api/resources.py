"""The REST resources of SPEC section 3: fields, filters, reach."""
import colander
from pyramid.authorization import ALL_PERMISSIONS, Allow
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..models import (
    Group,
    IntervalType,
    Job,
    JobTemplate,
    KillRequest,
    Project,
    Run,
    RunLog,
    Worker,
    WorkerPool,
)
from ..models.tables import (
    project_auth_groups,
    project_groups,
    project_worker_pools,
    user_groups,
    worker_pool_workers,
)
from ..security.permissions import (
    ADMIN_PRINCIPAL,
    Permission,
    group_principal,
    project_acl,
    worker_principal,
)
from .fields import (
    AddressList,
    Boolean,
    Choice,
    DateTime,
    ExcludeList,
    Integer,
    Text,
    ToMany,
    ToOne,
    field,
)


LOOKUPS = ("exact", "isnull", "gt", "gte", "lt", "lte", "in")


def visible_project_ids(identity):
    """A SELECT of the project ids the caller reaches; None means all."""
    if identity.is_admin:
        return None
    if identity.worker is not None:
        return (
            select(project_worker_pools.c.project_id)
            .join(
                worker_pool_workers,
                worker_pool_workers.c.worker_pool_id == project_worker_pools.c.worker_pool_id,
            )
            .where(worker_pool_workers.c.worker_id == identity.worker.id)
        )
    group_ids = select(user_groups.c.group_id).where(user_groups.c.user_id == identity.user.id)
    return (
        select(project_groups.c.project_id)
        .where(project_groups.c.group_id.in_(group_ids))
        .union(
            select(project_auth_groups.c.project_id).where(
                project_auth_groups.c.group_id.in_(group_ids)
            )
        )
    )


def _jobs_of_projects(project_ids):
    return select(Job.id).join(JobTemplate).where(JobTemplate.project_id.in_(project_ids))


def _addresses(value):
    return [line for line in (value or "").splitlines() if line.strip()]


class ResourceType:
    name = None
    model = None
    list_methods = ("get",)
    detail_methods = ("get",)
    # filter name -> relation resource or None, for every allowed path
    filtering = ()
    ordering = ("id",)
    # relation name -> (resource name, relationship attribute, foreign key attribute)
    relations = {}
    # fields a project admin (TOGGLE_JOB) may change without EDIT
    toggle_fields = ()
    # read-only fields that a create sets itself: a body may repeat the value
    fixed_on_create = {}
    project_scoped = True

    def __init__(self):
        self.schema = colander.SchemaNode(colander.Mapping(unknown="raise"), *self.fields())

    def fields(self):
        raise NotImplementedError

    # --- reach -----------------------------------------------------------
    def narrow(self, query, identity):
        project_ids = visible_project_ids(identity)
        if project_ids is None:
            return query
        return query.where(self.in_projects(project_ids))

    def in_projects(self, project_ids):
        raise NotImplementedError

    def project_ids(self, dbsession, obj):
        raise NotImplementedError

    def acl(self, dbsession, obj):
        return project_acl(dbsession, self.project_ids(dbsession, obj))

    def load_options(self):
        return ()

    # --- output ----------------------------------------------------------
    def extra(self, obj):
        return {}


class GroupResource(ResourceType):
    name = "group"
    model = Group
    filtering = ("id", "name")
    ordering = ("id", "name")
    project_scoped = False

    def fields(self):
        return [field(Text(255, single_line=True), "name", required=True, unique=True, help_text="Group name.")]

    def narrow(self, query, identity):
        if identity.is_admin:
            return query
        if identity.worker is not None:
            return query.where(
                Group.id.in_(
                    select(project_groups.c.group_id).where(
                        project_groups.c.project_id.in_(visible_project_ids(identity))
                    )
                )
            )
        return query.where(
            Group.id.in_(
                select(user_groups.c.group_id).where(user_groups.c.user_id == identity.user.id)
            )
        )

    def acl(self, dbsession, obj):
        project_ids = dbsession.scalars(
            select(project_groups.c.project_id).where(project_groups.c.group_id == obj.id)
        ).all()
        keys = {
            ace[1] for ace in project_acl(dbsession, project_ids) if ace[1].startswith("worker:")
        }
        return (
            [(Allow, ADMIN_PRINCIPAL, ALL_PERMISSIONS), (Allow, group_principal(obj.name), Permission.VIEW)]
            + [(Allow, key, Permission.VIEW) for key in sorted(keys)]
        )


class ProjectResource(ResourceType):
    name = "project"
    model = Project
    filtering = ("id", "title")
    ordering = ("id", "title")
    relations = {}

    def fields(self):
        return [
            field(Text(255, single_line=True), "title", required=True, unique=True),
            field(Text(), "description"),
            field(Boolean(), "enqueue_is_enabled", default=True),
            field(ToMany("worker_pool"), "worker_pools", kind="to_many"),
            field(ToMany("group"), "auth_groups", kind="to_many",
                  help_text="Groups whose members administer the project."),
        ]

    def in_projects(self, project_ids):
        return Project.id.in_(project_ids)

    def project_ids(self, dbsession, obj):
        return [obj.id]

    def load_options(self):
        return (selectinload(Project.worker_pools), selectinload(Project.auth_groups))


class WorkerPoolResource(ResourceType):
    name = "worker_pool"
    model = WorkerPool
    filtering = ("id", "title")
    ordering = ("id", "title")

    def fields(self):
        return [
            field(Text(255, single_line=True), "title", required=True, unique=True),
            field(Text(), "description"),
            field(Boolean(), "enqueue_is_enabled", default=True),
            field(ToMany("worker"), "workers", kind="to_many"),
        ]

    def in_projects(self, project_ids):
        return WorkerPool.id.in_(
            select(project_worker_pools.c.worker_pool_id).where(
                project_worker_pools.c.project_id.in_(project_ids)
            )
        )

    def project_ids(self, dbsession, obj):
        return dbsession.scalars(
            select(project_worker_pools.c.project_id).where(
                project_worker_pools.c.worker_pool_id == obj.id
            )
        ).all()

    def acl(self, dbsession, obj):
        return project_acl(dbsession, self.project_ids(dbsession, obj), view_only=True)

    def load_options(self):
        return (selectinload(WorkerPool.workers).load_only(Worker.id),)


class WorkerResource(ResourceType):
    name = "worker"
    model = Worker
    detail_methods = ("get", "patch")
    filtering = ("id", "api_key", "title")
    ordering = ("id", "title", "ping_response_dts")

    def fields(self):
        return [
            field(Text(255, single_line=True), "title", required=True),
            field(Text(), "description"),
            field(Text(255), "api_key", readonly=True, unique=True),
            field(Boolean(), "enqueue_is_enabled", default=True),
            field(DateTime(), "ping_response_dts", nullable=True),
            field(Text(255), "worker_version"),
            field(Integer(), "concurrent_jobs", default=4),
        ]

    def in_projects(self, project_ids):
        pools = select(project_worker_pools.c.worker_pool_id).where(
            project_worker_pools.c.project_id.in_(project_ids)
        )
        return Worker.id.in_(
            select(worker_pool_workers.c.worker_id).where(
                worker_pool_workers.c.worker_pool_id.in_(pools)
            )
        )

    def narrow(self, query, identity):
        # A worker is told about itself only (SPEC section 6, step 1).
        if identity.worker is not None:
            return query.where(Worker.id == identity.worker.id)
        return super().narrow(query, identity)

    def project_ids(self, dbsession, obj):
        return dbsession.scalars(
            select(project_worker_pools.c.project_id)
            .join(
                worker_pool_workers,
                worker_pool_workers.c.worker_pool_id == project_worker_pools.c.worker_pool_id,
            )
            .where(worker_pool_workers.c.worker_id == obj.id)
        ).all()

    def acl(self, dbsession, obj):
        acl = [
            ace
            for ace in project_acl(dbsession, self.project_ids(dbsession, obj), view_only=True)
            if not ace[1].startswith("worker:")
        ]
        return acl + [(Allow, worker_principal(obj.api_key), (Permission.VIEW, Permission.EDIT))]


class JobTemplateResource(ResourceType):
    name = "job_template"
    model = JobTemplate
    filtering = ("id", "title", "project")
    ordering = ("id", "title")
    relations = {"project": ("project", JobTemplate.project, "project_id")}

    def fields(self):
        return [
            field(Text(255, single_line=True), "title", required=True),
            field(Text(), "description"),
            field(Text(), "body", help_text="The script; {{ content }} marks where a job's script goes."),
            field(Boolean(), "enqueue_is_enabled", default=True),
            field(ToOne("project"), "project", required=True, attr="project_id", kind="to_one"),
        ]

    def in_projects(self, project_ids):
        return JobTemplate.project_id.in_(project_ids)

    def project_ids(self, dbsession, obj):
        return [obj.project_id]


class JobResource(ResourceType):
    name = "job"
    model = Job
    list_methods = ("get", "post")
    detail_methods = ("get", "put", "patch")
    filtering = ("id", "title", "job_template", "worker_pool", "parent", "enqueue_is_enabled",
                 "job_template__project")
    ordering = ("id", "title")
    relations = {
        "job_template": ("job_template", Job.job_template, "job_template_id"),
        "worker_pool": ("worker_pool", Job.worker_pool, "worker_pool_id"),
        "parent": ("job", Job.parent, "parent_id"),
    }
    toggle_fields = ("enqueue_is_enabled",)

    def fields(self):
        return [
            field(Text(255, single_line=True), "title", required=True),
            field(Text(), "description"),
            field(ToOne("job_template"), "job_template", required=True, attr="job_template_id", kind="to_one"),
            field(ToOne("worker_pool"), "worker_pool", required=True, attr="worker_pool_id", kind="to_one",
                  help_text="One of the project's worker pools."),
            field(ToOne("job"), "parent", nullable=True, attr="parent_id", kind="to_one",
                  help_text="The job whose completion schedules this one."),
            field(ToMany("job"), "children", readonly=True, kind="to_many"),
            field(Text(), "script_content", readonly=True, help_text="The template rendered with the script."),
            field(Text(), "script_content_partial"),
            field(Boolean(), "enqueue_is_enabled", default=True),
            field(Integer(), "reschedule_interval", nullable=True),
            field(Choice([t.value for t in IntervalType]), "reschedule_interval_type", nullable=True),
            field(ExcludeList(), "reschedule_excludes", kind="excludes",
                  help_text="Local times of day in which no run is scheduled."),
            field(Boolean(), "run_on_all_workers", default=False),
            field(Boolean(), "schedule_children_on_error", default=False),
            field(AddressList(), "notification_addresses", kind="addresses"),
            field(Integer(), "disable_enqueue_after_fails", nullable=True),
            field(Integer(), "fail_times", readonly=True, default=0),
            field(Integer(), "last_completed_schedule_id", readonly=True, nullable=True),
        ]

    def in_projects(self, project_ids):
        return Job.id.in_(_jobs_of_projects(project_ids))

    def project_ids(self, dbsession, obj):
        # A SELECT: project_acl folds it into its one query.
        return select(JobTemplate.project_id).where(JobTemplate.id == obj.job_template_id)

    def load_options(self):
        return (
            selectinload(Job.children).load_only(Job.id, Job.parent_id),
            selectinload(Job.reschedule_excludes),
        )


class RunResource(ResourceType):
    name = "run"
    model = Run
    # A run posted through the API is manual, whoever posts it.
    fixed_on_create = {"is_manual": True}
    list_methods = ("get", "post")
    detail_methods = ("get", "patch")
    filtering = (
        "id", "job", "job__title", "job__job_template", "job__job_template__project",
        "job__worker_pool", "worker", "worker__api_key", "worker__title", "schedule_id",
        "schedule_dts", "enqueue_dts", "start_dts", "return_dts", "return_success",
        "is_manual", "schedule_children", "pid",
    )
    ordering = ("id", "schedule_dts", "enqueue_dts", "start_dts", "return_dts", "job", "worker",
                "schedule_id")
    relations = {
        "job": ("job", Run.job, "job_id"),
        "worker": ("worker", Run.worker, "worker_id"),
    }

    def fields(self):
        return [
            field(ToOne("job"), "job", required=True, attr="job_id", kind="to_one"),
            field(ToOne("worker"), "worker", nullable=True, attr="worker_id", kind="to_one"),
            field(ToOne("run_log"), "run_log", readonly=True, nullable=True, kind="run_log"),
            field(Integer(), "schedule_id", readonly=True, help_text="Runs of one schedule share it."),
            field(DateTime(), "schedule_dts"),
            field(DateTime(), "enqueue_dts", nullable=True),
            field(DateTime(), "start_dts", nullable=True),
            field(DateTime(), "return_dts", nullable=True),
            field(Boolean(), "return_success", nullable=True),
            field(Integer(), "pid", nullable=True),
            field(Boolean(), "is_manual", readonly=True, default=False),
            field(Boolean(), "schedule_children", default=True),
        ]

    def in_projects(self, project_ids):
        return Run.job_id.in_(_jobs_of_projects(project_ids))

    def project_ids(self, dbsession, obj):
        return select(JobTemplate.project_id).join(Job).where(Job.id == obj.job_id)

    def load_options(self):
        # Only the log's id: a list of runs must not drag their logs along.
        return (selectinload(Run.run_log).load_only(RunLog.id, RunLog.run_id),)


class KillRequestResource(ResourceType):
    name = "kill_request"
    model = KillRequest
    list_methods = ("get", "post")
    detail_methods = ("get", "patch")
    filtering = ("id", "run", "run__worker", "run__worker__api_key", "run__job", "execute_dts",
                 "enqueue_dts", "schedule_dts")
    ordering = ("id", "schedule_dts", "enqueue_dts", "execute_dts")
    relations = {"run": ("run", KillRequest.run, "run_id")}

    def fields(self):
        return [
            field(ToOne("run"), "run", required=True, attr="run_id", kind="to_one"),
            field(DateTime(), "schedule_dts", readonly=True),
            field(DateTime(), "enqueue_dts", nullable=True),
            field(DateTime(), "execute_dts", nullable=True),
        ]

    def in_projects(self, project_ids):
        return KillRequest.run_id.in_(
            select(Run.id).where(Run.job_id.in_(_jobs_of_projects(project_ids)))
        )

    def project_ids(self, dbsession, obj):
        return (
            select(JobTemplate.project_id).join(Job).join(Run, Run.job_id == Job.id)
            .where(Run.id == obj.run_id)
        )


class RunLogResource(KillRequestResource):
    name = "run_log"
    model = RunLog
    filtering = ("id", "run", "run__job", "run__worker", "run__worker__api_key")
    ordering = ("id",)
    relations = {"run": ("run", RunLog.run, "run_id")}

    def fields(self):
        return [
            field(ToOne("run"), "run", required=True, attr="run_id", kind="to_one"),
            field(Text(), "content"),
        ]

    def in_projects(self, project_ids):
        return RunLog.run_id.in_(
            select(Run.id).where(Run.job_id.in_(_jobs_of_projects(project_ids)))
        )


RESOURCE_TYPES = {
    rt.name: rt
    for rt in (
        GroupResource(),
        ProjectResource(),
        WorkerPoolResource(),
        WorkerResource(),
        JobTemplateResource(),
        JobResource(),
        RunResource(),
        KillRequestResource(),
        RunLogResource(),
    )
}

# project_id filters a resource to one project (an unseen one gives nothing).
PROJECT_FILTER_TYPES = {"project", "worker_pool", "worker", "job_template", "job", "run",
                        "kill_request", "run_log"}

