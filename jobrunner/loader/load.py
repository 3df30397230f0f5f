"""Loading a set-up file: every section goes through one create-or-update
step, driven by the section's row in a table (its model, natural key, field
converters and relations); jobs add their parents, rules and first runs
once the whole section is in."""
from __future__ import annotations

import dataclasses
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..errors import InvalidFields
from ..jobs import check_job, has_pending_run, jobs_off_project_pools
from ..models import (
    Group,
    Job,
    JobTemplate,
    Project,
    RescheduleExclude,
    User,
    Worker,
    WorkerPool,
    begin_write,
)
from ..scheduling.runs import create_run
from ..security.passwords import check_password, hash_password
from ..values import addresses_text
from . import format as fmt
from .format import LoadError, describe, length

# Fields of the dump that are computed, never loaded.
READ_ONLY = {"id", "script_content", "fail_times", "last_completed_schedule_id"}


@dataclasses.dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: str  # created, updated, scheduled
    fields: tuple = ()

    def __str__(self):
        text = f"{self.action} {self.kind} {self.name}"
        if self.fields:
            text += ": " + ", ".join(self.fields)
        return text


class Entry:
    """One entry of a section, for error messages: ``jobs[2] (Test job 1)``."""

    def __init__(self, section, index, label):
        self.section = section
        self.index = index
        self.label = label

    def __str__(self):
        label = f" ({self.label})" if self.label else ""
        return f"{self.section}[{self.index}]{label}"

    def error(self, message):
        return LoadError(f"{self}: {message}")


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


# --- the load ------------------------------------------------------------------------


