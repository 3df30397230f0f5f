"""GET /api/v1/job/schedule_preview/: the next times of a schedule given as
a job body's schedule fields, computed by the code the return path uses
(jobrunner.scheduling.schedule.preview_times). Any caller who is logged in
(a user or a worker) may ask; nothing is stored."""
import json

from pyramid.view import view_config

from ..jobs import parse_interval_type
from ..scheduling.schedule import MAX_PREVIEW_COUNT, RescheduleError, Schedule, preview_times, schedule_errors
from ..models import utcnow
from ..values import format_datetime, parse_datetime
from .errors import bad_request
from .fields import ExcludeList
from .traversal import Collection

DEFAULT_COUNT = 5
PARAMETERS = ("reschedule_interval", "reschedule_interval_type", "cron_expression", "timezone",
              "reschedule_excludes", "after", "count")


@view_config(context=Collection, name="schedule_preview", renderer="json", request_method=("GET", "HEAD"))
def schedule_preview(context, request):
    if context.resource_type.name != "job":
        raise bad_request("Only jobs have a schedule preview.")
    zone = request.registry.jobrunner_settings.tz
    schedule, after, count = read_preview_query(request.GET, zone)
    try:
        times = preview_times(schedule, after, count, zone)
    except RescheduleError as exc:
        field = "cron_expression" if schedule.is_cron else "reschedule_excludes"
        raise bad_request("Invalid fields.", {field: str(exc)})
    return {"times": [format_datetime(t) for t in times]}


def read_preview_query(params, zone):
    """(Schedule, after, count) from the query string; a 400 naming every bad field."""
    # A misspelt field would silently preview another schedule.
    errors = {name: f"{name} is not a schedule field" for name in params if name not in PARAMETERS}

    def read(name, convert):
        text = params.get(name)
        if text is None or text == "":
            return None
        try:
            return convert(text)
        except (ValueError, TypeError) as exc:
            errors[name] = f"{name}: {exc}"
            return None

    interval = read("reschedule_interval", _whole_number)
    interval_type = read("reschedule_interval_type", parse_interval_type)
    excludes = read("reschedule_excludes", _excludes) or []
    after = read("after", lambda text: parse_datetime(text, zone))
    count = read("count", _whole_number)
    if count is not None and not 1 <= count <= MAX_PREVIEW_COUNT:
        errors["count"] = f"count is a whole number from 1 to {MAX_PREVIEW_COUNT}"
    schedule = Schedule(
        interval=interval,
        interval_type=getattr(interval_type, "value", interval_type),
        cron_expression=params.get("cron_expression") or None,
        timezone=params.get("timezone") or None,
        excludes=tuple((e["start_time"], e["end_time"]) for e in excludes),
        misfire_policy="skip",
    )
    for name, message in schedule_errors(schedule).items():
        errors.setdefault(name, message)
    if not errors and not schedule.is_recurring:
        message = "give reschedule_interval and reschedule_interval_type, or cron_expression"
        errors["reschedule_interval"] = errors["cron_expression"] = message
    if errors:
        raise bad_request("Invalid fields.", errors)
    return schedule, after or utcnow(), count or DEFAULT_COUNT


def _whole_number(text):
    text = text.strip()
    if not (text.isascii() and text.lstrip("-").isdigit()):
        raise ValueError(f"not a whole number: {text!r}")
    return int(text)


def _excludes(text):
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError("expected JSON: a list of {start_time, end_time, note}") from None
    return ExcludeList().convert(None, value)
