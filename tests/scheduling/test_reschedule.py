"""Tests of the reschedule calculator."""

import calendar
import enum
import time as clock
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobrunner.scheduling.reschedule import RescheduleError, is_excluded, next_schedule
from jobrunner.scheduling.wallclock import is_gap_end, resolve_wall_time

UTC = timezone.utc
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def ams(year, month, day, hour=0, minute=0, second=0, fold=0):
    return datetime(year, month, day, hour, minute, second, tzinfo=AMSTERDAM, fold=fold)


def utc(year, month, day, hour=0, minute=0, second=0, microsecond=0):
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


# --- daylight saving (Europe/Amsterdam: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00)

@pytest.mark.parametrize(
    "last, interval, interval_type, now, expected",
    [
        pytest.param(ams(2026, 3, 28, 8), 1, "DAY", ams(2026, 3, 28, 9), utc(2026, 3, 29, 6),
                     id="day-spring-keeps-08:00"),
        pytest.param(ams(2026, 10, 24, 8), 1, "DAY", ams(2026, 10, 24, 9), utc(2026, 10, 25, 7),
                     id="day-autumn-keeps-08:00"),
        pytest.param(ams(2026, 3, 22, 8), 1, "WEEK", ams(2026, 3, 22, 9), utc(2026, 3, 29, 6),
                     id="week-spring-keeps-08:00"),
        pytest.param(ams(2026, 10, 18, 8), 1, "WEEK", ams(2026, 10, 18, 9), utc(2026, 10, 25, 7),
                     id="week-autumn-keeps-08:00"),
        pytest.param(ams(2026, 3, 15, 8), 1, "MONTH", ams(2026, 3, 15, 9), utc(2026, 4, 15, 6),
                     id="month-spring-keeps-08:00"),
        pytest.param(ams(2026, 3, 28, 2, 30), 1, "DAY", ams(2026, 3, 28, 3), utc(2026, 3, 29, 1),
                     id="day-missing-02:30-runs-at-the-end-of-the-gap"),
        pytest.param(ams(2026, 3, 27, 2, 30), 1, "DAY", ams(2026, 3, 29, 12), utc(2026, 3, 30, 0, 30),
                     id="day-after-the-gap-back-at-02:30"),
        pytest.param(ams(2026, 10, 24, 2, 30), 1, "DAY", ams(2026, 10, 24, 3), utc(2026, 10, 25, 0, 30),
                     id="day-ambiguous-02:30-takes-first-occurrence"),
        pytest.param(ams(2026, 10, 24, 2, 30), 1, "DAY", utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30),
                     id="day-now-on-first-occurrence-goes-to-next-day"),
        pytest.param(ams(2026, 3, 29, 1), 1, "HOUR", ams(2026, 3, 29, 1, 30), utc(2026, 3, 29, 1),
                     id="hour-spring-01:00-to-03:00-local"),
        pytest.param(ams(2026, 3, 29, 1), 2, "HOUR", ams(2026, 3, 29, 1, 30), utc(2026, 3, 29, 1),
                     id="two-hours-spring-01:00-to-03:00-local"),
        pytest.param(ams(2026, 10, 25, 2), 1, "HOUR", ams(2026, 10, 25, 2, 30), utc(2026, 10, 25, 2),
                     id="hour-autumn-02:00-summer-to-03:00-winter"),
        pytest.param(ams(2026, 10, 25, 1), 90, "MINUTE", ams(2026, 10, 25, 1, 30), utc(2026, 10, 25, 0, 30),
                     id="minutes-autumn-02:30-first-occurrence"),
    ],
)
def test_daylight_saving(last, interval, interval_type, now, expected):
    result = next_schedule(last, interval, interval_type, [], AMSTERDAM, now)
    assert result == expected
    assert result.tzinfo is UTC


def test_daily_local_hour_is_kept_for_a_whole_year():
    last = ams(2026, 1, 1, 8)
    for day_number in range(1, 366):
        now = last + timedelta(days=day_number - 1, hours=1)
        result = next_schedule(last, 1, "DAY", [], AMSTERDAM, now)
        local = result.astimezone(AMSTERDAM)
        assert (local.date(), local.time()) == (date(2026, 1, 1) + timedelta(days=day_number), time(8))


# --- months of 28, 29, 30 and 31 days