class Load:
    def __init__(self, dbsession, zone):
        self.db = dbsession
        self.sections = section_table(zone)
        self.changes = []
        # Jobs of the file by (project id, job title), for their parents.
        self.file_jobs = {}
        self.rerender_templates = []
        self.projects_with_new_pools = []

    def run(self, data):
        if data is None:
            return self.changes
        if not isinstance(data, dict):
            raise LoadError(f"the file must be a mapping of {', '.join(SECTIONS)}")
        unknown = sorted(map(str, set(data) - set(SECTIONS)))
        if unknown:
            raise LoadError(f"unknown section(s): {', '.join(unknown)} "
                            f"(known: {', '.join(SECTIONS)})")
        for section in self.sections:
            items = [self.create_or_update(section, entry, raw)
                     for entry, raw in self.entries(data, section)]
            if section.finish:
                section.finish(self, section, items)
            else:
                for item in items:
                    self.record(section, item)
        self.check_project_pools()
        return self.changes

    # -- the one step of every section

    def create_or_update(self, section, entry, raw):
        values = self.read_entry(section, entry, raw)
        scope = None
        if section.scope:
            field, resolve = section.scope
            scope = resolve(self, entry, field, values.pop(field), None)
        obj = section.find(self, entry, values, scope)
        created = obj is None
        if created:
            for key in section.required_new:
                if key not in values:
                    raise entry.error(f"{key} is required for a new {section.kind}")
        for field, resolve in section.relations.items():
            if field in values:
                values[field] = resolve(self, entry, field, values[field], scope)
        if "notification_addresses" in values:
            values["notification_addresses"] = addresses_text(values["notification_addresses"])
        extras = {name: values.pop(name) for name in section.extras if name in values}
        changed = []
        if created:
            obj = section.model(**section.defaults)
            if section.scope_attr:
                setattr(obj, section.scope_attr, scope)
        self.apply(obj, values, changed)
        if created:
            self.db.add(obj)
        item = Loaded(entry, obj, created, changed, scope, extras)
        if section.after:
            section.after(self, item)
        self.db.flush()
        return item

    def read_entry(self, section, entry, raw):
        """The entry's values, converted; the key fields are required."""
        spec = section.fields
        if section.scalar:
            (key,) = section.key
            try:
                return {key: spec[key](raw)}
            except ValueError as exc:
                raise entry.error(str(exc)) from None
        if not isinstance(raw, dict):
            raise entry.error(f"must be a mapping, not {describe(raw)}")
        unknown = sorted(map(str, set(raw) - set(spec)))
        if unknown:
            read_only = [key for key in unknown if key in READ_ONLY]
            if read_only:
                raise entry.error(f"{', '.join(read_only)}: read-only, may not be loaded")
            raise entry.error(f"unknown key(s): {', '.join(unknown)}"
                              f" (known: {', '.join(spec)})")
        for key in section.key:
            if raw.get(key) is None:
                raise entry.error(f"{key} is required")
        values = {}
        for key, value in raw.items():
            try:
                values[key] = spec[key](value)
            except ValueError as exc:
                raise entry.error(f"{key}: {exc}") from None
        return values

    def entries(self, data, section):
        """(entry, raw) pairs of a section; an object given twice is an error."""
        raw_entries = data.get(section.name)
        if raw_entries is None:
            return []
        if not isinstance(raw_entries, list):
            raise LoadError(f"{section.name}: must be a list, not {describe(raw_entries)}")
        seen = {}
        result = []
        for index, raw in enumerate(raw_entries):
            if isinstance(raw, dict):
                key = tuple(raw.get(field) for field in section.key)
                label = raw.get(section.label)
            else:
                key = (raw,)
                label = raw
            entry = Entry(section.name, index, label if isinstance(label, str) else "")
            if all(isinstance(part, str) for part in key):
                if key in seen:
                    raise entry.error(f"a second entry for the same object as {seen[key]}")
                seen[key] = entry
            result.append((entry, raw))
        return result

    def one(self, entry, field, model, column, value, what):
        obj = self.db.scalar(select(model).where(column == value))
        if obj is None:
            raise entry.error(f"{field}: no {what} {value!r}")
        return obj

    def apply(self, obj, values, changed):
        for name, value in values.items():
            current = getattr(obj, name)
            if isinstance(current, list):  # a many-to-many link: order means nothing
                differs = {id(o) for o in current} != {id(o) for o in value}
            else:
                differs = current != value
            if differs:
                setattr(obj, name, value)
                changed.append(name)

    def record(self, section, item):
        if item.created:
            self.changes.append(Change(section.kind, section.describe(item), "created"))
        elif item.changed:
            self.changes.append(Change(section.kind, section.describe(item), "updated",
                                       tuple(item.changed)))

    # -- what jobs add

    def finish_jobs(self, section, items):
        self.resolve_parents(items)
        self.db.flush()
        for item in items:
            script = item.obj.render_script()
            if item.obj.script_content != script:
                item.obj.script_content = script
                if not item.created:
                    item.changed.append("script_content")
            self.record(section, item)
        # Jobs that the file does not mention follow their template's new body.
        if self.rerender_templates:
            template_ids = [template.id for template in self.rerender_templates]
            for job in self.db.scalars(select(Job).where(Job.job_template_id.in_(template_ids))):
                job.script_content = job.render_script()
        self.db.flush()
        for item in items:
            schedule_dts = item.extras.get("schedule_dts")
            if schedule_dts is not None:
                self.schedule_first_run(section, item, schedule_dts)

    def resolve_parents(self, items):
        """Parents may name jobs further down the file: they are resolved once
        all jobs exist, and the jobs' rules (the chain of parents included)
        are checked before anything is flushed (a cycle of new rows could not
        be flushed at all)."""
        with self.db.no_autoflush:
            for item in items:
                if "parent" not in item.extras:
                    continue
                title = item.extras["parent"]
                parent = None
                if title is not None:
                    parent = (self.file_jobs.get((item.scope.id, title))
                              or find_job(self, item.entry, {"title": title}, item.scope,
                                          field="parent"))
                    if parent is None:
                        raise item.entry.error(f"parent: no job {title!r} in project "
                                               f"{item.scope.title!r}")
                if item.obj.parent is not parent:
                    item.obj.parent = parent
                    item.changed.append("parent")
            for item in items:
                try:
                    check_job(self.db, item.obj, item.scope)
                except InvalidFields as exc:
                    raise item.entry.error("; ".join(exc.errors.values())) from None

    def schedule_first_run(self, section, item, schedule_dts):
        """A first recurring run, unless the job has a run still pending."""
        if not has_pending_run(self.db, item.obj.id):
            create_run(self.db, item.obj, schedule_dts, is_manual=False)
            self.changes.append(Change(section.kind, section.describe(item), "scheduled",
                                       (schedule_dts.isoformat(),)))

    def check_project_pools(self):
        """A project that lost a pool may not keep jobs on it."""
        for item in self.projects_with_new_pools:
            stranded = jobs_off_project_pools(self.db, item.obj)
            if stranded:
                job = stranded[0]
                raise item.entry.error(f"worker_pools: job {job.title!r} still runs on pool "
                                       f"{job.worker_pool.title!r}, which is not in the list")


def time_zone(name):
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise LoadError(f"unknown time zone {name!r}") from None


def load(dbsession, data, time_zone_name="UTC"):
    """Apply the set-up ``data`` (parsed YAML) in one savepoint and return the
    list of Changes. Raises LoadError, having changed nothing, on any invalid
    entry. Naive datetimes are local time in ``time_zone_name``."""
    zone = time_zone(time_zone_name)
    begin_write(dbsession)
    try:
        with dbsession.begin_nested():
            return Load(dbsession, zone).run(data)
    except Exception:
        # Rows read inside the rolled-back savepoint may be gone; the session
        # flushed everything before it, so forgetting all loaded state is safe.
        dbsession.expire_all()
        raise
