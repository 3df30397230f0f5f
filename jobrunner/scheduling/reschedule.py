"""Pure calculation of a job's next schedule.

``next_schedule`` starts from the previous non-manual run's ``schedule_dts``
(``last``) and gives the next time of the job's interval or cron expression,
read in the job's time zone.

Intervals are a grid of local wall times: ``last``'s local wall time plus one,
two, ... intervals, each made an instant by ``resolve_wall_time`` (a time
skipped by a daylight-saving change runs at the first instant after the gap,
a repeated one once, at its first occurrence). Every interval type keeps the
local time of day this way:

* ``MINUTE`` and ``HOUR`` add the interval to the local wall time, so
  ``12 HOUR`` at 06:00 and 18:00 stays at 06:00 and 18:00 all year. Across a
  change the real distance between two runs is the interval plus or minus the
  change (``1 HOUR``: 01:00, 03:00 on the spring day; 02:00 (first), 03:00 on
  the autumn day, so the repeated hour is not run twice).
* ``DAY`` and ``WEEK`` add calendar days.
* ``MONTH`` adds, per month of the interval, the number of days of the month
  the local date is in at that moment (January 31 + 1 month = January 31 + 31
  days = March 3, or March 2 in a leap year): the day of the month drifts only
  while it is past the 28th and is stable from then on.

Cron expressions give the first matching time strictly after ``last``; see
``cron``. The times of a schedule are strictly increasing and each is after
``last``; several grid times inside one gap give one run.

When the next time is not in the future (runs were missed), the misfire policy
decides: ``skip`` takes the first time in the future; ``run_once`` takes the
latest missed time, which is due at once and stands for all the missed ones;
the schedule continues after it on the same grid.

Reschedule excludes (``wallclock``) are checked against the local time a run
happens; an excluded time moves on to the schedule's next time. For DAY, WEEK
and MONTH the local time of day never changes, so an excluded wall-clock time
fails at once. For MINUTE, HOUR and cron expressions the search covers every
local time of day the schedule can reach; when none escapes, it fails.

A last schedule years in the past is brought close to ``now`` with arithmetic
on the grid first, so the cost does not grow with its age. No time at or after
the year 9999 is given: the calculation fails instead.
"""

import calendar
import math
from datetime import date, datetime, time, timedelta

from .cron import LAST_YEAR, cron_times_after, cron_times_of_day, cron_times_up_to, validate_cron_expression
from .wallclock import (
    UTC,
    as_tzinfo,
    exclude_ranges as _exclude_ranges,
    is_excluded,
    is_excluded_instant,
    is_gap_end,
    resolve_wall_time,
    wall_time,
)

__all__ = [
    "RescheduleError",
    "next_schedule",
    "validate_interval",
    "is_excluded",
    "INTERVAL_TYPES",
    "MISFIRE_POLICIES",
]

INTERVAL_TYPES = ("MINUTE", "HOUR", "DAY", "WEEK", "MONTH")
MISFIRE_POLICIES = ("skip", "run_once")

_MINUTES_PER_DAY = 24 * 60
_FIXED_STEPS = {"MINUTE": timedelta(minutes=1), "HOUR": timedelta(hours=1), "DAY": timedelta(days=1),
                "WEEK": timedelta(weeks=1)}
# The longest interval accepted from users: a hundred years.
MAX_INTERVALS = {"MINUTE": 52_596_000, "HOUR": 876_600, "DAY": 36_525, "WEEK": 5_217, "MONTH": 1_200}
# The shortest real length of one unit, to refuse at once an interval that
# would leave the calendar (and loops that would take for ever).
_SHORTEST_UNIT = {**_FIXED_STEPS, "MONTH": timedelta(days=28)}
_END_OF_TIME = datetime(LAST_YEAR + 1, 1, 1)
# A calendar-interval candidate can only be excluded on a day whose
# wall-clock time was moved by a daylight-saving gap; such days are rare.
_MAX_CALENDAR_EXCLUDE_STEPS = 8
# A cron expression matches at most 1440 times a day (a few more on a day the
# clock goes back); an escaping time of day is met within two matching days.
_MAX_CRON_EXCLUDE_STEPS = 4 * _MINUTES_PER_DAY + 8


class RescheduleError(Exception):
    """The next schedule cannot be computed; ``str(exc)`` gives the reason."""


def _interval_type_name(interval_type) -> str:
    name = getattr(interval_type, "value", interval_type)
    if name not in INTERVAL_TYPES:
        raise ValueError(f"unknown interval type {interval_type!r}; expected one of {INTERVAL_TYPES}")
    return name


def validate_interval(interval, interval_type) -> None:
    """Raise ValueError unless the interval is a positive integer of at most a hundred years."""
    name = _interval_type_name(interval_type)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        raise ValueError(f"interval must be a positive integer, got {interval!r}")
    if interval > MAX_INTERVALS[name]:
        raise ValueError(
            f"this interval is too large: at most {MAX_INTERVALS[name]} {name.lower()}s (a hundred years; "
            "every schedule must land before year 9999)"
        )


