"""Tests of cron schedules, time zones, misfires, bounds and the preview."""
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobrunner.scheduling.cron import validate_cron_expression
from jobrunner.scheduling.reschedule import RescheduleError, next_schedule, validate_interval
from jobrunner.scheduling.schedule import Schedule, first_time, next_time, preview_times, schedule_errors
from jobrunner.scheduling.wallclock import is_gap_end, validate_timezone

UTC = timezone.utc
AMSTERDAM = "Europe/Amsterdam"


def utc(year, month, day, hour=0, minute=0, second=0):
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(zone, year, month, day, hour=0, minute=0, fold=0):
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold)


def cron_preview(expression, zone, after, count, excludes=()):
    schedule = Schedule(cron_expression=expression, timezone=zone, excludes=tuple(excludes))
    return preview_times(schedule, after, count)


# --- cron times over daylight-saving days

@pytest.mark.parametrize(
    "expression, zone, after, expected",
    [
        pytest.param("30 2 * * *", AMSTERDAM, utc(2027, 3, 27, 12),
                     [utc(2027, 3, 28, 1), utc(2027, 3, 29, 0, 30)], id="ams-spring-skipped-02:30-at-gap-end"),
        pytest.param("30 2 * * *", AMSTERDAM, utc(2027, 10, 30, 12),
                     [utc(2027, 10, 31, 0, 30), utc(2027, 11, 1, 1, 30)], id="ams-autumn-02:30-first-occurrence"),
        pytest.param("*/30 * * * *", AMSTERDAM, utc(2027, 3, 27, 23, 45),
                     [utc(2027, 3, 28, 0), utc(2027, 3, 28, 0, 30), utc(2027, 3, 28, 1), utc(2027, 3, 28, 1, 30)],
                     id="ams-spring-every-30-minutes-of-real-time"),
        pytest.param("*/30 * * * *", AMSTERDAM, utc(2027, 10, 30, 23, 45),
                     [utc(2027, 10, 31, 0), utc(2027, 10, 31, 0, 30), utc(2027, 10, 31, 1),
                      utc(2027, 10, 31, 1, 30), utc(2027, 10, 31, 2)],
                     id="ams-autumn-both-02:00-and-02:30"),
        pytest.param("0 * * * *", AMSTERDAM, utc(2027, 10, 30, 23, 30),
                     [utc(2027, 10, 31, 0), utc(2027, 10, 31, 1), utc(2027, 10, 31, 2)], id="ams-autumn-hourly"),
        pytest.param("@hourly", AMSTERDAM, utc(2027, 3, 28, 0, 30),
                     [utc(2027, 3, 28, 1), utc(2027, 3, 28, 2)], id="ams-spring-hourly-macro"),
        pytest.param("*/15 2 * * *", AMSTERDAM, utc(2027, 3, 27, 23),
                     [utc(2027, 3, 28, 1), utc(2027, 3, 29, 0), utc(2027, 3, 29, 0, 15)],
                     id="ams-spring-four-skipped-times-run-once"),
        pytest.param("*/20 2 * * *", AMSTERDAM, utc(2027, 10, 30, 23),
                     [utc(2027, 10, 31, 0), utc(2027, 10, 31, 0, 20), utc(2027, 10, 31, 0, 40),
                      utc(2027, 11, 1, 1)], id="ams-autumn-fixed-hour-runs-once"),
        pytest.param("0 2 * * *", "America/New_York", utc(2027, 3, 13, 12),
                     [utc(2027, 3, 14, 7), utc(2027, 3, 15, 6)], id="ny-spring-02:00-at-03:00-edt"),
        pytest.param("30 1 * * *", "America/New_York", utc(2027, 11, 6, 12),
                     [utc(2027, 11, 7, 5, 30), utc(2027, 11, 8, 6, 30)], id="ny-autumn-01:30-first-occurrence"),
        pytest.param("*/30 * * * *", "America/New_York", utc(2027, 11, 7, 5, 15),
                     [utc(2027, 11, 7, 5, 30), utc(2027, 11, 7, 6), utc(2027, 11, 7, 6, 30)],
                     id="ny-autumn-elapsed-time"),
        pytest.param("0 9 * * mon-fri", "Asia/Tokyo", utc(2027, 3, 26, 12),
                     [utc(2027, 3, 29, 0), utc(2027, 3, 30, 0)], id="tokyo-weekdays"),
        pytest.param("0 0 1 jan,jul *", "UTC", utc(2027, 1, 1),
                     [utc(2027, 7, 1), utc(2028, 1, 1)], id="utc-month-names"),
        pytest.param("@yearly", "UTC", utc(2027, 6, 1), [utc(2028, 1, 1), utc(2029, 1, 1)], id="utc-yearly"),
        pytest.param("0 12 * * 7", "UTC", utc(2027, 3, 1), [utc(2027, 3, 7, 12)], id="sunday-is-7-too"),
        pytest.param("0 12 13 * fri", "UTC", utc(2027, 3, 1), [utc(2027, 3, 5, 12), utc(2027, 3, 12, 12),
                     utc(2027, 3, 13, 12)], id="both-day-fields-either-matches"),
    ],
)
def test_cron_times(expression, zone, after, expected):
    assert cron_preview(expression, zone, after, len(expected)) == expected