@pytest.mark.parametrize(
    "last_local, months, expected_local",
    [
        pytest.param(datetime(2026, 2, 10, 9), 1, datetime(2026, 3, 10, 9), id="feb-28-days"),
        pytest.param(datetime(2028, 2, 10, 9), 1, datetime(2028, 3, 10, 9), id="feb-29-days-leap"),
        pytest.param(datetime(2026, 4, 10, 9), 1, datetime(2026, 5, 10, 9), id="apr-30-days"),
        pytest.param(datetime(2026, 5, 10, 9), 1, datetime(2026, 6, 10, 9), id="may-31-days"),
        pytest.param(datetime(2026, 1, 31, 9), 1, datetime(2026, 3, 3, 9), id="jan-31-plus-31-days"),
        pytest.param(datetime(2028, 1, 31, 9), 1, datetime(2028, 3, 2, 9), id="jan-31-plus-31-days-leap"),
        pytest.param(datetime(2028, 2, 29, 9), 1, datetime(2028, 3, 29, 9), id="feb-29-plus-29-days"),
        pytest.param(datetime(2026, 2, 28, 9), 1, datetime(2026, 3, 28, 9), id="feb-28-plus-28-days"),
        pytest.param(datetime(2026, 4, 30, 9), 1, datetime(2026, 5, 30, 9), id="apr-30-plus-30-days"),
        pytest.param(datetime(2026, 3, 31, 9), 1, datetime(2026, 5, 1, 9), id="mar-31-plus-31-days"),
        pytest.param(datetime(2026, 1, 15, 9), 3, datetime(2026, 4, 15, 9), id="three-months"),
        pytest.param(datetime(2026, 12, 31, 9), 2, datetime(2027, 3, 3, 9), id="dec-31-two-months"),
    ],
)
def test_month_adds_the_days_of_each_month(last_local, months, expected_local):
    last = last_local.replace(tzinfo=AMSTERDAM)
    result = next_schedule(last, months, "MONTH", [], AMSTERDAM, last + timedelta(minutes=1))
    assert result == expected_local.replace(tzinfo=AMSTERDAM)


# --- old last schedules

@pytest.mark.parametrize(
    "last, interval, interval_type, now, expected",
    [
        pytest.param(ams(2001, 1, 1, 8), 1, "DAY", ams(2026, 6, 15, 12), ams(2026, 6, 16, 8), id="day"),
        pytest.param(ams(2001, 1, 1, 8), 1, "DAY", ams(2026, 6, 15, 7), ams(2026, 6, 15, 8), id="day-later-today"),
        pytest.param(ams(2000, 1, 3, 8), 1, "WEEK", ams(2026, 6, 15, 12), ams(2026, 6, 22, 8), id="week-monday"),
        pytest.param(ams(2000, 1, 3, 8), 3, "DAY", ams(2026, 6, 15, 12), ams(2026, 6, 18, 8), id="three-days"),
        pytest.param(ams(1990, 1, 15, 8), 1, "MONTH", ams(2026, 6, 15, 12), ams(2026, 7, 15, 8), id="month"),
        pytest.param(ams(1990, 1, 15, 8), 1, "MONTH", ams(2026, 6, 15, 7), ams(2026, 6, 15, 8), id="month-later-today"),
        pytest.param(ams(1990, 1, 15, 8), 5, "MONTH", ams(2026, 6, 15, 12), ams(2026, 9, 15, 8), id="five-months"),
        pytest.param(ams(2026, 1, 31, 8), 1, "MONTH", ams(2026, 3, 3, 0), ams(2026, 3, 3, 8),
                     id="month-drifted-slot-later-today"),
        pytest.param(utc(1990, 1, 1), 1, "HOUR", utc(2026, 6, 15, 12, 30), utc(2026, 6, 15, 13), id="hour"),
        pytest.param(utc(1990, 1, 1), 1, "MINUTE", utc(2026, 6, 15, 12, 30, 5), utc(2026, 6, 15, 12, 31), id="minute"),
    ],
)
def test_old_last_schedule_gives_first_future_slot(last, interval, interval_type, now, expected):
    started = clock.perf_counter()
    result = next_schedule(last, interval, interval_type, [], AMSTERDAM, now)
    assert clock.perf_counter() - started < 0.05
    assert result == expected