def next_schedule(last_schedule_dts, interval, interval_type, excludes, tz, now, *,
                  cron_expression=None, misfire_policy="skip", earlier_schedule_dts=None):
    """Return the next schedule, an aware UTC datetime after ``last_schedule_dts``.

    ``last_schedule_dts`` and ``now`` are aware datetimes in any zone; ``tz``
    is the job's time zone (a tzinfo or an IANA name). With
    ``cron_expression`` the interval arguments are ignored (they may be
    None); else ``interval`` is a positive int and ``interval_type`` one of
    ``INTERVAL_TYPES`` (a str-valued Enum member is accepted too).
    ``excludes`` holds ``(start_time, end_time)`` pairs (or objects with
    ``start_time`` and ``end_time`` attributes) of local times of day.

    ``misfire_policy`` ``skip`` gives a time strictly after ``now``;
    ``run_once`` gives the latest missed time (at or before ``now``) when
    there is one. ``earlier_schedule_dts``, the non-manual schedule before
    ``last_schedule_dts``, lets an interval keep its local time of day after
    a run that a daylight-saving gap moved to the gap's end.

    Raises ``RescheduleError`` when no time escapes the excludes or no time
    is left before the year 9999, and ``ValueError`` for malformed arguments.
    """
    for name, value in (("last_schedule_dts", last_schedule_dts), ("now", now)):
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime, got {value!r}")
    if misfire_policy not in MISFIRE_POLICIES:
        raise ValueError(f"unknown misfire policy {misfire_policy!r}; expected one of {MISFIRE_POLICIES}")
    tz = as_tzinfo(tz)
    ranges = _exclude_ranges(excludes)
    last = last_schedule_dts.astimezone(UTC)
    now = now.astimezone(UTC)

    if cron_expression is not None:
        expression = validate_cron_expression(cron_expression)
        return _next_cron(expression, last, ranges, tz, now, misfire_policy)

    name = _interval_type_name(interval_type)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        raise ValueError(f"interval must be a positive integer, got {interval!r}")
    try:
        return _next_interval(last, interval, name, ranges, tz, now, misfire_policy, earlier_schedule_dts)
    except (OverflowError, ValueError):
        # The arguments are checked above: this is date arithmetic leaving
        # the calendar (past the year 9999).
        raise _past_the_calendar() from None


def _past_the_calendar():
    return RescheduleError(f"no next schedule before the year {LAST_YEAR + 1}")


def _no_escape(detail):
    return RescheduleError(f"no time within a day escapes the reschedule excludes ({detail})")


def _format_time(value: time) -> str:
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds")


# --- cron expressions

def _next_cron(expression, last, ranges, tz, now, misfire_policy):
    if ranges and all(is_excluded(time(hour, minute), ranges) for hour, minute in cron_times_of_day(expression)):
        raise _no_escape(f"every time of day that {expression!r} matches is excluded")
    if misfire_policy == "run_once":
        for checked, instant in enumerate(cron_times_up_to(expression, now, tz)):
            if instant <= last or checked > _MAX_CRON_EXCLUDE_STEPS:
                break
            if not is_excluded_instant(instant, tz, ranges):
                return instant
    for checked, instant in enumerate(cron_times_after(expression, max(last, now), tz)):
        if not is_excluded_instant(instant, tz, ranges):
            return instant
        if checked > _MAX_CRON_EXCLUDE_STEPS:
            raise _no_escape(f"{_MAX_CRON_EXCLUDE_STEPS} times of {expression!r} in a row are excluded")
    raise _past_the_calendar()


# --- intervals

def _next_interval(last, interval, name, ranges, tz, now, misfire_policy, earlier):
    last_wall = wall_time(last, tz)
    if _END_OF_TIME - last_wall <= interval * _SHORTEST_UNIT[name]:
        raise _past_the_calendar()
    origin = _slot_of(last, last_wall, interval, name, tz, earlier)

    if name in _FIXED_STEPS:
        step = interval * _FIXED_STEPS[name]
        if name in ("MINUTE", "HOUR"):
            step_minutes = step // timedelta(minutes=1)
            # The local times of day on the grid repeat after this many steps;
            # a daylight-saving day may hide one of them, so look twice as far.
            cycle = _MINUTES_PER_DAY // math.gcd(step_minutes, _MINUTES_PER_DAY)
            max_excluded = 2 * cycle + 2
            if ranges and all(is_excluded(wall, ranges) for wall in _times_of_day(origin, step_minutes, cycle)):
                raise _no_escape(f"every {interval} {name.lower()} step from {last.isoformat()} is excluded")
        else:
            max_excluded = _MAX_CALENDAR_EXCLUDE_STEPS
        lookback = max_excluded if (ranges and misfire_policy == "run_once") else 1
        slots = _fixed_slots(origin, step, tz, now, lookback)
    else:
        max_excluded = _MAX_CALENDAR_EXCLUDE_STEPS
        slots = _month_slots(origin, interval, tz, now)

    if name in ("DAY", "WEEK", "MONTH") and is_excluded(origin.time(), ranges):
        raise _no_escape(
            f"a {name.lower()} interval keeps the local time {_format_time(origin.time())}, which is excluded"
        )
    return _pick(slots, tz, last, now, ranges, misfire_policy, max_excluded,
                 f"every {interval} {name.lower()} step from {last.isoformat()} is excluded")


