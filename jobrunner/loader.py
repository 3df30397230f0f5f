"""Declarative set-up (SPEC section 9): load and dump groups, users, workers,
pools, projects, templates and jobs in one YAML format.

Every object is found by its natural key: group name, username, worker
api_key, pool title, project title, template (project, title) and job
(project, title). An entry creates the object or updates it; a key left out of
an entry leaves that field of an existing object as it is (and takes the
model's default on a new one), a key given replaces the field, lists included.
Objects that the file does not mention are left alone: loading never deletes.
So loading the same file twice changes nothing, and ``dump`` → ``load`` →
``dump`` is stable.

Everything happens in one savepoint: an invalid file changes nothing, and the
error names the offending entry, e.g.
``jobs[2] (Test job 1): worker_pool 'Pool 9' is not one of the project's pools``.

Users' passwords are never dumped; a user entry without ``password`` keeps the
password it has. Worker runtime state (last ping, version) may be loaded but is
not dumped, as loading an old dump would otherwise make a live worker look
unresponsive.
"""
from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .models import (
    Group,
    IntervalType,
    Job,
    JobTemplate,
    Project,
    RescheduleExclude,
    Run,
    User,
    Worker,
    WorkerPool,
    begin_write,
)
from .scheduling.runs import create_run
from .scheduling.webhooks import parse_urls
from .security.passwords import check_password, hash_password

SECTIONS = ("groups", "users", "workers", "worker_pools", "projects", "job_templates", "jobs")


class LoadError(Exception):
    """The file is invalid; nothing was changed."""


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


# --- YAML ---------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads an unquoted ``22:00`` as the base-60 number 1320; a
    reschedule exclude means a time of day, so base-60 numbers stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"""^(?:[-+]?0b[0-1_]+
                   |[-+]?0[0-7_]+
                   |[-+]?(?:0|[1-9][0-9_]*)
                   |[-+]?0x[0-9a-fA-F_]+)$""", re.X),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                   |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper, value):
    # Scripts and template bodies read best as literal blocks.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_list(dumper, value):
    flow = all(isinstance(item, (str, int, float, bool)) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)


