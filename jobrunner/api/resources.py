"""The REST resources: each one's fields, filters, orderings and relations,
and which reach (jobrunner.security.reach) decides who sees its objects."""
import colander
from sqlalchemy.orm import joinedload, selectinload

from ..jobs import CONCURRENCY_POLICIES, INTERVAL_TYPES, MISFIRE_POLICIES
from ..models import (
    AuditEvent,
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
from ..security.reach import (
    AUDIT_EVENT,
    GROUP,
    JOB,
    JOB_TEMPLATE,
    KILL_REQUEST,
    PROJECT,
    RUN,
    RUN_LOG,
    WORKER,
    WORKER_POOL,
    GroupReach,
    Reach,
    SharedReach,
    AuditReach,
    WorkerReach,
)
from .fields import (
    AddressList,
    Boolean,
    Choice,
    DateTime,
    ExcludeList,
    Integer,
    IntervalTypeChoice,
    JSONValue,
    Number,
    Text,
    ToMany,
    ToOne,
    URLList,
    field,
)


LOOKUPS = ("exact", "isnull", "gt", "gte", "lt", "lte", "in")


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
    # how the caller reaches objects of this kind (jobrunner.security.reach)
    reach = None

    def __init__(self):
        self.schema = colander.SchemaNode(colander.Mapping(unknown="raise"), *self.fields())

    def fields(self):
        raise NotImplementedError

    def load_options(self):
        return ()

    def item_options(self):
        """Loader options of one object of the kind, as an item's URL finds it."""
        return ()

    # --- output ----------------------------------------------------------
    def extra(self, obj):
        return {}


class GroupResource(ResourceType):
    name = "group"
    model = Group
    reach = GroupReach(GROUP)
    filtering = ("id", "name")
    ordering = ("id", "name")

    def fields(self):
        return [field(Text(255, single_line=True), "name", required=True, unique=True, help_text="Group name.")]


class ProjectResource(ResourceType):
    name = "project"
    model = Project
    reach = Reach(PROJECT)
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
            field(URLList(), "webhook_urls", kind="addresses",
                  help_text="URLs that get a POST for each event that sends mail."),
        ]

    def load_options(self):
        return (selectinload(Project.worker_pools), selectinload(Project.auth_groups))


class WorkerPoolResource(ResourceType):
    name = "worker_pool"
    model = WorkerPool
    reach = SharedReach(WORKER_POOL)
    filtering = ("id", "title")
    ordering = ("id", "title")

    def fields(self):
        return [
            field(Text(255, single_line=True), "title", required=True, unique=True),
            field(Text(), "description"),
            field(Boolean(), "enqueue_is_enabled", default=True),
            field(ToMany("worker"), "workers", kind="to_many"),
            field(URLList(), "webhook_urls", kind="addresses",
                  help_text="URLs that get a POST for each event that sends mail."),
        ]

    def load_options(self):
        return (selectinload(WorkerPool.workers).load_only(Worker.id),)


class WorkerResource(ResourceType):
    name = "worker"
    model = Worker
    reach = WorkerReach(WORKER)
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
            field(Number(), "ping_interval", readonly=True, kind="setting",
                  help_text="Seconds between the pings the server expects "
                            "(jobrunner.worker.ping_interval); a worker pings at least this often."),
            field(Number(), "unresponsive_limit", readonly=True, kind="setting",
                  help_text="Seconds without a ping after which the server calls a worker "
                            "unresponsive and fails its started runs."),
        ]


class JobTemplateResource(ResourceType):
    name = "job_template"
    model = JobTemplate
    reach = Reach(JOB_TEMPLATE)
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
            field(URLList(), "webhook_urls", kind="addresses",
                  help_text="URLs that get a POST for each event that sends mail."),
        ]