def test_cron_next_time_is_strictly_after_the_previous_schedule():
    previous = utc(2027, 6, 1, 10)
    assert next_schedule(previous, None, None, [], "UTC", previous, cron_expression="0 10 * * *") == utc(2027, 6, 2, 10)


def test_cron_after_a_gap_end_run_does_not_run_the_gap_again():
    # The run of the skipped 02:30 happened at 03:00 CEST; the next is the next day's 02:30.
    gap_end = utc(2027, 3, 28, 1)
    result = next_schedule(gap_end, None, None, [], AMSTERDAM, gap_end, cron_expression="30 2 * * *")
    assert result == utc(2027, 3, 29, 0, 30)


@pytest.mark.parametrize("expression, expected", [
    ("*/15 0-6 * * *", "*/15 0-6 * * *"),
    ("  0   3 * * SUN ", "0 3 * * SUN"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@annually", "0 0 1 1 *"),
    ("@WEEKLY", "0 0 * * 0"),
    ("0 8-18/2 1,15 jan-jun mon-fri", "0 8-18/2 1,15 jan-jun mon-fri"),
    ("0 0 29 2 *", "0 0 29 2 *"),
])
def test_valid_cron_expressions(expression, expected):
    assert validate_cron_expression(expression) == expected


@pytest.mark.parametrize("expression, message", [
    ("0 0 * * * *", "5 fields"),
    ("* * * *", "5 fields"),
    ("61 * * * *", "bad minute"),
    ("0 24 * * *", "bad hour"),
    ("0 0 32 * *", "bad day-of-month"),
    ("0 0 30 2 *", "bad day-of-month"),
    ("0 0 * 13 *", "bad month"),
    ("0 0 * * 8", "bad day-of-week"),
    ("0 0 * foo *", "bad month"),
    ("0 0 * * mon#2", "bad day of week field"),
    ("0 0 L * *", "bad day of month field"),
    ("0 0 ? * *", "bad day of month field"),
    ("*/0 * * * *", "bad minute"),
    ("5-1 * * * *", "bad minute"),
    ("@reboot", "unknown cron macro"),
    ("", "5 fields"),
    (None, "5 fields"),
])
def test_invalid_cron_expressions(expression, message):
    with pytest.raises(ValueError, match=message):
        validate_cron_expression(expression)


def test_validate_timezone():
    assert validate_timezone("America/New_York") == "America/New_York"
    for name in ("Mars/Olympus", "", "../etc/passwd", None):
        with pytest.raises(ValueError, match="time zone"):
            validate_timezone(name)


# --- intervals keep the local time of day

@pytest.mark.parametrize("zone, after, expected_local_hours", [
    (AMSTERDAM, local(AMSTERDAM, 2027, 10, 30, 6), [18, 6, 18, 6]),
    (AMSTERDAM, local(AMSTERDAM, 2027, 3, 27, 6), [18, 6, 18, 6]),
    ("America/New_York", local("America/New_York", 2027, 11, 6, 6), [18, 6, 18, 6]),
    ("America/New_York", local("America/New_York", 2027, 3, 13, 6), [18, 6, 18, 6]),
    ("Asia/Tokyo", local("Asia/Tokyo", 2027, 3, 27, 6), [18, 6, 18, 6]),
])
def test_twelve_hours_stay_at_six_and_eighteen(zone, after, expected_local_hours):
    times = preview_times(Schedule(interval=12, interval_type="HOUR", timezone=zone), after, 4)
    assert [t.astimezone(ZoneInfo(zone)).hour for t in times] == expected_local_hours
    assert [t.astimezone(ZoneInfo(zone)).minute for t in times] == [0] * 4


def test_hourly_interval_through_both_changes():
    spring = preview_times(Schedule(interval=1, interval_type="HOUR", timezone=AMSTERDAM),
                           local(AMSTERDAM, 2027, 3, 28, 0, 30), 3)
    # 01:30, then 02:30 (skipped: the gap's end, 03:00), then 03:30.
    assert spring == [utc(2027, 3, 28, 0, 30), utc(2027, 3, 28, 1), utc(2027, 3, 28, 1, 30)]
    autumn = preview_times(Schedule(interval=30, interval_type="MINUTE", timezone=AMSTERDAM),
                           local(AMSTERDAM, 2027, 10, 31, 1, 30), 4)
    # 02:00 and 02:30 once each (first occurrence), then 03:00 CET.
    assert autumn == [utc(2027, 10, 31, 0), utc(2027, 10, 31, 0, 30), utc(2027, 10, 31, 2), utc(2027, 10, 31, 2, 30)]


def test_daily_time_inside_the_gap_comes_back_after_the_gap_day():
    # 02:30 runs at 03:00 on the spring day and at 02:30 again the day after:
    # the earlier schedule tells the calculator which slot the 03:00 run was.
    times = preview_times(Schedule(interval=1, interval_type="DAY", timezone=AMSTERDAM),
                          local(AMSTERDAM, 2027, 3, 27, 2, 30), 3)
    assert times == [utc(2027, 3, 28, 1), utc(2027, 3, 29, 0, 30), utc(2027, 3, 30, 0, 30)]
    gap_end, earlier = times[0], local(AMSTERDAM, 2027, 3, 27, 2, 30)
    assert next_schedule(gap_end, 1, "DAY", [], AMSTERDAM, gap_end,
                         earlier_schedule_dts=earlier) == utc(2027, 3, 29, 0, 30)
    # Without it, the stored 03:00 is all there is to go by.
    assert next_schedule(gap_end, 1, "DAY", [], AMSTERDAM, gap_end) == utc(2027, 3, 29, 1)


# --- excludes

def test_cron_time_inside_an_exclude_moves_to_the_next_matching_time():
    times = cron_preview("0 * * * *", "UTC", utc(2027, 6, 1, 8, 30), 3, excludes=[(time(9), time(11))])
    assert times == [utc(2027, 6, 1, 12), utc(2027, 6, 1, 13), utc(2027, 6, 1, 14)]


def test_excludes_are_local_time_for_cron_too():
    times = cron_preview("0 * * * *", AMSTERDAM, utc(2027, 6, 1, 6, 30), 1, excludes=[(time(9), time(11))])
    assert times == [utc(2027, 6, 1, 10)]  # 12:00 CEST


@pytest.mark.parametrize("expression, excludes", [
    ("0 3 * * *", [(time(2), time(4))]),
    ("*/5 * * * *", [(time(0), time(23, 59))]),
    ("0 9-17 * * *", [(time(9), time(12)), (time(12), time(17))]),
])
def test_cron_schedule_that_cannot_escape_its_excludes_fails(expression, excludes):
    with pytest.raises(RescheduleError, match="no time within a day escapes the reschedule excludes"):
        cron_preview(expression, "UTC", utc(2027, 6, 1), 1, excludes=excludes)


# --- misfires

@pytest.mark.parametrize("policy, expected", [("skip", utc(2027, 6, 5, 10)), ("run_once", utc(2027, 6, 4, 10))])
def test_misfire_policy_for_an_interval(policy, expected):
    previous, now = utc(2027, 6, 1, 10), utc(2027, 6, 4, 12)
    assert next_schedule(previous, 1, "DAY", [], "UTC", now, misfire_policy=policy) == expected


@pytest.mark.parametrize("policy, expected", [("skip", utc(2027, 6, 4, 12, 15)), ("run_once", utc(2027, 6, 4, 12))])
def test_misfire_policy_for_cron(policy, expected):
    previous, now = utc(2027, 6, 1, 10), utc(2027, 6, 4, 12, 5)
    result = next_schedule(previous, None, None, [], "UTC", now, cron_expression="*/15 * * * *",
                           misfire_policy=policy)
    assert result == expected


def test_run_once_then_continues_on_the_grid():
    schedule = Schedule(interval=1, interval_type="DAY", timezone=AMSTERDAM, misfire_policy="run_once")
    missed = next_time(schedule, local(AMSTERDAM, 2027, 6, 1, 8), local(AMSTERDAM, 2027, 6, 9, 13), "UTC")
    assert missed == local(AMSTERDAM, 2027, 6, 9, 8)
    assert next_time(schedule, missed, local(AMSTERDAM, 2027, 6, 9, 14), "UTC") == local(AMSTERDAM, 2027, 6, 10, 8)


@pytest.mark.parametrize("policy", ["skip", "run_once"])
def test_nothing_missed_gives_the_next_time_for_both_policies(policy):
    previous, now = utc(2027, 6, 1, 10), utc(2027, 6, 1, 10, 30)
    assert next_schedule(previous, 1, "HOUR", [], "UTC", now, misfire_policy=policy) == utc(2027, 6, 1, 11)
    assert next_schedule(previous, None, None, [], "UTC", now, cron_expression="0 * * * *",
                         misfire_policy=policy) == utc(2027, 6, 1, 11)


def test_run_once_skips_excluded_missed_times():
    previous, now = utc(2027, 6, 1, 6), utc(2027, 6, 1, 12, 30)
    result = next_schedule(previous, 1, "HOUR", [(time(11), time(12, 30))], "UTC", now, misfire_policy="run_once")
    assert result == utc(2027, 6, 1, 10)


# --- bounds

@pytest.mark.parametrize("interval, interval_type", [
    (2147483647, "HOUR"), (2147483647, "DAY"), (2147483647, "WEEK"), (2147483647, "MONTH"), (96000, "MONTH"),
])
def test_an_interval_past_the_calendar_is_a_reschedule_error(interval, interval_type):
    with pytest.raises(RescheduleError, match="before the year 9999"):
        next_schedule(utc(2027, 1, 1), interval, interval_type, [], AMSTERDAM, utc(2027, 1, 1))


def test_a_huge_interval_that_fits_the_calendar_is_computed():
    # 2**31 - 1 minutes is some 4,083 years: a time, though the API refuses it.
    result = next_schedule(utc(2027, 1, 1), 2147483647, "MINUTE", [], "UTC", utc(2027, 1, 1))
    assert result == utc(2027, 1, 1) + timedelta(minutes=2147483647)


@pytest.mark.parametrize("interval, interval_type, allowed", [
    (2147483647, "MINUTE", False), (52_596_000, "MINUTE", True), (876_601, "HOUR", False),
    (36_525, "DAY", True), (5_218, "WEEK", False), (1_200, "MONTH", True), (1_201, "MONTH", False),
])
def test_validate_interval_refuses_more_than_a_hundred_years(interval, interval_type, allowed):
    if allowed:
        validate_interval(interval, interval_type)
    else:
        with pytest.raises(ValueError, match="this interval is too large"):
            validate_interval(interval, interval_type)


def test_schedules_near_the_end_of_the_calendar_fail_cleanly():
    with pytest.raises(RescheduleError, match="before the year 9999"):
        next_schedule(utc(9998, 12, 31, 12), 1, "DAY", [], "Pacific/Kiritimati", utc(9998, 12, 31, 12))
    with pytest.raises(RescheduleError, match="before the year 9999"):
        next_schedule(utc(9998, 6, 1), None, None, [], "UTC", utc(9998, 6, 1), cron_expression="@yearly")


# --- preview and the schedule fields

def test_preview_of_an_interval_counts_from_the_previous_schedule():
    times = preview_times(Schedule(interval=90, interval_type="MINUTE", timezone="UTC",
                                   excludes=((time(11, 30), time(12, 15)),)), utc(2027, 6, 1, 9), 3)
    assert times == [utc(2027, 6, 1, 10, 30), utc(2027, 6, 1, 13, 30), utc(2027, 6, 1, 15)]


@pytest.mark.parametrize("count", [0, 101, "5", True])
def test_preview_count_is_checked(count):
    with pytest.raises(ValueError, match="count"):
        preview_times(Schedule(cron_expression="@daily"), utc(2027, 1, 1), count)


def test_preview_uses_the_default_time_zone_when_the_schedule_has_none():
    times = preview_times(Schedule(cron_expression="0 9 * * *"), utc(2027, 6, 1), 1, default_timezone=AMSTERDAM)
    assert times == [utc(2027, 6, 1, 7)]


def test_first_time():
    now = utc(2027, 6, 1, 8, 10)
    assert first_time(Schedule(interval=1, interval_type="DAY"), now, "UTC") == now
    assert first_time(Schedule(cron_expression="0 9 * * *", misfire_policy="run_once"), now, "UTC") == utc(2027, 6, 1, 9)


@pytest.mark.parametrize("schedule, fields", [
    (Schedule(interval=1, interval_type="DAY", cron_expression="@daily"), {"cron_expression", "reschedule_interval"}),
    (Schedule(cron_expression="61 * * * *"), {"cron_expression"}),
    (Schedule(cron_expression="@daily", timezone="Nowhere/Town"), {"timezone"}),
    (Schedule(interval=10**9, interval_type="HOUR"), {"reschedule_interval"}),
    (Schedule(interval=1, interval_type="YEAR"), {"reschedule_interval_type"}),
    (Schedule(interval=1), {"reschedule_interval_type"}),
    (Schedule(cron_expression="@daily", misfire_policy="later"), {"misfire_policy"}),
    (Schedule(cron_expression="@daily", excludes=(("9:00", "10:00"),)), {"reschedule_excludes"}),
])
def test_schedule_errors_name_the_fields(schedule, fields):
    assert set(schedule_errors(schedule)) == fields
    with pytest.raises(ValueError):
        preview_times(schedule, utc(2027, 1, 1), 1)


def test_a_valid_schedule_has_no_errors():
    assert schedule_errors(Schedule(cron_expression="@daily", timezone="Asia/Tokyo")) == {}
    assert schedule_errors(Schedule(interval=12, interval_type="HOUR", misfire_policy="run_once")) == {}
    assert schedule_errors(Schedule()) == {}


# --- properties

ZONES = ["UTC", AMSTERDAM, "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe", "America/Santiago"]
PROPERTY_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _field(low, high, names=()):
    value = st.integers(low, high).map(str) | st.sampled_from(list(names) or [str(low)])
    single = value
    ranged = st.tuples(st.integers(low, high), st.integers(low, high)).map(
        lambda pair: f"{min(pair)}-{max(pair)}")
    stepped = st.tuples(st.sampled_from(["*", f"{low}-{high}"]), st.integers(1, max(1, high - low))).map(
        lambda pair: f"{pair[0]}/{pair[1]}")
    item = single | ranged | stepped
    return st.just("*") | st.lists(item, min_size=1, max_size=3).map(",".join)


cron_expressions = st.tuples(
    _field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12, ["jan", "jun", "dec"]), _field(0, 7, ["mon", "sun"]),
).map(" ".join) | st.sampled_from(["@hourly", "@daily", "@weekly", "@monthly", "@yearly"])
instants = st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2035, 1, 1)).map(
    lambda naive: naive.replace(tzinfo=UTC))


