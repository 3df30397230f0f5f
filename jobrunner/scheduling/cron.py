"""Cron expressions: validation and the times they match, in a job's time zone.

The syntax is the classic 5-field crontab one: minute, hour, day of month,
month, day of week; ``*``, lists (``1,15``), ranges (``1-5``), steps
(``*/15``, ``8-18/2``), month names (``jan``) and day names (``mon``), any
case; Sunday is ``0`` or ``7``. When both day fields are restricted a day
matching either runs, as in cron. The macros ``@hourly``, ``@daily``
(``@midnight``), ``@weekly``, ``@monthly`` and ``@yearly`` (``@annually``)
stand for their usual expressions. Seconds fields and the non-portable
``L``, ``W``, ``#`` and ``?`` forms are refused, so an expression means the
same here as in a crontab.

Matching uses cronsim; the daylight-saving rules are ours:

* An expression whose hour field starts with ``*`` (``*/30 * * * *``,
  ``0 */2 * * *``, ``@hourly``) runs by elapsed time: its times are the
  instants whose local time matches, so through a change it keeps its real
  interval, both occurrences of a repeated hour run and a skipped hour has no
  runs.
* Any other expression is matched in local wall time and each match becomes
  an instant by ``resolve_wall_time``: a skipped time runs once at the first
  instant after the gap, a repeated time runs once at its first occurrence.
"""

import re
from datetime import datetime, timedelta, tzinfo

from cronsim import CronSim, CronSimError

from .wallclock import UTC, resolve_wall_time, wall_time

__all__ = ["validate_cron_expression", "cron_times_after", "cron_times_up_to", "cron_times_of_day"]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
# One list item: `*` or a value or a range of values, optionally with a step.
# Values are numbers or three-letter names; cronsim checks ranges and names.
_ITEM = re.compile(r"^(\*|([0-9]+|[A-Za-z]{3})(-([0-9]+|[A-Za-z]{3}))?)(/[0-9]+)?$")
# Times before this year only: datetime cannot go past 9999-12-31.
LAST_YEAR = 9998


def validate_cron_expression(text) -> str:
    """Return the expression in 5-field form (macros expanded), or raise ValueError."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a cron expression is 5 fields: minute hour day-of-month month day-of-week")
    expression = text.strip()
    if expression.startswith("@"):
        try:
            return MACROS[expression.lower()]
        except KeyError:
            raise ValueError(
                f"unknown cron macro {expression!r}; expected one of {', '.join(MACROS)}"
            ) from None
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"not {len(fields)}; seconds are not supported"
        )
    for name, field in zip(FIELD_NAMES, fields):
        if not all(_ITEM.match(item) for item in field.split(",")):
            raise ValueError(f"bad {name} field {field!r} in cron expression {expression!r}")
    try:
        CronSim(" ".join(fields), datetime(2000, 1, 1))
    except CronSimError as exc:
        # cronsim names the field ("Bad day-of-month"): a value out of range,
        # an unknown name, a reversed range, a zero step, or a day that the
        # months given never have.
        raise ValueError(f"{str(exc).lower()} in cron expression {expression!r}") from None
    return " ".join(fields)


def _runs_by_elapsed_time(expression: str) -> bool:
    return expression.split()[1].startswith("*")


def cron_times_of_day(expression: str):
    """The local times of day (``(hour, minute)``) the expression can match."""
    parsed = CronSim(validate_cron_expression(expression), datetime(2000, 1, 1))
    return sorted((hour, minute) for hour in parsed.hours for minute in parsed.minutes)


def _instants(expression: str, start: datetime, tz: tzinfo, reverse: bool):
    """Matching instants (aware UTC) from cronsim, in its order; ends quietly at the limits."""
    elapsed = _runs_by_elapsed_time(expression)
    origin = start.astimezone(tz) if elapsed else wall_time(start, tz)
    try:
        for match in CronSim(expression, origin, reverse=reverse):
            if elapsed:
                local = match
                if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
                    continue  # a midnight that a change skipped: elapsed time has none
                instant = local.astimezone(UTC)
            else:
                instant = resolve_wall_time(match, tz)
            if instant.year > LAST_YEAR:
                return
            yield instant
    except (OverflowError, ValueError):
        return  # at the edge of what datetime can hold


def cron_times_after(expression: str, after: datetime, tz: tzinfo):
    """The matching instants strictly after ``after``, strictly increasing, aware UTC.

    A generator that ends when no further time exists before year 9999 (or
    within fifty years of the last one).
    """
    expression = validate_cron_expression(expression)
    last = after.astimezone(UTC)
    for instant in _instants(expression, after, tz, reverse=False):
        # Several wall times inside one gap resolve to one instant, and a
        # wall-time match inside a repeated hour may lie before ``after``.
        if instant > last:
            last = instant
            yield instant


# A later wall time can have an earlier instant only inside a repeated hour
# (its first occurrence lies before the second); searching backwards starts
# this much later in wall time to see those too. Clock changes are at most
# an hour or two.
_WALL_CLOCK_SLACK = timedelta(hours=3)


def cron_times_up_to(expression: str, until: datetime, tz: tzinfo):
    """The matching instants at or before ``until``, latest first (non-increasing, aware UTC)."""
    expression = validate_cron_expression(expression)
    until = until.astimezone(UTC)
    start = until + (timedelta(seconds=1) if _runs_by_elapsed_time(expression) else _WALL_CLOCK_SLACK)
    for instant in _instants(expression, start, tz, reverse=True):
        if instant <= until:
            yield instant