def _times_of_day(origin, step_minutes, cycle):
    """The local times of day of a MINUTE/HOUR grid, one cycle of it."""
    for k in range(cycle):
        yield (origin + timedelta(minutes=k * step_minutes % _MINUTES_PER_DAY)).time()


def _slot_of(last, last_wall, interval, name, tz, earlier):
    """The local wall time of ``last``'s grid slot.

    It is ``last``'s own wall time, except when a gap moved ``last`` to the
    gap's end: then the slot lies inside the gap, and the earlier schedule's
    grid tells where.
    """
    if earlier is None or not is_gap_end(last, tz):
        return last_wall
    earlier = earlier.astimezone(UTC)
    if earlier >= last:
        return last_wall
    just_before = last - timedelta(microseconds=1)
    earlier_wall = wall_time(earlier, tz)
    if name in _FIXED_STEPS:
        slots = _fixed_slots(earlier_wall, interval * _FIXED_STEPS[name], tz, just_before, 1)
    else:
        slots = _month_slots(earlier_wall, interval, tz, just_before)
    for slot in slots:
        instant = resolve_wall_time(slot, tz)
        if instant > last:
            break
        if instant == last:
            return slot
    return last_wall


def _pick(slots, tz, last, now, ranges, misfire_policy, max_excluded, detail):
    """The next time among the grid's slots (increasing local wall times)."""
    previous = last
    latest_missed = None
    excluded_in_a_row = 0
    for slot in slots:
        instant = resolve_wall_time(slot, tz)
        if instant.year > LAST_YEAR:
            raise _past_the_calendar()
        if instant <= previous:
            continue  # at or before last, or a second grid time in the same gap
        previous = instant
        excluded = is_excluded_instant(instant, tz, ranges)
        if instant <= now:
            if not excluded:
                latest_missed = instant
            continue
        if misfire_policy == "run_once" and latest_missed is not None:
            return latest_missed
        if not excluded:
            return instant
        excluded_in_a_row += 1
        if excluded_in_a_row > max_excluded:
            raise _no_escape(detail)
    raise _past_the_calendar()


def _fixed_slots(origin, step, tz, bound, lookback):
    """Slots ``origin + k * step`` from ``lookback`` before the first one after ``bound``."""
    def instant(k):
        return resolve_wall_time(origin + k * step, tz)

    k = max(1, (wall_time(bound, tz) - origin) // step)
    while k > 1 and instant(k - 1) > bound:
        k -= 1
    while instant(k) <= bound:
        k += 1
    k = max(1, k - lookback)
    while True:
        yield origin + k * step
        k += 1


def _add_months_in_days(local_date: date, months: int) -> date:
    # Past the 28th the day of the month drifts; once it is 28 or less the
    # rule is plain calendar-month addition.
    while months and local_date.day > 28:
        local_date += timedelta(days=calendar.monthrange(local_date.year, local_date.month)[1])
        months -= 1
    return _add_calendar_months(local_date, months)


def _add_calendar_months(local_date: date, months: int) -> date:
    """Plain calendar-month addition; equals the days-per-month rule for days 1-28."""
    month_index = local_date.year * 12 + (local_date.month - 1) + months
    return local_date.replace(year=month_index // 12, month=month_index % 12 + 1)


def _month_slots(origin, interval, tz, bound):
    """Month slots from at least one interval before ``bound``'s local date on."""
    wall = origin.time()
    local_date = origin.date()
    bound_date = wall_time(bound, tz).date()

    def advance(from_date):
        return _add_months_in_days(from_date, interval)

    # Past the 28th, step while two steps on are still before the bound, so
    # that the latest slot before the bound is still to come.
    while local_date.day > 28 and advance(advance(local_date)) < bound_date:
        local_date = advance(local_date)
    if local_date.day <= 28:
        months_behind = (bound_date.year - local_date.year) * 12 + (bound_date.month - local_date.month)
        # Stop at least one interval short of the bound's month, so that the
        # latest missed slot is seen too.
        intervals_to_skip = max(0, months_behind // interval - 2)
        local_date = _add_calendar_months(local_date, intervals_to_skip * interval)
    while True:
        local_date = advance(local_date)
        yield datetime.combine(local_date, wall)
