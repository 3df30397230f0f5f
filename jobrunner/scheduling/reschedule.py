"""Pure calculation of a job's next schedule (SPEC section 5, "Return", point 3).

``next_schedule`` starts from the last non-manual run's ``schedule_dts`` and
adds the job's interval until the result lies strictly after ``now``. The
interval is always added at least once, so a last schedule that is already in
the future still moves on by one interval.

How each interval type is added:

* ``MINUTE`` and ``HOUR`` add absolute time. Across a daylight-saving change
  the local hour therefore shifts, but the distance between runs stays exact.
* ``DAY`` and ``WEEK`` add calendar days in the configured time zone and keep
  the local wall-clock time of the last schedule. A wall-clock time that does
  not exist on the result day (spring forward) moves forward by the gap; an
  ambiguous one (autumn) takes the first occurrence (``fold=0``).
* ``MONTH`` adds, per month of the interval, the number of days of the month
  the local date is in at that moment (January 31 + 1 month = January 31 + 31
  days = March 3, or March 2 in a leap year). This follows the contract's
  "adds the days of each month in turn": the day of the month drifts only
  while it is past the 28th and is stable from then on. Wall-clock time is
  kept as for ``DAY``.

A last schedule years in the past is brought close to ``now`` with arithmetic
on the interval grid first, so the cost does not grow with its age.

Reschedule excludes are ``(start_time, end_time)`` pairs of local times of day,
both ends included; a pair whose start is after its end wraps over midnight. A
candidate whose local time of day is excluded moves on by the interval. For
calendar intervals the local time of day never changes, so an excluded
wall-clock time is excluded for ever and fails at once. For ``MINUTE`` and
``HOUR`` the search covers every local time of day the interval grid can reach
(one full cycle of the grid over a day, at least a day's worth of steps, plus
one); when none of those escapes, no time will, and the reschedule fails.
"""

import calendar
import math
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Iterable, List, Tuple

__all__ = ["RescheduleError", "next_schedule", "INTERVAL_TYPES", "interval_in_range"]

INTERVAL_TYPES = ("MINUTE", "HOUR", "DAY", "WEEK", "MONTH")

_MINUTES_PER_DAY = 24 * 60
# A calendar-interval candidate can only be excluded on a day whose
# wall-clock time was moved by a daylight-saving gap; such days are rare, so a
# few steps always escape unless the excludes are inconsistent.
_MAX_CALENDAR_EXCLUDE_STEPS = 8


class RescheduleError(Exception):
    """The next schedule cannot be computed; ``str(exc)`` gives the reason."""


_INTERVAL_DAYS = {"MINUTE": 1 / 1440, "HOUR": 1 / 24, "DAY": 1, "WEEK": 7, "MONTH": 31}


def interval_in_range(interval, interval_type, now):
    """Whether one interval from ``now`` lands before the year 9999."""
    name = getattr(interval_type, "value", interval_type)
    days_left = (datetime(9999, 1, 1, tzinfo=timezone.utc) - now).days
    return interval * _INTERVAL_DAYS.get(name, 31) < days_left


ExcludeRange = Tuple[time, time]


def next_schedule(last_schedule_dts, interval, interval_type, excludes, tz, now):
    """Return the next schedule, an aware UTC datetime strictly after ``now``.

    ``last_schedule_dts`` and ``now`` are aware datetimes in any zone;
    ``interval`` is a positive int; ``interval_type`` is one of
    ``INTERVAL_TYPES`` (a str-valued Enum member is accepted too);
    ``excludes`` holds ``(start_time, end_time)`` pairs (or objects with
    ``start_time`` and ``end_time`` attributes) of local times of day in ``tz``.

    Raises ``RescheduleError`` when no time escapes the excludes and
    ``ValueError`` for malformed arguments.
    """
    interval_type = _interval_type_name(interval_type)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        raise ValueError(f"interval must be a positive integer, got {interval!r}")
    for name, value in (("last_schedule_dts", last_schedule_dts), ("now", now)):
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime, got {value!r}")
    exclude_ranges = _exclude_ranges(excludes)

    if interval_type in ("MINUTE", "HOUR"):
        return _next_absolute(last_schedule_dts, interval, interval_type, exclude_ranges, tz, now)
    return _next_calendar(last_schedule_dts, interval, interval_type, exclude_ranges, tz, now)


def is_excluded(local_time: time, exclude_ranges: Iterable[ExcludeRange]) -> bool:
    """Whether a naive local time of day lies inside any exclude (ends included)."""
    for start, end in exclude_ranges:
        if start <= end:
            if start <= local_time <= end:
                return True
        elif local_time >= start or local_time <= end:
            return True
    return False


def _interval_type_name(interval_type) -> str:
    name = getattr(interval_type, "value", interval_type)
    if name not in INTERVAL_TYPES:
        raise ValueError(f"unknown interval type {interval_type!r}; expected one of {INTERVAL_TYPES}")
    return name


def _naive_time(value: time) -> time:
    # Excludes are local times of day; any tzinfo or fold on them is meaningless here.
    return value.replace(tzinfo=None, fold=0)