def parse_yaml(text):
    """The data of a set-up file; raises LoadError on a YAML syntax error."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise LoadError(f"not valid YAML: {exc}") from None


def to_yaml(data):
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


# --- value converters ---------------------------------------------------------
# Each takes the raw YAML value and returns the stored value, or raises
# ValueError with a message that the entry's name is put in front of.


def _describe(value):
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


def _text(max_length=None, required=False):
    def convert(value):
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {_describe(value)} (quote it)")
        if required and not value.strip():
            raise ValueError("must not be empty")
        if max_length is not None and len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters long")
        return value

    return convert


def _boolean(value):
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_describe(value)}")
    return value


def _integer(minimum, nullable=False):
    def convert(value):
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"must be an integer of at least {minimum}"
                             f"{' or null' if nullable else ''}, not {_describe(value)}")
        return value

    return convert


def _interval_type(value):
    if value is None:
        return None
    names = [t.value for t in IntervalType]
    if value not in names:
        raise ValueError(f"must be one of {', '.join(names)} or null, not {_describe(value)}")
    return IntervalType(value)


def _string_list(item_length=None):
    def convert(value):
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError(f"must be a list, not {_describe(value)}")
        items = []
        for index, item in enumerate(value):
            try:
                item = _text(item_length, required=True)(item)
            except ValueError as exc:
                raise ValueError(f"[{index}] {exc}") from None
            # A name given twice means it once (a link table row exists once).
            if item not in items:
                items.append(item)
        return items

    return convert


def _addresses(value):
    addresses = _string_list()(value)
    for address in addresses:
        if any(char.isspace() for char in address.strip()):
            raise ValueError(f"{address!r} is not one address")
    return [address.strip() for address in addresses]


def _webhook_urls(value):
    if value is not None and not isinstance(value, list):
        raise ValueError(f"must be a list, not {_describe(value)}")
    return parse_urls(value or [])


def _time_of_day(value):
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"must be a time of day such as \"22:00\", not {_describe(value)}")


def _excludes(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"must be a list, not {_describe(value)}")
    excludes = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValueError(f"[{index}] must be a mapping of start_time, end_time, note")
        unknown = sorted(map(str, set(item) - {"start_time", "end_time", "note"}))
        if unknown:
            raise ValueError(f"[{index}] unknown key(s): {', '.join(unknown)}")
        converted = []
        for key, convert in (("start_time", _time_of_day), ("end_time", _time_of_day),
                             ("note", _text(_length(RescheduleExclude, "note")))):
            try:
                converted.append(convert(item.get(key, "")))
            except ValueError as exc:
                raise ValueError(f"[{index}] {key}: {exc}") from None
        start, end, note = converted
        excludes.append((start, end, note))
    return excludes


def _datetime(zone):
    """Aware UTC; a datetime without an offset is local time in ``zone``."""

    def convert(value, nullable=False):
        if value is None and nullable:
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"must be an ISO 8601 datetime, not {value!r}") from None
        elif isinstance(value, date) and not isinstance(value, datetime):
            value = datetime.combine(value, time())
        if not isinstance(value, datetime):
            raise ValueError(f"must be a datetime, not {_describe(value)}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        return value.astimezone(timezone.utc)

    return convert


def _length(model, column):
    return getattr(model.__table__.c[column].type, "length", None)


# --- the loader ---------------------------------------------------------------


class _Entry:
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


READ_ONLY = {"id", "script_content", "fail_times", "last_completed_schedule_id"}
_NOT_GIVEN = object()


@dataclasses.dataclass
class _LoadedJob:
    entry: _Entry
    project: Project
    job: Job
    created: bool
    changed: list
    parent: object  # a title, None (no parent) or _NOT_GIVEN (leave it)
    schedule_dts: datetime | None

    @property
    def name(self):
        return f"{self.job.title!r} (project {self.project.title!r})"


class _Load:
    def __init__(self, dbsession, zone):
        self.db = dbsession
        self.to_datetime = _datetime(zone)
        self.changes = []
        # Jobs of the file by (project id, job title), for their parents.
        self.file_jobs = {}
        self.rerender_templates = []

    # -- helpers

    def read_entry(self, entry, raw, spec, required=()):
        if not isinstance(raw, dict):
            raise entry.error(f"must be a mapping, not {_describe(raw)}")
        unknown = sorted(map(str, set(raw) - set(spec)))
        if unknown:
            read_only = [key for key in unknown if key in READ_ONLY]
            if read_only:
                raise entry.error(f"{', '.join(read_only)}: read-only, may not be loaded")
            raise entry.error(f"unknown key(s): {', '.join(unknown)}"
                              f" (known: {', '.join(spec)})")
        for key in required:
            if raw.get(key) is None:
                raise entry.error(f"{key} is required")
        values = {}
        for key, value in raw.items():
            try:
                values[key] = spec[key](value)
            except ValueError as exc:
                raise entry.error(f"{key}: {exc}") from None
        return values

    def entries(self, data, section, key_fields, label_field=None):
        """(entry, raw) pairs of a section; an object given twice is an error."""
        raw_entries = data.get(section)
        if raw_entries is None:
            return []
        if not isinstance(raw_entries, list):
            raise LoadError(f"{section}: must be a list, not {_describe(raw_entries)}")
        label_field = label_field or key_fields[-1]
        seen = {}
        result = []
        for index, raw in enumerate(raw_entries):
            if isinstance(raw, dict):
                key = tuple(raw.get(field) for field in key_fields)
                label = raw.get(label_field)
            else:
                key = (raw,)
                label = raw
            entry = _Entry(section, index, label if isinstance(label, str) else "")
            if all(isinstance(part, str) for part in key):
                if key in seen:
                    raise entry.error(f"a second entry for the same object as {seen[key]}")
                seen[key] = entry
            result.append((entry, raw))
        return result

    def one(self, entry, field, model, column, value, what=None):
        obj = self.db.scalar(select(model).where(column == value))
        if obj is None:
            raise entry.error(f"{field}: no {what or model.__tablename__} {value!r}")
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

    def record(self, kind, name, created, changed):
        if created:
            self.changes.append(Change(kind, name, "created"))
        elif changed:
            self.changes.append(Change(kind, name, "updated", tuple(changed)))

    def set_addresses(self, values):
        for name in ("notification_addresses", "webhook_urls"):
            if name in values:
                values[name] = "\n".join(values[name])

    def groups(self, entry, names, field):
        return [self.one(entry, field, Group, Group.name, name, "group") for name in names]

    # -- sections

    def load_groups(self, data):
        for entry, name in self.entries(data, "groups", ("name",)):
            try:
                name = _text(_length(Group, "name"), required=True)(name)
            except ValueError as exc:
                raise entry.error(str(exc)) from None
            if self.db.scalar(select(Group).where(Group.name == name)) is None:
                self.db.add(Group(name=name))
                self.db.flush()
                self.record("group", repr(name), True, [])

    def load_users(self, data):
        spec = {
            "username": _text(_length(User, "username"), required=True),
            "password": _text(required=True),
            "email": _text(_length(User, "email")),
            "is_admin": _boolean,
            "is_active": _boolean,
            "groups": _string_list(),
        }
        for entry, raw in self.entries(data, "users", ("username",)):
            values = self.read_entry(entry, raw, spec, required=("username",))
            if "groups" in values:
                values["groups"] = self.groups(entry, values["groups"], "groups")
            password = values.pop("password", None)
            user = self.db.scalar(select(User).where(User.username == values["username"]))
            created = user is None
            if created:
                user = User(username=values["username"], password_hash="", email="",
                            is_admin=False, is_active=True)
                self.db.add(user)
            changed = []
            self.apply(user, values, changed)
            if password is not None and not check_password(user.password_hash, password):
                user.password_hash = hash_password(password)
                changed.append("password")
            self.db.flush()
            self.record("user", repr(user.username), created, changed)

    def load_workers(self, data):
        spec = {
            "title": _text(_length(Worker, "title"), required=True),
            "description": _text(),
            "api_key": _text(_length(Worker, "api_key"), required=True),
            "secret": _text(_length(Worker, "secret"), required=True),
            "enqueue_is_enabled": _boolean,
            "concurrent_jobs": _integer(1),
            "ping_response_dts": lambda value: self.to_datetime(value, nullable=True),
            "worker_version": _text(_length(Worker, "worker_version")),
        }
        for entry, raw in self.entries(data, "workers", ("api_key",), "title"):
            values = self.read_entry(entry, raw, spec, required=("api_key",))
            worker = self.db.scalar(select(Worker).where(Worker.api_key == values["api_key"]))
            created = worker is None
            if created:
                for key in ("title", "secret"):
                    if key not in values:
                        raise entry.error(f"{key} is required for a new worker")
                worker = Worker(api_key=values["api_key"], title=values["title"],
                                secret=values["secret"], description="",
                                enqueue_is_enabled=True, concurrent_jobs=4, worker_version="")
                self.db.add(worker)
            changed = []
            self.apply(worker, values, changed)
            self.db.flush()
            self.record("worker", repr(worker.title), created, changed)

    def load_pools(self, data):
        spec = {
            "title": _text(_length(WorkerPool, "title"), required=True),
            "description": _text(),
            "workers": _string_list(),
            "notification_addresses": _addresses,
            "webhook_urls": _webhook_urls,
            "enqueue_is_enabled": _boolean,
        }
        for entry, raw in self.entries(data, "worker_pools", ("title",)):
            values = self.read_entry(entry, raw, spec, required=("title",))
            if "workers" in values:
                values["workers"] = [
                    self.one(entry, "workers", Worker, Worker.api_key, key, "worker with api_key")
                    for key in values["workers"]
                ]
            self.set_addresses(values)
            pool = self.db.scalar(select(WorkerPool).where(WorkerPool.title == values["title"]))
            created = pool is None
            if created:
                pool = WorkerPool(title=values["title"], description="", notification_addresses="",
                                  enqueue_is_enabled=True)
                self.db.add(pool)
            changed = []
            self.apply(pool, values, changed)
            self.db.flush()
            self.record("worker pool", repr(pool.title), created, changed)

    def load_projects(self, data):
        spec = {
            "title": _text(_length(Project, "title"), required=True),
            "description": _text(),
            "groups": _string_list(),
            "auth_groups": _string_list(),
            "worker_pools": _string_list(),
            "notification_addresses": _addresses,
            "webhook_urls": _webhook_urls,
            "enqueue_is_enabled": _boolean,
        }
        self.project_entries = {}
        for entry, raw in self.entries(data, "projects", ("title",)):
            values = self.read_entry(entry, raw, spec, required=("title",))
            for field in ("groups", "auth_groups"):
                if field in values:
                    values[field] = self.groups(entry, values[field], field)
            if "worker_pools" in values:
                values["worker_pools"] = [
                    self.one(entry, "worker_pools", WorkerPool, WorkerPool.title, title,
                             "worker pool")
                    for title in values["worker_pools"]
                ]
            self.set_addresses(values)
            project = self.db.scalar(select(Project).where(Project.title == values["title"]))
            created = project is None
            if created:
                project = Project(title=values["title"], description="",
                                  notification_addresses="", enqueue_is_enabled=True)
                self.db.add(project)
            changed = []
            self.apply(project, values, changed)
            self.db.flush()
            if "worker_pools" in changed:
                self.project_entries[project.id] = entry
            self.record("project", repr(project.title), created, changed)

    def project(self, entry, title):
        return self.one(entry, "project", Project, Project.title, title, "project")

    def template(self, entry, field, project, title):
        template = self.db.scalar(
            select(JobTemplate).where(JobTemplate.project_id == project.id,
                                      JobTemplate.title == title)
        )
        if template is None:
            raise entry.error(f"{field}: no template {title!r} in project {project.title!r}")
        return template

    def load_templates(self, data):
        spec = {
            "project": _text(required=True),
            "title": _text(_length(JobTemplate, "title"), required=True),
            "description": _text(),
            "body": _text(),
            "notification_addresses": _addresses,
            "webhook_urls": _webhook_urls,
            "enqueue_is_enabled": _boolean,
        }
        for entry, raw in self.entries(data, "job_templates", ("project", "title")):
            values = self.read_entry(entry, raw, spec, required=("project", "title"))
            project = self.project(entry, values.pop("project"))
            self.set_addresses(values)
            template = self.db.scalar(
                select(JobTemplate).where(JobTemplate.project_id == project.id,
                                          JobTemplate.title == values["title"])
            )
            created = template is None
            if created:
                template = JobTemplate(project=project, title=values["title"], description="",
                                       body="", notification_addresses="",
                                       enqueue_is_enabled=True)
                self.db.add(template)
            changed = []
            self.apply(template, values, changed)
            self.db.flush()
            if "body" in changed:
                self.rerender_templates.append(template)
            self.record("job template", f"{template.title!r} (project {project.title!r})",
                        created, changed)

    def find_job(self, entry, field, project, title):
        """The job of this title among the project's templates, or None."""
        jobs = self.db.scalars(
            select(Job).join(Job.job_template)
            .where(JobTemplate.project_id == project.id, Job.title == title)
            .options(selectinload(Job.job_template))
        ).all()
        if len(jobs) > 1:
            templates = ", ".join(sorted(repr(job.job_template.title) for job in jobs))
            raise entry.error(f"{field}: project {project.title!r} has jobs titled {title!r} "
                              f"in several templates ({templates}); rename one of them")
        return jobs[0] if jobs else None

    def job_spec(self):
        return {
            "project": _text(required=True),
            "job_template": _text(required=True),
            "title": _text(_length(Job, "title"), required=True),
            "description": _text(),
            "worker_pool": _text(required=True),
            "parent": lambda value: None if value is None else _text(required=True)(value),
            "script_content_partial": _text(),
            "enqueue_is_enabled": _boolean,
            "reschedule_interval": _integer(1, nullable=True),
            "reschedule_interval_type": _interval_type,
            "reschedule_excludes": _excludes,
            "notification_addresses": _addresses,
            "webhook_urls": _webhook_urls,
            "run_on_all_workers": _boolean,
            "schedule_children_on_error": _boolean,
            "webhook_on_success": _boolean,
            "disable_enqueue_after_fails": _integer(0, nullable=True),
            "schedule_dts": lambda value: self.to_datetime(value, nullable=True),
        }

    def load_jobs(self, data):
        spec = self.job_spec()
        loaded = [self.load_job(entry, raw, spec)
                  for entry, raw in self.entries(data, "jobs", ("project", "title"))]
        self.resolve_parents(loaded)
        self.db.flush()
        for item in loaded:
            script = item.job.render_script()
            if item.job.script_content != script:
                item.job.script_content = script
                if not item.created:
                    item.changed.append("script_content")
            self.record("job", item.name, item.created, item.changed)
        # Jobs that the file does not mention follow their template's new body.
        if self.rerender_templates:
            template_ids = [template.id for template in self.rerender_templates]
            for job in self.db.scalars(select(Job).where(Job.job_template_id.in_(template_ids))):
                job.script_content = job.render_script()
        self.db.flush()
        for item in loaded:
            if item.schedule_dts is not None:
                self.schedule_first_run(item)

    def load_job(self, entry, raw, spec):
        """Creates or updates one job, all but its parent."""
        values = self.read_entry(entry, raw, spec, required=("project", "title"))
        project = self.project(entry, values.pop("project"))
        job = self.find_job(entry, "title", project, values["title"])
        created = job is None
        if created:
            for key in ("job_template", "worker_pool"):
                if key not in values:
                    raise entry.error(f"{key} is required for a new job")
        if "job_template" in values:
            template = self.template(entry, "job_template", project, values.pop("job_template"))
        else:
            template = job.job_template
        if "worker_pool" in values:
            title = values.pop("worker_pool")
            pool = self.one(entry, "worker_pool", WorkerPool, WorkerPool.title, title,
                            "worker pool")
            if pool not in project.worker_pools:
                raise entry.error(f"worker_pool {title!r} is not one of the project's pools")
        else:
            pool = job.worker_pool
        parent = values.pop("parent", _NOT_GIVEN)
        excludes = values.pop("reschedule_excludes", None)
        schedule_dts = values.pop("schedule_dts", None)
        self.set_addresses(values)
        changed = []
        if created:
            job = Job(title=values["title"], job_template=template, worker_pool=pool,
                      description="", script_content_partial="", script_content="",
                      enqueue_is_enabled=True, notification_addresses="",
                      run_on_all_workers=False, schedule_children_on_error=False, fail_times=0)
            self.db.add(job)
        else:
            self.apply(job, {"job_template": template, "worker_pool": pool}, changed)
        self.apply(job, values, changed)
        if excludes is not None:
            current = [(e.start_time, e.end_time, e.note) for e in job.reschedule_excludes]
            if current != excludes:
                job.reschedule_excludes = [
                    RescheduleExclude(start_time=start, end_time=end, note=note)
                    for start, end, note in excludes
                ]
                changed.append("reschedule_excludes")
        if job.reschedule_interval is not None and job.reschedule_interval_type is None:
            raise entry.error("reschedule_interval needs a reschedule_interval_type")
        self.db.flush()
        self.file_jobs[(project.id, job.title)] = job
        return _LoadedJob(entry, project, job, created, changed, parent, schedule_dts)

    def resolve_parents(self, loaded):
        """Parents may name jobs further down the file: they are resolved once
        all jobs exist, and the chains are checked before anything is flushed
        (a cycle of new rows could not be flushed at all)."""
        with self.db.no_autoflush:
            for item in loaded:
                if item.parent is _NOT_GIVEN:
                    continue
                parent = None
                if item.parent is not None:
                    parent = (self.file_jobs.get((item.project.id, item.parent))
                              or self.find_job(item.entry, "parent", item.project, item.parent))
                    if parent is None:
                        raise item.entry.error(f"parent: no job {item.parent!r} in project "
                                               f"{item.project.title!r}")
                if item.job.parent is not parent:
                    item.job.parent = parent
                    item.changed.append("parent")
            for item in loaded:
                chain = [item.job.title]
                seen = {id(item.job)}
                current = item.job.parent
                while current is not None:
                    chain.append(current.title)
                    if id(current) in seen:
                        raise item.entry.error(
                            f"parent: the chain {' -> '.join(chain)} is a cycle")
                    seen.add(id(current))
                    current = current.parent

    def schedule_first_run(self, item):
        """A first recurring run, unless the job has a run still pending."""
        pending = self.db.scalar(
            select(Run.id).where(Run.job_id == item.job.id, Run.return_dts.is_(None)).limit(1)
        )
        if pending is None:
            create_run(self.db, item.job, item.schedule_dts, is_manual=False)
            self.changes.append(Change("job", item.name, "scheduled",
                                       (item.schedule_dts.isoformat(),)))

    def check_project_pools(self):
        """A project that lost a pool may not keep jobs on it."""
        for project_id, entry in self.project_entries.items():
            project = self.db.get(Project, project_id)
            stranded = self.db.scalars(
                select(Job).join(Job.job_template)
                .where(JobTemplate.project_id == project_id)
                .where(Job.worker_pool_id.not_in([pool.id for pool in project.worker_pools]))
                .order_by(Job.title)
            ).all()
            if stranded:
                job = stranded[0]
                raise entry.error(f"worker_pools: job {job.title!r} still runs on pool "
                                  f"{job.worker_pool.title!r}, which is not in the list")

    def run(self, data):
        if data is None:
            return self.changes
        if not isinstance(data, dict):
            raise LoadError(f"the file must be a mapping of {', '.join(SECTIONS)}")
        unknown = sorted(map(str, set(data) - set(SECTIONS)))
        if unknown:
            raise LoadError(f"unknown section(s): {', '.join(unknown)} "
                            f"(known: {', '.join(SECTIONS)})")
        self.load_groups(data)
        self.load_users(data)
        self.load_workers(data)
        self.load_pools(data)
        self.load_projects(data)
        self.load_templates(data)
        self.load_jobs(data)
        self.check_project_pools()
        return self.changes


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
            return _Load(dbsession, zone).run(data)
    except Exception:
        # Rows read inside the rolled-back savepoint may be gone; the session
        # flushed everything before it, so forgetting all loaded state is safe.
        dbsession.expire_all()
        raise