def test_old_month_schedule_past_the_28th_drifts_then_jumps():
    last = ams(1970, 1, 31, 8)
    now = ams(2026, 6, 15, 12)
    started = clock.perf_counter()
    result = next_schedule(last, 1, "MONTH", [], AMSTERDAM, now)
    assert clock.perf_counter() - started < 0.05
    assert result == stepwise_calendar_schedule(last, 1, "MONTH", AMSTERDAM, now)


def test_old_odd_minute_interval_stays_on_the_grid():
    last = utc(1995, 3, 7, 4, 11, 13, 250)
    now = utc(2026, 6, 15, 12, 0)
    step = timedelta(minutes=7)
    result = next_schedule(last, 7, "MINUTE", [], UTC, now)
    assert (result - last) % step == timedelta(0)
    assert result - step <= now < result


# --- boundaries and arguments

def test_now_exactly_on_a_slot_gives_the_next_slot():
    last = utc(2026, 6, 1, 12)
    assert next_schedule(last, 1, "HOUR", [], UTC, utc(2026, 6, 1, 15)) == utc(2026, 6, 1, 16)
    assert next_schedule(last, 1, "DAY", [], UTC, utc(2026, 6, 3, 12)) == utc(2026, 6, 4, 12)


def test_last_schedule_in_the_future_moves_on_by_one_interval():
    last = utc(2026, 6, 1, 12)
    now = utc(2026, 5, 1)
    assert next_schedule(last, 1, "HOUR", [], UTC, now) == utc(2026, 6, 1, 13)
    assert next_schedule(last, 1, "DAY", [], UTC, now) == utc(2026, 6, 2, 12)


def test_microseconds_are_kept():
    last = utc(2026, 6, 1, 12, 0, 0, 123456)
    result = next_schedule(last, 1, "DAY", [], AMSTERDAM, utc(2026, 6, 1, 13))
    assert result == utc(2026, 6, 2, 12, 0, 0, 123456)


def test_interval_type_may_be_a_str_enum():
    class IntervalType(str, enum.Enum):
        DAY = "DAY"

    last = utc(2026, 6, 1, 12)
    assert next_schedule(last, 1, IntervalType.DAY, [], UTC, last) == utc(2026, 6, 2, 12)


def test_excludes_may_be_objects_with_start_and_end_time():
    class Exclude:
        start_time, end_time = time(13), time(14)

    last = utc(2026, 6, 1, 12)
    assert next_schedule(last, 1, "HOUR", [Exclude()], UTC, last) == utc(2026, 6, 1, 15)


@pytest.mark.parametrize(
    "interval, interval_type, last, now",
    [
        pytest.param(0, "DAY", utc(2026, 1, 1), utc(2026, 1, 2), id="zero-interval"),
        pytest.param(-1, "DAY", utc(2026, 1, 1), utc(2026, 1, 2), id="negative-interval"),
        pytest.param(1, "YEAR", utc(2026, 1, 1), utc(2026, 1, 2), id="unknown-type"),
        pytest.param(1, "day", utc(2026, 1, 1), utc(2026, 1, 2), id="lower-case-type"),
        pytest.param(1, "DAY", datetime(2026, 1, 1), utc(2026, 1, 2), id="naive-last"),
        pytest.param(1, "DAY", utc(2026, 1, 1), datetime(2026, 1, 2), id="naive-now"),
    ],
)
def test_malformed_arguments_are_rejected(interval, interval_type, last, now):
    with pytest.raises(ValueError):
        next_schedule(last, interval, interval_type, [], UTC, now)


# --- excludes