def _exclude_ranges(excludes) -> List[ExcludeRange]:
    ranges = []
    for exclude in excludes or ():
        if hasattr(exclude, "start_time"):
            start, end = exclude.start_time, exclude.end_time
        else:
            start, end = exclude
        if not isinstance(start, time) or not isinstance(end, time):
            raise ValueError(f"an exclude needs two datetime.time values, got {exclude!r}")
        ranges.append((_naive_time(start), _naive_time(end)))
    return ranges


def _local_time_of_day(moment: datetime, tz: tzinfo) -> time:
    return moment.astimezone(tz).time()


def _format_time(value: time) -> str:
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds")


def _next_absolute(last, interval, interval_type, exclude_ranges, tz, now) -> datetime:
    step_minutes = interval if interval_type == "MINUTE" else interval * 60
    step = timedelta(minutes=step_minutes)
    last_utc = last.astimezone(timezone.utc)
    now_utc = now.astimezone(timezone.utc)

    # Smallest whole number of steps (at least one) that lands after now;
    # timedelta floor division is exact to the microsecond.
    steps = 1
    if now_utc >= last_utc:
        steps = (now_utc - last_utc) // step + 1
    candidate = last_utc + steps * step

    if not exclude_ranges:
        return candidate

    # The local times of day on the grid repeat after this many steps (leaving
    # daylight-saving aside); it is never fewer than the steps covering a day.
    steps_per_time_of_day_cycle = _MINUTES_PER_DAY // math.gcd(step_minutes, _MINUTES_PER_DAY)
    for _ in range(steps_per_time_of_day_cycle + 1):
        if not is_excluded(_local_time_of_day(candidate, tz), exclude_ranges):
            return candidate
        candidate += step
    raise RescheduleError(
        f"no time within a day escapes the reschedule excludes "
        f"(every {interval} {interval_type.lower()} step from "
        f"{last_utc.isoformat()} is excluded)"
    )


def _add_months_in_days(local_date: date, months: int) -> date:
    for _ in range(months):
        local_date += timedelta(days=calendar.monthrange(local_date.year, local_date.month)[1])
    return local_date


def _add_calendar_months(local_date: date, months: int) -> date:
    """Plain calendar-month addition; equals the days-per-month rule for days 1-28."""
    month_index = local_date.year * 12 + (local_date.month - 1) + months
    return local_date.replace(year=month_index // 12, month=month_index % 12 + 1)


def _at_wall_clock(local_date: date, wall_time: time, tz: tzinfo) -> datetime:
    # fold=0 picks the first of two ambiguous times; for a time inside a gap
    # it applies the offset from before the change, so the UTC round trip
    # moves it forward by the gap.
    return datetime.combine(local_date, wall_time, tzinfo=tz).astimezone(timezone.utc)


def _next_calendar(last, interval, interval_type, exclude_ranges, tz, now) -> datetime:
    last_local = last.astimezone(tz)
    wall_time = _naive_time(last_local.time())
    if is_excluded(wall_time, exclude_ranges):
        raise RescheduleError(
            f"no time within a day escapes the reschedule excludes "
            f"(a {interval_type.lower()} interval keeps the local time "
            f"{_format_time(wall_time)}, which is excluded)"
        )

    now_local_date = now.astimezone(tz).date()
    local_date = last_local.date()

    if interval_type == "MONTH":
        def advance(from_date):
            return _add_months_in_days(from_date, interval)

        # Past the 28th the day of the month drifts; once it is 28 or less the
        # rule is plain calendar-month addition, which can jump.
        while local_date.day > 28 and advance(local_date) < now_local_date:
            local_date = advance(local_date)
        if local_date.day <= 28:
            months_behind = (now_local_date.year - local_date.year) * 12 + (
                now_local_date.month - local_date.month
            )
            # Stop at least one interval short of now's month, i.e. strictly in the past.
            intervals_to_skip = max(0, months_behind // interval - 1)
            local_date = _add_calendar_months(local_date, intervals_to_skip * interval)
    else:
        step_days = interval * (7 if interval_type == "WEEK" else 1)

        def advance(from_date):
            return from_date + timedelta(days=step_days)

        # Stop at least one interval short of now's date, i.e. strictly in the past.
        intervals_to_skip = max(0, (now_local_date - local_date).days // step_days - 1)
        local_date += timedelta(days=intervals_to_skip * step_days)

    local_date = advance(local_date)
    candidate = _at_wall_clock(local_date, wall_time, tz)
    while candidate <= now:
        local_date = advance(local_date)
        candidate = _at_wall_clock(local_date, wall_time, tz)

    # Only a daylight-saving gap can move the time into an exclude here.
    for _ in range(_MAX_CALENDAR_EXCLUDE_STEPS):
        if not is_excluded(_local_time_of_day(candidate, tz), exclude_ranges):
            return candidate
        local_date = advance(local_date)
        candidate = _at_wall_clock(local_date, wall_time, tz)
    raise RescheduleError(
        f"no time within a day escapes the reschedule excludes "
        f"(local time {_format_time(wall_time)} stays excluded for "
        f"{_MAX_CALENDAR_EXCLUDE_STEPS} {interval_type.lower()} steps)"
    )
