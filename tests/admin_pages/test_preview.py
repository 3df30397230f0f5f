"""GET /api/v1/job/schedule_preview/: the next times of a schedule."""
from .conftest import get

URL = "/api/v1/job/schedule_preview/"


def test_the_next_times_of_an_interval_keep_the_local_time_and_skip_excludes(viewer):
    # `after` without an offset is local time (Europe/Amsterdam).
    res = get(viewer, URL + "?reschedule_interval=2&reschedule_interval_type=DAY"
                            "&after=2027-01-10T06:00&count=3")
    assert res.json["times"] == ["2027-01-12T05:00:00+00:00", "2027-01-14T05:00:00+00:00",
                                 "2027-01-16T05:00:00+00:00"]
    res = get(viewer, URL + '?reschedule_interval=1&reschedule_interval_type=HOUR&after=2027-01-01T00:00'
                            '&reschedule_excludes=[{"start_time":"02:00","end_time":"03:59"}]')
    local_hours = [t[11:13] for t in res.json["times"]]
    assert res.json["times"][0] == "2027-01-01T00:00:00+00:00"
    assert len(res.json["times"]) == 5 and "01" not in local_hours and "02" not in local_hours


def test_invalid_fields_are_named(viewer):
    res = get(viewer, URL + "?reschedule_interval=0&reschedule_interval_type=DAY", status=400)
    assert list(res.json["errors"]) == ["reschedule_interval"]
    res = get(viewer, URL + "?reschedule_interval=x&reschedule_interval_type=YEAR&count=500"
                            "&reschedule_excludes=nope&colour=red", status=400)
    assert set(res.json["errors"]) == {"reschedule_interval", "reschedule_interval_type", "count",
                                       "reschedule_excludes", "colour"}
    res = get(viewer, URL + "?reschedule_interval=2", status=400)
    assert list(res.json["errors"]) == ["reschedule_interval_type"]
    res = get(viewer, URL + "?cron_expression=61 * * * *", status=400)
    assert "minute" in res.json["errors"]["cron_expression"]
    res = get(viewer, URL + "?cron_expression=@daily&reschedule_interval=1&reschedule_interval_type=DAY", status=400)
    assert set(res.json["errors"]) == {"cron_expression", "reschedule_interval"}
    res = get(viewer, URL + "?cron_expression=@daily&timezone=Mars/Base", status=400)
    assert list(res.json["errors"]) == ["timezone"]
    res = get(viewer, URL, status=400)
    assert set(res.json["errors"]) == {"reschedule_interval", "cron_expression"}


def test_the_next_times_of_a_cron_expression_in_the_jobs_time_zone(viewer):
    # 02:30 every day in Amsterdam: on 2027-03-28 that time is skipped by the
    # change to summer time and the run comes at the first instant after it.
    res = get(viewer, URL + "?cron_expression=30 2 * * *&timezone=Europe/Amsterdam"
                            "&after=2027-03-27T12:00:00%2B00:00&count=2")
    assert res.json["times"] == ["2027-03-28T01:00:00+00:00", "2027-03-29T00:30:00+00:00"]


def test_only_authenticated_callers(anonymous):
    res = anonymous.get(URL + "?reschedule_interval=1&reschedule_interval_type=DAY", status=401)
    assert res.json["error"] == "Authentication required."