# --- dump ---------------------------------------------------------------------


def _time_text(value):
    if value.second or value.microsecond:
        return value.isoformat()
    return value.isoformat(timespec="minutes")


def _address_list(text):
    return [line for line in (text or "").splitlines() if line.strip()]


def dump(dbsession):
    """Everything ``load`` reads, in the same format (users without passwords)."""
    groups = dbsession.scalars(select(Group).order_by(Group.name)).all()
    users = dbsession.scalars(
        select(User).order_by(User.username).options(selectinload(User.groups))
    ).all()
    workers = dbsession.scalars(select(Worker).order_by(Worker.api_key)).all()
    pools = dbsession.scalars(
        select(WorkerPool).order_by(WorkerPool.title).options(selectinload(WorkerPool.workers))
    ).all()
    projects = dbsession.scalars(
        select(Project).order_by(Project.title).options(
            selectinload(Project.groups), selectinload(Project.auth_groups),
            selectinload(Project.worker_pools))
    ).all()
    templates = dbsession.execute(
        select(JobTemplate, Project.title).join(JobTemplate.project)
        .order_by(Project.title, JobTemplate.title)
    ).all()
    jobs = dbsession.execute(
        select(Job, JobTemplate.title, Project.title)
        .join(Job.job_template).join(JobTemplate.project)
        .order_by(Project.title, JobTemplate.title, Job.title)
        .options(selectinload(Job.worker_pool), selectinload(Job.parent),
                 selectinload(Job.reschedule_excludes))
    ).all()
    # The next recurring run of each job, so that loading the dump into an
    # empty database carries the schedules over.
    pending = {}
    for job_id, schedule_dts in dbsession.execute(
        select(Run.job_id, Run.schedule_dts)
        .where(Run.return_dts.is_(None), Run.is_manual.is_(False))
        .order_by(Run.schedule_dts.desc())
    ):
        pending[job_id] = schedule_dts

    def names(groups_):
        return sorted(group.name for group in groups_)

    return {
        "groups": [group.name for group in groups],
        "users": [
            {"username": user.username, "email": user.email, "is_admin": user.is_admin,
             "is_active": user.is_active, "groups": names(user.groups)}
            for user in users
        ],
        "workers": [
            {"title": worker.title, "description": worker.description,
             "api_key": worker.api_key, "secret": worker.secret,
             "enqueue_is_enabled": worker.enqueue_is_enabled,
             "concurrent_jobs": worker.concurrent_jobs}
            for worker in workers
        ],
        "worker_pools": [
            {"title": pool.title, "description": pool.description,
             "workers": sorted(worker.api_key for worker in pool.workers),
             "notification_addresses": _address_list(pool.notification_addresses),
             "webhook_urls": _address_list(pool.webhook_urls),
             "enqueue_is_enabled": pool.enqueue_is_enabled}
            for pool in pools
        ],
        "projects": [
            {"title": project.title, "description": project.description,
             "groups": names(project.groups), "auth_groups": names(project.auth_groups),
             "worker_pools": sorted(pool.title for pool in project.worker_pools),
             "notification_addresses": _address_list(project.notification_addresses),
             "webhook_urls": _address_list(project.webhook_urls),
             "enqueue_is_enabled": project.enqueue_is_enabled}
            for project in projects
        ],
        "job_templates": [
            {"project": project_title, "title": template.title,
             "description": template.description, "body": template.body,
             "notification_addresses": _address_list(template.notification_addresses),
             "webhook_urls": _address_list(template.webhook_urls),
             "enqueue_is_enabled": template.enqueue_is_enabled}
            for template, project_title in templates
        ],
        "jobs": [_dump_job(job, template_title, project_title, pending.get(job.id))
                 for job, template_title, project_title in jobs],
    }


def _dump_job(job, template_title, project_title, schedule_dts):
    entry = {
        "project": project_title,
        "job_template": template_title,
        "title": job.title,
        "description": job.description,
        "worker_pool": job.worker_pool.title,
        "parent": job.parent.title if job.parent is not None else None,
        "script_content_partial": job.script_content_partial,
        "enqueue_is_enabled": job.enqueue_is_enabled,
        "reschedule_interval": job.reschedule_interval,
        "reschedule_interval_type": (job.reschedule_interval_type.value
                                     if job.reschedule_interval_type else None),
        "reschedule_excludes": [
            {"start_time": _time_text(exclude.start_time),
             "end_time": _time_text(exclude.end_time),
             "note": exclude.note}
            for exclude in job.reschedule_excludes
        ],
        "notification_addresses": _address_list(job.notification_addresses),
        "webhook_urls": _address_list(job.webhook_urls),
        "webhook_on_success": job.webhook_on_success,
        "run_on_all_workers": job.run_on_all_workers,
        "schedule_children_on_error": job.schedule_children_on_error,
        "disable_enqueue_after_fails": job.disable_enqueue_after_fails,
    }
    if schedule_dts is not None:
        entry["schedule_dts"] = schedule_dts
    return entry
