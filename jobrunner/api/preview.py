"""GET /api/v1/job/schedule_preview/: the next times a schedule will run.

Takes a job's schedule fields as query parameters (reschedule_excludes as
JSON) and answers {"times": [...]}: the next `count` (1 to 100, default 5)
times after `after` (default now). The fields are read by the job
resource's own types and checked by the schedule's rules
(jobrunner.scheduling.schedule), and the times come from the code that
reschedules a job when a run returns: for an interval, `after` is the
previous run's schedule_dts and the times are one, two, ... intervals on;
for a cron expression, the matching times strictly after `after`.
"""
import json

import colander
from pyramid.view import view_config

from ..models import utcnow
from ..scheduling.schedule import (
    MAX_PREVIEW_COUNT,
    RescheduleError,
    Schedule,
    preview_times,
    schedule_errors,
)
from ..values import format_datetime, parse_datetime
from .body import validate
from .errors import APIError, bad_request
from .fields import Text, field
from .resources import RESOURCE_TYPES
from .traversal import Collection
from .views import json_response, timezone_of

SCHEDULE_FIELDS = ("reschedule_interval", "reschedule_interval_type", "cron_expression",
                   "timezone", "reschedule_excludes")
DEFAULT_COUNT = 5


class _ScheduleFields:
    """The job resource's schedule fields, as a resource of their own (a
    field the resource does not carry is read as text)."""

    name = "job"

    def __init__(self):
        nodes = {node.name: node for node in RESOURCE_TYPES["job"].schema.children}
        self.schema = colander.SchemaNode(colander.Mapping(), *[
            nodes[name].clone() if name in nodes else field(Text(255), name, nullable=True)
            for name in SCHEDULE_FIELDS
        ])


def _typed(name, text, errors):
    """A query parameter as the JSON value a job body would carry."""
    if name == "reschedule_interval":
        stripped = text.strip()
        return int(stripped) if stripped.lstrip("-").isdigit() and len(stripped) < 12 else text
    if name == "reschedule_excludes":
        try:
            return json.loads(text)
        except ValueError:
            errors[name] = "Expected a JSON list of {start_time, end_time, note}."
    return text


def read_params(request):
    """(schedule, after, count) from the query string; 400 naming bad fields."""
    params = request.GET
    errors = {}
    data = {name: _typed(name, params[name], errors)
            for name in SCHEDULE_FIELDS if params.get(name, "") != "" and name not in errors}
    data = {name: value for name, value in data.items() if name not in errors}
    errors.update({name: "Unknown field." for name in sorted(set(params) - set(SCHEDULE_FIELDS)
                                                             - {"after", "count"})})
    tz = timezone_of(request)
    after = utcnow()
    if params.get("after"):
        try:
            after = parse_datetime(params["after"], tz)
        except ValueError:
            errors["after"] = "Expected an ISO 8601 date and time."
    count = params.get("count", str(DEFAULT_COUNT))
    if not (count.isascii() and count.isdigit() and 1 <= int(count) <= MAX_PREVIEW_COUNT):
        errors["count"] = f"An integer from 1 to {MAX_PREVIEW_COUNT}."
    values = {}
    try:
        values = validate(_ScheduleFields(), data, tz)
    except APIError as exc:
        errors = {**exc.errors, **errors}
    schedule = Schedule(
        interval=values.get("reschedule_interval"),
        interval_type=values.get("reschedule_interval_type"),
        cron_expression=values.get("cron_expression"),
        timezone=values.get("timezone"),
        excludes=tuple((e["start_time"], e["end_time"]) for e in values.get("reschedule_excludes") or ()),
    )
    if not errors:
        errors = schedule_errors(schedule)
        if not errors and not schedule.is_recurring:
            errors["reschedule_interval"] = "A schedule needs reschedule_interval or cron_expression."
    if errors:
        raise bad_request("Invalid fields.", errors)
    return schedule, after, int(count)


@view_config(context=Collection, name="schedule_preview", request_method="GET")
def schedule_preview(context, request):
    if context.resource_type.name != "job":
        raise bad_request("Only jobs have a schedule preview.")
    schedule, after, count = read_params(request)
    try:
        times = preview_times(schedule, after, count, request.registry.jobrunner_settings.tz)
    except RescheduleError as exc:
        raise bad_request("Invalid fields.", {"reschedule_excludes": str(exc)})
    request.response.headers["Cache-Control"] = "no-store"
    return json_response(request, {"times": [format_datetime(t) for t in times]})