@pytest.mark.parametrize(
    "last, interval, interval_type, excludes, now, expected",
    [
        pytest.param(ams(2026, 6, 1, 10), 1, "HOUR", [(time(11), time(12, 30))], ams(2026, 6, 1, 10, 5),
                     ams(2026, 6, 1, 13), id="hour-moves-past-exclude"),
        pytest.param(ams(2026, 6, 1, 10), 1, "HOUR", [(time(11), time(12))], ams(2026, 6, 1, 10, 5),
                     ams(2026, 6, 1, 13), id="end-time-is-included"),
        pytest.param(ams(2026, 6, 1, 10), 1, "HOUR", [(time(11), time(11, 59, 59))], ams(2026, 6, 1, 10, 5),
                     ams(2026, 6, 1, 12), id="just-after-end-escapes"),
        pytest.param(ams(2026, 6, 1, 21), 1, "HOUR", [(time(22), time(2))], ams(2026, 6, 1, 21, 5),
                     ams(2026, 6, 2, 3), id="wrapping-exclude-22-to-02"),
        pytest.param(ams(2026, 6, 1, 21, 30), 1, "HOUR", [(time(22), time(2))], ams(2026, 6, 1, 21, 35),
                     ams(2026, 6, 2, 2, 30), id="wrapping-exclude-ends-at-02:00"),
        pytest.param(ams(2026, 6, 1, 21, 15), 45, "MINUTE", [(time(22), time(2)), (time(2), time(5))],
                     ams(2026, 6, 1, 21, 20), ams(2026, 6, 2, 5, 30), id="adjacent-excludes"),
        pytest.param(ams(2026, 6, 1, 8), 25, "HOUR", [(time(0), time(20))], ams(2026, 6, 1, 8, 5),
                     ams(2026, 6, 14, 21), id="25-hours-walks-the-clock-to-escape"),
        pytest.param(ams(2026, 6, 1, 0, 0, 30), 1, "MINUTE", [(time(0), time(23, 59))], ams(2026, 6, 1, 0, 5),
                     ams(2026, 6, 1, 23, 59, 30), id="half-minute-grid-escapes-00:00-23:59"),
        pytest.param(ams(2026, 6, 1, 8), 1, "DAY", [(time(9), time(17))], ams(2026, 6, 1, 8, 5),
                     ams(2026, 6, 2, 8), id="day-outside-exclude"),
        pytest.param(ams(2026, 3, 27, 2, 30), 1, "DAY", [(time(3), time(3, 59))], ams(2026, 3, 28, 3),
                     ams(2026, 3, 30, 2, 30), id="day-moved-into-exclude-by-the-gap-moves-on"),
    ],
)
def test_excluded_candidate_moves_on(last, interval, interval_type, excludes, now, expected):
    result = next_schedule(last, interval, interval_type, excludes, AMSTERDAM, now)
    assert result == expected


@pytest.mark.parametrize(
    "last, interval, interval_type, excludes",
    [
        pytest.param(ams(2026, 6, 1, 8), 1, "MINUTE", [(time(0), time(23, 59))], id="minute-grid-00:00-23:59"),
        pytest.param(ams(2026, 6, 1, 8, 0, 30), 1, "HOUR", [(time(0), time(23, 59, 59, 999999))],
                     id="whole-day"),
        pytest.param(ams(2026, 6, 1, 8), 7, "MINUTE", [(time(0), time(12)), (time(12), time(23, 59, 59, 999999))],
                     id="two-halves"),
        pytest.param(ams(2026, 6, 1, 8), 5, "HOUR", [(time(12), time(11, 59, 59, 999999))],
                     id="wrapping-whole-day"),
        pytest.param(ams(2026, 6, 1, 4), 6, "HOUR", [(time(3), time(5)), (time(9), time(11)),
                                                     (time(15), time(17)), (time(21), time(23))],
                     id="every-grid-point-excluded"),
        pytest.param(ams(2026, 6, 1, 8), 1, "DAY", [(time(7), time(9))], id="day-time-excluded"),
        pytest.param(ams(2026, 6, 1, 8), 2, "WEEK", [(time(8), time(8))], id="week-time-excluded-exactly"),
        pytest.param(ams(2026, 6, 1, 8), 1, "MONTH", [(time(22), time(8, 30))], id="month-time-in-wrapping-exclude"),
    ],
)
def test_no_escape_raises(last, interval, interval_type, excludes):
    started = clock.perf_counter()
    with pytest.raises(RescheduleError, match="no time within a day escapes the reschedule excludes"):
        next_schedule(last, interval, interval_type, excludes, AMSTERDAM, last + timedelta(minutes=5))
    assert clock.perf_counter() - started < 0.5


def test_amsterdam_excludes_are_local_time():
    # 07:00 UTC is 09:00 in Amsterdam summer time, inside the local exclude.
    last = utc(2026, 6, 1, 6)
    result = next_schedule(last, 1, "HOUR", [(time(9), time(9, 30))], AMSTERDAM, last)
    assert result == utc(2026, 6, 1, 8)