def _matches(expression, naive):
    return next(CronSim(expression, naive - timedelta(seconds=1))) == naive


@PROPERTY_SETTINGS
@given(cron_expressions, st.sampled_from(ZONES), instants)
def test_property_cron_times_match_and_increase(expression, zone, after):
    expression = validate_cron_expression(expression)
    times = preview_times(Schedule(cron_expression=expression, timezone=zone), after, 5)
    tz = ZoneInfo(zone)
    assert times[0] > after
    assert all(earlier < later for earlier, later in zip(times, times[1:]))
    for moment in times:
        wall = moment.astimezone(tz).replace(tzinfo=None, fold=0)
        if not _matches(expression, wall):
            # A time skipped by a gap runs at the gap's end.
            assert is_gap_end(moment, tz)
            before = (moment - timedelta(microseconds=1)).astimezone(tz).replace(tzinfo=None)
            assert next(CronSim(expression, before)) < wall


@PROPERTY_SETTINGS
@given(st.integers(1, 3000), st.sampled_from(["MINUTE", "HOUR"]), st.sampled_from(ZONES), instants)
def test_property_interval_keeps_the_local_time_of_day(interval, interval_type, zone, after):
    tz = ZoneInfo(zone)
    after = after.replace(second=0, microsecond=0)
    times = preview_times(Schedule(interval=interval, interval_type=interval_type, timezone=zone), after, 6)
    step = timedelta(minutes=interval) if interval_type == "MINUTE" else timedelta(hours=interval)
    origin = after.astimezone(tz).replace(tzinfo=None, fold=0)
    assert all(earlier < later for earlier, later in zip([after] + times, times))
    for moment in times:
        wall = moment.astimezone(tz).replace(tzinfo=None, fold=0)
        # On the wall-time grid, or the end of a gap that swallowed a grid time.
        assert (wall - origin) % step == timedelta(0) or is_gap_end(moment, tz)


@PROPERTY_SETTINGS
@given(
    st.one_of(
        st.builds(lambda e: Schedule(cron_expression=e), cron_expressions),
        st.builds(lambda i, t: Schedule(interval=i, interval_type=t),
                  st.integers(1, 2**31 - 1) | st.integers(1, 100),
                  st.sampled_from(["MINUTE", "HOUR", "DAY", "WEEK", "MONTH"])),
    ),
    st.sampled_from(ZONES),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9998, 12, 31)).map(
        lambda naive: naive.replace(tzinfo=UTC)),
    st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=4000)),
    st.sampled_from(["skip", "run_once"]),
    st.lists(st.tuples(st.times(), st.times()), max_size=2),
)
def test_property_only_the_reschedule_error_escapes(schedule, zone, previous, age, policy, excludes):
    try:
        now = previous + age
    except OverflowError:
        now = previous
    try:
        result = next_schedule(previous, schedule.interval, schedule.interval_type, excludes, zone, now,
                               cron_expression=schedule.cron_expression, misfire_policy=policy)
    except RescheduleError:
        return
    assert result > previous
    assert result.year <= 9998
    if policy == "skip":
        assert result > now
