"""GET /api/v1/job/schedule_preview/: the next times a schedule will run.

Takes a job's schedule fields as query parameters (reschedule_excludes as
JSON), validated by the job resource's own field types and rules, and
answers {"times": [...]}: the next `count` (1 to 100, default 5) times after
`after` (default now). For an interval, `after` is the previous run's
schedule_dts and the times are one, two, ... intervals on, computed by the
code that reschedules a job when a run returns.
"""
import json

from pyramid.view import view_config

from ..models import utcnow
from ..scheduling.reschedule import RescheduleError, next_schedule
from .body import validate
from .errors import APIError, bad_request
from .fields import format_datetime, parse_datetime
from .traversal import Collection
from .views import json_response, timezone_of
from .writes import schedule_errors

SCHEDULE_FIELDS = ("reschedule_interval", "reschedule_interval_type", "cron_expression",
                   "timezone", "reschedule_excludes")
DEFAULT_COUNT = 5
MAX_COUNT = 100


class _ScheduleFields:
    """The job resource's schedule fields, as a resource of their own."""

    name = "job"

    def __init__(self, job_resource):
        import colander

        self.schema = colander.SchemaNode(
            colander.Mapping(),
            *[node.clone() for node in job_resource.schema.children if node.name in SCHEDULE_FIELDS],
        )


def read_params(request):
    """(values, after, count) from the query string; 400 naming bad fields."""
    from .resources import RESOURCE_TYPES

    fields = _ScheduleFields(RESOURCE_TYPES["job"])
    known = {node.name for node in fields.schema.children}
    params = request.GET
    errors = {}
    data = {}
    for name in known:
        text = params.get(name, "")
        if text == "":
            continue
        if name == "reschedule_interval":
            data[name] = int(text) if text.strip().lstrip("-").isdigit() and len(text) < 12 else text
        elif name == "reschedule_excludes":
            try:
                data[name] = json.loads(text)
            except ValueError:
                errors[name] = "Expected a JSON list of {start_time, end_time, note}."
        else:
            data[name] = text
    unknown = set(params) - known - {"after", "count"}
    errors.update({name: "Unknown field." for name in sorted(unknown)})
    tz = timezone_of(request)
    after = utcnow()
    if params.get("after"):
        try:
            after = parse_datetime(params["after"], tz)
        except (ValueError, TypeError, OverflowError):
            errors["after"] = "Expected an ISO 8601 date and time."
    count = params.get("count", str(DEFAULT_COUNT))
    if not (count.isascii() and count.isdigit() and 1 <= int(count) <= MAX_COUNT):
        errors["count"] = f"An integer from 1 to {MAX_COUNT}."
    try:
        values = validate(fields, data, tz)
    except APIError as exc:
        errors = {**exc.errors, **errors}
    if errors:
        raise bad_request("Invalid fields.", errors)
    return values, after, int(count)


def interval_times(values, after, count, tz):
    excludes = [(e["start_time"], e["end_time"]) for e in values.get("reschedule_excludes") or []]
    times, last = [], after
    for _ in range(count):
        last = next_schedule(last, values["reschedule_interval"], values["reschedule_interval_type"],
                             excludes, tz, last)
        times.append(last)
    return times


@view_config(context=Collection, name="schedule_preview", request_method="GET")
def schedule_preview(context, request):
    if context.resource_type.name != "job":
        raise bad_request("Only jobs have a schedule preview.")
    values, after, count = read_params(request)
    interval, interval_type = values.get("reschedule_interval"), values.get("reschedule_interval_type")
    errors = schedule_errors(interval, interval_type)
    if interval is None:
        errors.setdefault("reschedule_interval", "A schedule needs an interval.")
    if errors:
        raise bad_request("Invalid fields.", errors)
    try:
        times = interval_times(values, after, count, timezone_of(request))
    except RescheduleError as exc:
        raise bad_request("Invalid fields.", {"reschedule_excludes": str(exc)})
    request.response.headers["Cache-Control"] = "no-store"
    return json_response(request, {"times": [format_datetime(t) for t in times]})