@pytest.mark.parametrize(
    "local_time, excluded",
    [
        (time(21, 59, 59), False),
        (time(22), True),
        (time(23, 59, 59, 999999), True),
        (time(0), True),
        (time(2), True),
        (time(2, 0, 0, 1), False),
        (time(12), False),
    ],
)
def test_is_excluded_wrapping_range(local_time, excluded):
    assert is_excluded(local_time, [(time(22), time(2))]) is excluded


# --- properties

ZONES = [ZoneInfo(name) for name in (
    "UTC", "Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata",
)]
INTERVAL_RANGES = {"MINUTE": (1, 200), "HOUR": (1, 30), "DAY": (1, 10), "WEEK": (1, 4), "MONTH": (1, 3)}


def reference_instant(naive, tz):
    """Local wall time to instant, the slow way: a skipped time runs at the first existing minute after it."""
    if wall_time_exists(naive.date(), naive.time(), tz):
        return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    later = naive.replace(second=0, microsecond=0)
    while True:
        later += timedelta(minutes=1)
        if wall_time_exists(later.date(), later.time(), tz):
            return later.replace(tzinfo=tz).astimezone(UTC)


def reference_slots(last, interval, interval_type, tz):
    """The grid of local wall times, one step at a time, straight from the rules."""
    slot = last.astimezone(tz).replace(tzinfo=None, fold=0)
    while True:
        if interval_type == "MONTH":
            local_date = slot.date()
            for _ in range(interval):
                local_date += timedelta(days=calendar.monthrange(local_date.year, local_date.month)[1])
            slot = datetime.combine(local_date, slot.time())
        else:
            slot += interval * {"MINUTE": timedelta(minutes=1), "HOUR": timedelta(hours=1),
                                "DAY": timedelta(days=1), "WEEK": timedelta(weeks=1)}[interval_type]
        yield slot


def stepwise_schedule(last, interval, interval_type, tz, now, excludes=()):
    """One step at a time; the reference for every interval type."""
    previous = last
    for slot in reference_slots(last, interval, interval_type, tz):
        instant = reference_instant(slot, tz)
        if instant <= previous:
            continue
        previous = instant
        if instant > now and not is_excluded(instant.astimezone(tz).time(), excludes):
            return instant


def stepwise_calendar_schedule(last, interval, interval_type, tz, now):
    return stepwise_schedule(last, interval, interval_type, tz, now)


def absolute_step(interval, interval_type):
    return timedelta(minutes=interval) if interval_type == "MINUTE" else timedelta(hours=interval)


def wall_time_exists(local_date, wall_time, tz):
    local = datetime.combine(local_date, wall_time, tzinfo=tz)
    return local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None)


moments = st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2035, 1, 1)).map(
    lambda naive: naive.replace(tzinfo=UTC)
)
exclude_times = st.one_of(
    st.times(),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
)
exclude_lists = st.lists(st.tuples(exclude_times, exclude_times), max_size=3)


@st.composite
def schedules(draw, interval_types=tuple(INTERVAL_RANGES), excludes=st.just([]), max_age=timedelta(days=3 * 366)):
    interval_type = draw(st.sampled_from(interval_types))
    low, high = INTERVAL_RANGES[interval_type]
    last = draw(moments)
    age = draw(st.timedeltas(min_value=timedelta(days=-2), max_value=max_age))
    return {
        "last_schedule_dts": last,
        "interval": draw(st.integers(low, high)),
        "interval_type": interval_type,
        "excludes": draw(excludes),
        "tz": draw(st.sampled_from(ZONES)),
        "now": last + age,
    }


PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(schedules())
def test_property_result_is_utc_and_after_now(schedule):
    result = next_schedule(**schedule)
    assert result.tzinfo is UTC
    assert result > schedule["now"]
    assert result > schedule["last_schedule_dts"]


@PROPERTY_SETTINGS
@given(schedules(interval_types=("MINUTE", "HOUR"), max_age=timedelta(days=20 * 366)))
# Chile's clocks jump from 24:00 to 01:00: the grid time 00:00 runs at 01:00.
@example({"last_schedule_dts": datetime(2022, 6, 21, 21, 20, tzinfo=UTC), "interval": 112,
          "interval_type": "MINUTE", "excludes": [], "tz": ZoneInfo("America/Santiago"),
          "now": datetime(2030, 9, 8, 2, 8, tzinfo=UTC)})
