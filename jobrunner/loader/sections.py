"""The sections of a set-up file as one table: per section its model, its
natural key, the converters of its fields, the relations it names by title
(or name, or api_key) and the hooks for what is special about it (a user's
password, a job's parent and excludes). The loader runs one create-or-update
step over every row of the table."""
from __future__ import annotations

import dataclasses

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..models import Group, Job, JobTemplate, Project, RescheduleExclude, User, Worker, WorkerPool
from ..security.passwords import check_password, hash_password
from . import format as fmt
from .format import length


@dataclasses.dataclass
class Loaded:
    """An entry once stored: its object and what changed."""

    entry: Entry
    obj: object
    created: bool
    changed: list
    scope: object = None  # the project of a template or a job
    extras: dict = dataclasses.field(default_factory=dict)


# --- relations: names in the file to objects ---------------------------------------


def by(model, column, what):
    """Objects found by one name or a list of names."""

    def resolve(load, entry, field, value, scope):
        if isinstance(value, list):
            return [load.one(entry, field, model, column, name, what) for name in value]
        return load.one(entry, field, model, column, value, what)

    return resolve


def template_of_project(load, entry, field, title, project):
    template = load.db.scalar(
        select(JobTemplate).where(JobTemplate.project_id == project.id, JobTemplate.title == title)
    )
    if template is None:
        raise entry.error(f"{field}: no template {title!r} in project {project.title!r}")
    return template


def find_by_key(section):
    def find(load, entry, values, scope):
        columns = [getattr(section.model, name) == values[name] for name in section.key]
        return load.db.scalar(select(section.model).where(*columns))

    return find


def find_template(load, entry, values, project):
    return load.db.scalar(select(JobTemplate).where(
        JobTemplate.project_id == project.id, JobTemplate.title == values["title"]))


def find_job(load, entry, values, project, field="title"):
    """The job of this title among the project's templates, or None."""
    title = values["title"]
    jobs = load.db.scalars(
        select(Job).join(Job.job_template)
        .where(JobTemplate.project_id == project.id, Job.title == title)
        .options(selectinload(Job.job_template))
    ).all()
    if len(jobs) > 1:
        templates = ", ".join(sorted(repr(job.job_template.title) for job in jobs))
        raise entry.error(f"{field}: project {project.title!r} has jobs titled {title!r} "
                          f"in several templates ({templates}); rename one of them")
    return jobs[0] if jobs else None


# --- the sections ------------------------------------------------------------------


@dataclasses.dataclass
class Section:
    name: str  # in the file
    kind: str  # in the list of changes
    model: type
    key: tuple  # the natural key's fields, required in every entry
    fields: dict  # field -> converter
    describe: object  # Loaded -> the object's name in the list of changes
    relations: dict = dataclasses.field(default_factory=dict)  # field -> resolver
    defaults: dict = dataclasses.field(default_factory=dict)  # of a new object
    required_new: tuple = ()
    scope: tuple = None  # (field, resolver): what the key is unique within
    scope_attr: str = None  # the model's attribute that holds the scope
    extras: tuple = ()  # fields the section's hooks store themselves
    label: str = None  # the field that names an entry in errors
    scalar: bool = False  # entries are the key itself, not mappings
    find: object = None
    after: object = None  # (load, Loaded) before the flush
    finish: object = None  # (load, section, [Loaded]) once the section is in

    def __post_init__(self):
        self.find = self.find or find_by_key(self)
        self.label = self.label or self.key[-1]


def _title(item):
    return repr(item.obj.title)


def _in_project(item):
    return f"{item.obj.title!r} (project {item.scope.title!r})"


def _set_password(load, item):
    password = item.extras.get("password")
    user = item.obj
    if password is not None and not check_password(user.password_hash, password):
        user.password_hash = hash_password(password)
        item.changed.append("password")


def _note_pools(load, item):
    if "worker_pools" in item.changed:
        load.projects_with_new_pools.append(item)


def _note_body(load, item):
    if "body" in item.changed:
        load.rerender_templates.append(item.obj)


def _set_excludes(load, item):
    job = item.obj
    excludes = item.extras.get("reschedule_excludes")
    if excludes is not None:
        current = [(e.start_time, e.end_time, e.note) for e in job.reschedule_excludes]
        if current != excludes:
            job.reschedule_excludes = [
                RescheduleExclude(start_time=start, end_time=end, note=note)
                for start, end, note in excludes
            ]
            item.changed.append("reschedule_excludes")
    load.file_jobs[(item.scope.id, job.title)] = job