class JobResource(ResourceType):
    name = "job"
    model = Job
    reach = Reach(JOB)
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
            field(IntervalTypeChoice(INTERVAL_TYPES), "reschedule_interval_type", nullable=True,
                  help_text="MINUTE, HOUR, DAY, WEEK or MONTH, in either case; stored upper-case."),
            field(ExcludeList(), "reschedule_excludes", kind="excludes",
                  help_text="Local times of day in which no run is scheduled."),
            field(Boolean(), "run_on_all_workers", default=False),
            field(Boolean(), "schedule_children_on_error", default=False),
            field(AddressList(), "notification_addresses", kind="addresses"),
            field(URLList(), "webhook_urls", kind="addresses",
                  help_text="URLs that get a POST for each event that sends mail."),
            field(Boolean(), "webhook_on_success", default=False,
                  help_text="Also POST to the webhooks when a run succeeds."),
            field(Integer(), "disable_enqueue_after_fails", nullable=True),
            field(Integer(), "fail_times", readonly=True, default=0),
            field(Integer(), "last_completed_schedule_id", readonly=True, nullable=True),
            field(Text(), "cron_expression", nullable=True,
                  help_text="A 5-field cron expression or @hourly, @daily, @weekly, @monthly, "
                            "@yearly; a job has this or reschedule_interval, not both."),
            field(Text(255), "timezone", nullable=True,
                  help_text="IANA time zone of the schedule and its excludes; null: the "
                            "server's default zone."),
            field(Choice(CONCURRENCY_POLICIES), "concurrency_policy", default="forbid",
                  help_text="forbid, allow or replace: what happens when runs of two "
                            "schedules would overlap."),
            field(Integer(), "timeout", nullable=True,
                  help_text="Seconds after its start at which a run is killed; null: none."),
            field(Integer(), "retries", default=0,
                  help_text="How often a failed run is tried again (0 to 10)."),
            field(Integer(), "retry_delay", default=60,
                  help_text="Seconds before the first retry, doubled for each further one."),
            field(Choice(MISFIRE_POLICIES), "misfire_policy", default="skip",
                  help_text="skip or run_once: what a return does about times already past."),
            field(DateTime(), "first_run_at", nullable=True, kind="write_only",
                  help_text="Write-only: when the job's first run is due (else the next "
                            "cron time, or now for an interval)."),
        ]

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
    reach = Reach(RUN)
    list_methods = ("get", "post")
    detail_methods = ("get", "patch")
    filtering = (
        "id", "job", "job__title", "job__job_template", "job__job_template__project",
        "job__worker_pool", "worker", "worker__api_key", "worker__title", "schedule_id",
        "schedule_dts", "enqueue_dts", "start_dts", "return_dts", "return_success",
        "is_manual", "schedule_children", "pid", "attempt", "timed_out",
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
            field(Integer(), "attempt", readonly=True, default=1,
                  help_text="1 for a first try, 2 for the first retry, and so on."),
            field(Boolean(), "timed_out", default=False,
                  help_text="Killed for its job's timeout; set by the run's worker with its "
                            "return only."),
            field(Text(), "log_content", kind="write_only",
                  help_text="Write-only: the run's whole final log, sent by its worker with "
                            "the return (return_dts) only; it creates or replaces the run's log."),
        ]

    def load_options(self):
        # Only the log's id: a list of runs must not drag their logs along.
        return (selectinload(Run.run_log).load_only(RunLog.id, RunLog.run_id),)

    def item_options(self):
        # One statement for the run and its log's id (never the log itself).
        return (joinedload(Run.run_log).load_only(RunLog.id),)


class KillRequestResource(ResourceType):
    name = "kill_request"
    model = KillRequest
    reach = Reach(KILL_REQUEST)
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


class RunLogResource(ResourceType):
    name = "run_log"
    model = RunLog
    reach = Reach(RUN_LOG)
    list_methods = ("get", "post")
    detail_methods = ("get", "patch")
    filtering = ("id", "run", "run__job", "run__worker", "run__worker__api_key")
    ordering = ("id",)
    relations = {"run": ("run", RunLog.run, "run_id")}

    def fields(self):
        return [
            field(ToOne("run"), "run", required=True, attr="run_id", kind="to_one"),
            field(Text(), "content"),
        ]


class AuditEventResource(ResourceType):
    """The audit log, read-only: admins see every event, project admins the
    events of their projects' objects, nobody else any."""

    name = "audit_event"
    model = AuditEvent
    reach = AuditReach(AUDIT_EVENT)
    filtering = ("id", "dts", "actor", "action", "object_type", "object_id")
    ordering = ("id", "dts")

    def fields(self):
        return [
            field(DateTime(), "dts", readonly=True, help_text="When it happened."),
            field(Text(255), "actor", readonly=True,
                  help_text="user:<username>, or cli:<os user> for jobrunner-admin."),
            field(Text(32), "action", readonly=True,
                  help_text="create, update, delete, schedule, kill, login or login_failed."),
            field(Text(64), "object_type", readonly=True,
                  help_text="The resource name of the object (user, job, run, ...)."),
            field(Integer(), "object_id", readonly=True, nullable=True),
            field(Integer(), "project_id", readonly=True, nullable=True,
                  help_text="The object's project when the event happened, if it has one."),
            field(JSONValue(), "changes", readonly=True,
                  help_text="{field: [old, new]}; passwords and secrets only as [redacted]."),
        ]


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
        AuditEventResource(),
    )
}

# project_id filters a resource to one project (an unseen one gives nothing).
PROJECT_FILTER_TYPES = {"project", "worker_pool", "worker", "job_template", "job", "run",
                        "kill_request", "run_log"}

