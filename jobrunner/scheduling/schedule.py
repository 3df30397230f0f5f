"""A job's schedule as one value: its checks, its next time and its preview.

``Schedule`` holds the schedule fields of a job (or of an API body, a YAML
entry, a form) so that the API, the loader, the admin form, the return path
and the preview endpoint all validate and compute with the same code:

* ``schedule_errors`` gives the field errors, keyed by the API's field names;
* ``next_time`` is the next run after a previous one (the return path);
* ``first_time`` is the first run of a job that has none yet;
* ``preview_times`` lists the coming times, by repeated ``next_time``.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Dict, List, Optional, Tuple

from .cron import validate_cron_expression
from .reschedule import INTERVAL_TYPES, MISFIRE_POLICIES, RescheduleError, next_schedule, validate_interval
from .wallclock import as_tzinfo, exclude_ranges, validate_timezone

__all__ = [
    "Schedule",
    "schedule_errors",
    "next_time",
    "first_time",
    "preview_times",
    "RescheduleError",
    "MAX_PREVIEW_COUNT",
]

MAX_PREVIEW_COUNT = 100


@dataclass(frozen=True)
class Schedule:
    """The schedule fields of a job; ``timezone`` None means the default zone."""

    interval: Optional[int] = None
    interval_type: Optional[str] = None
    cron_expression: Optional[str] = None
    timezone: Optional[str] = None
    excludes: Tuple = field(default=())
    misfire_policy: str = "skip"

    @classmethod
    def of_job(cls, job) -> "Schedule":
        interval_type = job.reschedule_interval_type
        return cls(
            interval=job.reschedule_interval,
            interval_type=getattr(interval_type, "value", interval_type),
            cron_expression=job.cron_expression,
            timezone=job.timezone,
            excludes=tuple((e.start_time, e.end_time) for e in job.reschedule_excludes),
            misfire_policy=job.misfire_policy or "skip",
        )

    @property
    def is_cron(self) -> bool:
        return self.cron_expression is not None

    @property
    def is_recurring(self) -> bool:
        return recurs(self.interval, self.interval_type, self.cron_expression)

    def tzinfo(self, default_timezone):
        """The schedule's zone, else ``default_timezone`` (a tzinfo or an IANA name)."""
        return as_tzinfo(self.timezone, default_timezone)


def recurs(interval, interval_type, cron_expression) -> bool:
    """Whether a schedule makes runs at all (an interval with its type, or a
    cron expression); from the job's columns, without loading its excludes."""
    return cron_expression is not None or bool(interval and interval_type)


def schedule_errors(schedule: Schedule) -> Dict[str, str]:
    """Field name -> message for every invalid schedule field; empty when valid."""
    errors = {}
    if schedule.cron_expression is not None and (
        schedule.interval is not None or schedule.interval_type is not None
    ):
        message = "a job has reschedule_interval or cron_expression, not both"
        errors["cron_expression"] = errors["reschedule_interval"] = message
    if schedule.cron_expression is not None:
        try:
            validate_cron_expression(schedule.cron_expression)
        except ValueError as exc:
            errors.setdefault("cron_expression", str(exc))
    if schedule.interval is not None or schedule.interval_type is not None:
        if schedule.interval is None or schedule.interval_type is None:
            missing = "reschedule_interval" if schedule.interval is None else "reschedule_interval_type"
            errors.setdefault(missing, "reschedule_interval and reschedule_interval_type go together")
        elif getattr(schedule.interval_type, "value", schedule.interval_type) not in INTERVAL_TYPES:
            errors["reschedule_interval_type"] = f"reschedule_interval_type is one of {', '.join(INTERVAL_TYPES)}"
        else:
            try:
                validate_interval(schedule.interval, schedule.interval_type)
            except ValueError as exc:
                errors.setdefault("reschedule_interval", str(exc))
    if schedule.timezone is not None:
        try:
            validate_timezone(schedule.timezone)
        except ValueError as exc:
            errors["timezone"] = str(exc)
    if schedule.misfire_policy not in MISFIRE_POLICIES:
        errors["misfire_policy"] = f"misfire_policy is one of {', '.join(MISFIRE_POLICIES)}"
    try:
        exclude_ranges(schedule.excludes)
    except (ValueError, TypeError) as exc:
        errors["reschedule_excludes"] = str(exc)
    return errors


def _check(schedule: Schedule):
    errors = schedule_errors(schedule)
    if errors:
        raise ValueError("; ".join(f"{name}: {message}" for name, message in sorted(errors.items())))
    if not schedule.is_recurring:
        raise ValueError("the job has neither reschedule_interval nor cron_expression")


def next_time(schedule: Schedule, previous: datetime, now: datetime, default_timezone,
              earlier: Optional[datetime] = None) -> datetime:
    """The next run after the previous non-manual run's ``schedule_dts``, by the misfire policy.

    ``earlier`` is the non-manual schedule before ``previous`` when there is
    one (see ``next_schedule``). Raises RescheduleError when there is no next
    time and ValueError for an invalid schedule.
    """
    _check(schedule)
    return next_schedule(
        previous, schedule.interval, schedule.interval_type, schedule.excludes,
        schedule.tzinfo(default_timezone), now,
        cron_expression=schedule.cron_expression,
        misfire_policy=schedule.misfire_policy,
        earlier_schedule_dts=earlier,
    )


def first_time(schedule: Schedule, now: datetime, default_timezone) -> datetime:
    """The first run of a job without one: the next cron time after ``now``, or ``now`` for an interval."""
    _check(schedule)
    if not schedule.is_cron:
        return now
    skip = Schedule(cron_expression=schedule.cron_expression, timezone=schedule.timezone,
                    excludes=schedule.excludes)
    return next_time(skip, now, now, default_timezone)


def preview_times(schedule: Schedule, after: datetime, count: int, default_timezone="UTC") -> List[datetime]:
    """The next ``count`` times after ``after`` (aware UTC), as the return path would make them.

    For an interval ``after`` is the previous run's ``schedule_dts`` and the
    times are one, two, ... intervals on; for a cron expression, the matching
    times strictly after ``after``. Excludes apply. Raises RescheduleError
    when the schedule has no such time, ValueError for invalid fields.
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PREVIEW_COUNT:
        raise ValueError(f"count is a whole number from 1 to {MAX_PREVIEW_COUNT}")
    _check(schedule)
    times = []
    previous, earlier = after, None
    for _ in range(count):
        # Each run returns as soon as it is due: no time is missed.
        following = next_time(schedule, previous, previous, default_timezone, earlier=earlier)
        times.append(following)
        previous, earlier = following, previous
    return times

