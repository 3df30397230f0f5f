"""/jobs/<id>/runs: the whole history of a job, 50 a page, with filters."""
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, text

from jobrunner.admin_pages.history import Filters, history_query
from jobrunner.models import Run

from .conftest import get

START = datetime(2027, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def history(world, factory, dbsession):
    """120 runs a day apart: every third failed, the rest succeeded, two
    workers taking turns; the newest is still running."""
    second = factory.worker()
    world.pool.workers.append(second)
    rows = []
    for i in range(120):
        dts = START + timedelta(days=i)
        rows.append({
            "job_id": world.job.id, "schedule_dts": dts, "enqueue_dts": dts, "start_dts": dts,
            "return_dts": None if i == 119 else dts + timedelta(seconds=90),
            "return_success": None if i == 119 else i % 3 != 0,
            "worker_id": (world.worker if i % 2 else second).id, "is_manual": False,
            "schedule_children": True,
        })
    dbsession.execute(insert(Run), rows)
    dbsession.flush()
    return second


def run_ids(page):
    return [int(x) for x in re.findall(r'data-run-id="(\d+)"', page.text)]


def days(page):
    return re.findall(r'<td data-label="Scheduled">([\d-]+) ', page.text)


def test_pages_of_fifty_newest_first_without_gaps_or_repeats(viewer, world, history, dbsession):
    page = get(viewer, f"/jobs/{world.job.id}/runs")
    first = run_ids(page)
    assert len(first) == 50
    assert days(page)[0] == "2027-04-30" and days(page)[-1] == "2027-03-12"
    assert 'data-state="started"' in page.text
    assert "1 min 30 s" in page.text
    older = page.html.select_one("#older-page")["href"]
    second = get(viewer, older)
    third = get(viewer, second.html.select_one("#older-page")["href"])
    assert len(run_ids(second)) == 50 and len(run_ids(third)) == 20
    assert third.html.select_one("#older-page") is None
    every = first + run_ids(second) + run_ids(third)
    assert len(set(every)) == 120
    # Back again from the last page.
    back = get(viewer, third.html.select_one("#newer-page")["href"])
    assert run_ids(back) == run_ids(second)


def test_filters_by_result_worker_and_dates(viewer, world, history):
    base = f"/jobs/{world.job.id}/runs"
    failed = get(viewer, base + "?result=failed")
    assert set(re.findall(r'data-state="(\w+)"', failed.text)) == {"failed"}
    assert len(run_ids(failed)) == 40
    succeeded = get(viewer, base + "?result=succeeded")
    assert set(re.findall(r'data-state="(\w+)"', succeeded.text)) == {"succeeded"}
    by_worker = get(viewer, f"{base}?worker={history.id}")
    assert set(re.findall(r'<td data-label="Worker">([^<]*)</td>', by_worker.text)) == {history.title}
    # Local dates, both ends included.
    ranged = get(viewer, base + "?since=2027-01-02&until=2027-01-04")
    assert days(ranged) == ["2027-01-04", "2027-01-03", "2027-01-02"]
    # The filters stay on the next page's link.
    page = get(viewer, base + "?result=succeeded")
    assert "result=succeeded" in page.html.select_one("#older-page")["href"]


def test_bad_filters_are_a_400_page(viewer, world):
    for query in ("result=maybe", "since=yesterday", "worker=x", "before=nonsense"):
        res = get(viewer, f"/jobs/{world.job.id}/runs?{query}", status=400)
        assert res.html.select_one("#filter-error")


def test_who_may_see_a_history(viewer, anonymous, world, other_world):
    get(viewer, f"/jobs/{other_world.job.id}/runs", status=404)
    get(viewer, "/jobs/99999999/runs", status=404)
    res = anonymous.get(f"/jobs/{world.job.id}/runs", status=303)
    assert "/login?next=" in res.location


def test_the_history_query_walks_an_index(world, dbsession, is_postgres):
    """The page's query reads the (job_id, schedule_dts) index, never the
    whole run table (PostgreSQL's plan is checked in bench/run.py at a
    million runs)."""
    query = history_query(world.job.id, Filters(), timezone.utc).order_by(
        Run.schedule_dts.desc(), Run.id.desc()).limit(51)
    compiled = query.compile(dbsession.get_bind(), compile_kwargs={"literal_binds": True})
    if is_postgres:
        # A table of a few rows is read whole whatever the indexes; forbid
        # that to see which index the query can use.
        dbsession.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(row[0] for row in dbsession.execute(text(f"EXPLAIN {compiled}")))
    else:
        plan = " ".join(str(row) for row in dbsession.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "ix_run_job_id_schedule_dts" in plan, plan