def test_property_minute_and_hour_results_lie_on_the_local_wall_time_grid(schedule):
    # Replaces the grid of absolute time that MINUTE and HOUR used to follow:
    # they now keep the local time of day across daylight-saving changes.
    result = next_schedule(**schedule)
    tz = schedule["tz"]
    step = absolute_step(schedule["interval"], schedule["interval_type"])
    last, now = schedule["last_schedule_dts"], schedule["now"]
    origin = last.astimezone(tz).replace(tzinfo=None, fold=0)
    result_wall = result.astimezone(tz).replace(tzinfo=None, fold=0)
    if not is_gap_end(result, tz):
        assert (result_wall - origin) % step == timedelta(0)
    assert result_wall > origin or result > last
    grid_wall = result_wall
    if (result_wall - origin) % step:
        # A gap's end: the grid time is the last one before it, in the gap.
        grid_wall = origin + ((result_wall - origin) // step) * step
        assert resolve_wall_time(grid_wall, tz) == result
    # The grid time one step earlier was not in the future yet.
    assert reference_instant(grid_wall - step, tz) <= max(now, last) or grid_wall - step <= origin


@PROPERTY_SETTINGS
@given(schedules(interval_types=("MINUTE", "HOUR"), max_age=timedelta(days=4)))
def test_property_minute_and_hour_match_one_step_at_a_time(schedule):
    result = next_schedule(**schedule)
    expected = stepwise_schedule(
        schedule["last_schedule_dts"], schedule["interval"], schedule["interval_type"],
        schedule["tz"], schedule["now"],
    )
    assert result == expected


@PROPERTY_SETTINGS
@given(schedules(interval_types=("DAY", "WEEK", "MONTH")))
def test_property_calendar_result_matches_one_step_at_a_time(schedule):
    result = next_schedule(**schedule)
    expected = stepwise_calendar_schedule(
        schedule["last_schedule_dts"], schedule["interval"], schedule["interval_type"],
        schedule["tz"], schedule["now"],
    )
    assert result == expected


@PROPERTY_SETTINGS
@given(schedules(interval_types=("DAY", "WEEK")))
def test_property_day_and_week_keep_the_local_time_of_day(schedule):
    tz = schedule["tz"]
    result = next_schedule(**schedule).astimezone(tz)
    last_local = schedule["last_schedule_dts"].astimezone(tz)
    wall_time = last_local.time().replace(fold=0)
    step_days = schedule["interval"] * (7 if schedule["interval_type"] == "WEEK" else 1)
    assert (result.date() - last_local.date()).days % step_days == 0
    if wall_time_exists(result.date(), wall_time, tz):
        assert result.time() == wall_time


@PROPERTY_SETTINGS
@given(schedules(excludes=exclude_lists, max_age=timedelta(days=4)))
def test_property_result_escapes_the_excludes(schedule):
    excludes, tz = schedule["excludes"], schedule["tz"]
    last, now = schedule["last_schedule_dts"], schedule["now"]
    try:
        result = next_schedule(**schedule)
    except RescheduleError:
        if schedule["interval_type"] in ("DAY", "WEEK", "MONTH"):
            wall_time = last.astimezone(tz).time().replace(fold=0)
            assert is_excluded(wall_time, excludes)
        else:
            # Every local time of day the grid reaches within two days is excluded.
            step = absolute_step(schedule["interval"], schedule["interval_type"])
            slots = reference_slots(last, schedule["interval"], schedule["interval_type"], tz)
            for _ in range(int(timedelta(days=2) / step) + 1):
                slot = next(slots)
                assert is_excluded(reference_instant(slot, tz).astimezone(tz).time(), excludes)
        return
    assert result > now
    assert not is_excluded(result.astimezone(tz).time(), excludes)
    # It is the first grid time after now that escapes.
    expected = stepwise_schedule(last, schedule["interval"], schedule["interval_type"], tz, now, excludes)
    assert result == expected


@PROPERTY_SETTINGS
@given(
    schedules(interval_types=("DAY", "WEEK", "MONTH")),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=12)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=11)),
)
def test_property_calendar_excluded_wall_time_always_raises(schedule, before, after):
    wall = schedule["last_schedule_dts"].astimezone(schedule["tz"]).replace(tzinfo=None, fold=0)
    # An exclude around the wall-clock time; it wraps over midnight when it crosses it.
    schedule["excludes"] = [((wall - before).time(), (wall + after).time())]
    with pytest.raises(RescheduleError):
        next_schedule(**schedule)