def section_table(zone):
    """The sections in the order they load (later ones name earlier ones)."""
    groups = by(Group, Group.name, "group")
    project = by(Project, Project.title, "project")
    on = {"enqueue_is_enabled": True}
    return (
        Section("groups", "group", Group, ("name",),
                {"name": fmt.text(length(Group, "name"), required=True)},
                lambda item: repr(item.obj.name), scalar=True),
        Section("users", "user", User, ("username",), {
            "username": fmt.text(length(User, "username"), required=True),
            "password": fmt.text(required=True),
            "email": fmt.text(length(User, "email")),
            "is_admin": fmt.boolean,
            "is_active": fmt.boolean,
            "groups": fmt.string_list(),
        }, lambda item: repr(item.obj.username), relations={"groups": groups},
            defaults={"password_hash": "", "email": "", "is_admin": False, "is_active": True},
            extras=("password",), after=_set_password),
        Section("workers", "worker", Worker, ("api_key",), {
            "title": fmt.text(length(Worker, "title"), required=True),
            "description": fmt.text(),
            "api_key": fmt.text(length(Worker, "api_key"), required=True),
            "secret": fmt.text(length(Worker, "secret"), required=True),
            "enqueue_is_enabled": fmt.boolean,
            "concurrent_jobs": fmt.integer(1),
            "ping_response_dts": fmt.datetime_in(zone),
            "worker_version": fmt.text(length(Worker, "worker_version")),
        }, _title, label="title", required_new=("title", "secret"),
            defaults={"description": "", "concurrent_jobs": 4, "worker_version": "", **on}),
        Section("worker_pools", "worker pool", WorkerPool, ("title",), {
            "title": fmt.text(length(WorkerPool, "title"), required=True),
            "description": fmt.text(),
            "workers": fmt.string_list(),
            "notification_addresses": fmt.addresses,
            "enqueue_is_enabled": fmt.boolean,
        }, _title, relations={"workers": by(Worker, Worker.api_key, "worker with api_key")},
            defaults={"description": "", "notification_addresses": "", **on}),
        Section("projects", "project", Project, ("title",), {
            "title": fmt.text(length(Project, "title"), required=True),
            "description": fmt.text(),
            "groups": fmt.string_list(),
            "auth_groups": fmt.string_list(),
            "worker_pools": fmt.string_list(),
            "notification_addresses": fmt.addresses,
            "enqueue_is_enabled": fmt.boolean,
        }, _title, relations={"groups": groups, "auth_groups": groups,
                              "worker_pools": by(WorkerPool, WorkerPool.title, "worker pool")},
            defaults={"description": "", "notification_addresses": "", **on}, after=_note_pools),
        Section("job_templates", "job template", JobTemplate, ("project", "title"), {
            "project": fmt.text(required=True),
            "title": fmt.text(length(JobTemplate, "title"), required=True),
            "description": fmt.text(),
            "body": fmt.text(),
            "notification_addresses": fmt.addresses,
            "enqueue_is_enabled": fmt.boolean,
        }, _in_project, scope=("project", project), scope_attr="project", find=find_template,
            defaults={"description": "", "body": "", "notification_addresses": "", **on},
            after=_note_body),
        Section("jobs", "job", Job, ("project", "title"), {
            "project": fmt.text(required=True),
            "job_template": fmt.text(required=True),
            "title": fmt.text(length(Job, "title"), required=True),
            "description": fmt.text(),
            "worker_pool": fmt.text(required=True),
            "parent": fmt.optional_text,
            "script_content_partial": fmt.text(),
            "enqueue_is_enabled": fmt.boolean,
            "reschedule_interval": fmt.integer(1, nullable=True),
            "reschedule_interval_type": fmt.interval_type,
            "reschedule_excludes": fmt.excludes(length(RescheduleExclude, "note")),
            "notification_addresses": fmt.addresses,
            "run_on_all_workers": fmt.boolean,
            "schedule_children_on_error": fmt.boolean,
            "disable_enqueue_after_fails": fmt.integer(0, nullable=True),
            "schedule_dts": fmt.datetime_in(zone),
        }, _in_project, scope=("project", project), find=find_job,
            relations={"job_template": template_of_project,
                       "worker_pool": by(WorkerPool, WorkerPool.title, "worker pool")},
            required_new=("job_template", "worker_pool"),
            defaults={"description": "", "script_content_partial": "", "script_content": "",
                      "notification_addresses": "", "run_on_all_workers": False,
                      "schedule_children_on_error": False, "fail_times": 0, **on},
            extras=("parent", "reschedule_excludes", "schedule_dts"),
            after=_set_excludes, finish=lambda load, section, items: load.finish_jobs(section, items)),
    )


SECTIONS = tuple(section.name for section in section_table(None))
