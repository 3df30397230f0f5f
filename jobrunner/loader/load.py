"""Loading a set-up file: every section goes through one create-or-update
step, driven by the section's row in the table of jobrunner.loader.sections;
jobs add their parents, rules and first runs once the whole section is in."""
from __future__ import annotations

import dataclasses
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from ..domain_errors import InvalidFields
from ..jobs import check_job, has_pending_run, jobs_off_project_pools
from ..models import Job, begin_write
from ..scheduling.runs import create_run
from ..values import addresses_text
from .format import LoadError, describe
from .sections import SECTIONS, Loaded, find_job, section_table

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
