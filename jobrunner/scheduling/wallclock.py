"""Local wall-clock time in a job's time zone, and reschedule excludes.

Schedules are written in local wall time (``08:00 every day``, ``30 2 * * *``)
but runs happen at instants. ``resolve_wall_time`` is the one rule that turns
a local wall time into an instant:

* a wall time that exists once is that instant;
* a wall time that occurs twice (the clock is set back) is its first
  occurrence;
* a wall time skipped by the clock moving forward is the first instant after
  the gap (``02:30`` on a day the clock jumps from ``02:00`` to ``03:00`` is
  ``03:00``).

The mapping never goes backwards: a later wall time never gives an earlier
instant, so a series of increasing wall times gives a non-decreasing series of
instants (several wall times inside one gap give the same instant; callers
keep only the first).

Reschedule excludes are ``(start_time, end_time)`` pairs of local times of
day, both ends included; a pair whose start is after its end wraps over
midnight. They are checked against the local time a run actually happens.
"""

from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import Iterable, List, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc
_ONE_MICROSECOND = timedelta(microseconds=1)

ExcludeRange = Tuple[time, time]


def validate_timezone(name) -> str:
    """Return ``name`` if it is an IANA time zone name, else raise ValueError."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a time zone is an IANA name such as 'Europe/Amsterdam'")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}; expected an IANA name such as 'Europe/Amsterdam'")
    return name


def as_tzinfo(zone, default=None) -> tzinfo:
    """A tzinfo from a tzinfo or an IANA name; ``None`` means ``default``.

    ``default`` is itself a tzinfo or a name (the global setting). Raises
    ValueError for an unknown name or when neither is given.
    """
    if zone is None:
        zone = default
    if zone is None:
        raise ValueError("no time zone given and no default time zone")
    if isinstance(zone, tzinfo):
        return zone
    return ZoneInfo(validate_timezone(zone))


def wall_time(moment: datetime, tz: tzinfo) -> datetime:
    """The naive local wall time of an aware instant in ``tz``."""
    return moment.astimezone(tz).replace(tzinfo=None, fold=0)


def resolve_wall_time(naive: datetime, tz: tzinfo) -> datetime:
    """The instant (aware, UTC) of a naive local wall time in ``tz``; see the module doc."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if wall_time(first, tz) == naive:
        return first
    # Inside a gap. With fold=0 the wall time is read with the offset from
    # before the change, which lands after the gap; with fold=1 with the
    # offset from after it, which lands before. The end of the gap lies in
    # between: the first instant whose wall time is later than ``naive``.
    low = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = first
    if wall_time(low, tz) > naive or low >= high:
        return first  # not a plain gap (a zone with odd data): keep fold=0's answer
    while high - low > _ONE_MICROSECOND:
        middle = low + (high - low) // 2
        if wall_time(middle, tz) > naive:
            high = middle
        else:
            low = middle
    return high


def is_gap_end(moment: datetime, tz: tzinfo) -> bool:
    """Whether ``moment`` is the first instant after a gap in ``tz``'s wall time."""
    before = wall_time(moment - _ONE_MICROSECOND, tz)
    return wall_time(moment, tz) - before > _ONE_MICROSECOND


def is_excluded(local_time: time, exclude_ranges: Iterable[ExcludeRange]) -> bool:
    """Whether a naive local time of day lies inside any exclude (ends included)."""
    for start, end in exclude_ranges:
        if start <= end:
            if start <= local_time <= end:
                return True
        elif local_time >= start or local_time <= end:
            return True
    return False


def is_excluded_instant(moment: datetime, tz: tzinfo, exclude_ranges) -> bool:
    return bool(exclude_ranges) and is_excluded(moment.astimezone(tz).time(), exclude_ranges)


def _naive_time(value: time) -> time:
    # Excludes are local times of day; any tzinfo or fold on them is meaningless here.
    return value.replace(tzinfo=None, fold=0)


def exclude_ranges(excludes) -> List[ExcludeRange]:
    """``(start, end)`` pairs from pairs or from objects with ``start_time``/``end_time``."""
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
