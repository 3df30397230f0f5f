"""The dashboard in a real browser (Debian's Chromium through Playwright),
against pserve on loopback. A test worker plays the worker daemon's part over
the signed REST API, so each state change happens at a moment the test knows.
"""
import os
import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from .conftest import PHONE, REPO
from jobrunner.models import KillRequest, Project, Worker, WorkerPool

from .live import PASSWORD, TIMEZONE, TestWorker, iso, utcnow

pytestmark = pytest.mark.browser

LIVE_WITHIN_MS = 2000  # the promise: a change shows within 2 s


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def wait_until(condition, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def shows_within_2s(locator):
    """Seconds until the locator shows (at most 2 s, else the test fails)."""
    started = time.monotonic()
    # wait_for watches the page continuously; expect() polls at growing
    # intervals and would blur the figure.
    locator.wait_for(state="visible", timeout=LIVE_WITHIN_MS)
    return time.monotonic() - started


def zoned(iso, fmt="%Y-%m-%d %H:%M:%S"):
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(TIMEZONE)).strftime(fmt)


def no_horizontal_overflow(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def screenshot(page, path, **kw):
    page.screenshot(path=str(path), **kw)
    print(f"screenshot: {path}")


# --- logging in -------------------------------------------------------------------


def test_login_says_when_the_password_is_wrong_then_logs_in_and_out(open_page, artifacts_dir):
    page = open_page()
    page.goto("/jobs")
    assert "/login?next=" in page.url
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator(".form-error")).to_contain_text("Wrong username or password.")
    assert page.locator("input[name=username]").input_value() == "alice"
    screenshot(page, artifacts_dir / "login-wrong-password-1280.png")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/jobs")
    expect(page.locator("#live-badge")).to_have_attribute("data-state", "live")
    page.click("text=Log out")
    page.wait_for_url("**/login")
    page.goto("/")
    assert "/login" in page.url


def test_a_user_who_sees_no_project_is_told_so(open_page):
    page = open_page("nora")
    expect(page.locator("#no-project-notice")).to_be_visible()
    expect(page.locator("#section-scheduled .placeholder")).to_have_text("Nothing scheduled.")


# --- live -------------------------------------------------------------------------


def test_a_run_goes_from_scheduled_to_completed_without_a_reload(open_page, data, worker, artifacts_dir):
    page = open_page("alice")
    expect(page.locator("#live-badge")).to_have_attribute("data-state", "live")
    page.evaluate("window.sameDocument = true")
    job_id = data.job("Live flow job")

    def row(state):
        return page.locator(f"#section-{state} li[data-run-id='{run_id}']")

    latencies = {}
    run_id = data.run(job_id)
    latencies["scheduled"] = shows_within_2s(row("scheduled"))
    worker.claim(run_id)
    latencies["in_queue"] = shows_within_2s(row("in_queue"))
    expect(row("scheduled")).to_have_count(0)
    expect(row("in_queue")).to_contain_text("on build-01")
    worker.start(run_id, pid=31337)
    latencies["started"] = shows_within_2s(row("started"))
    expect(row("started")).to_contain_text("pid 31337")
    expect(row("in_queue")).to_have_count(0)
    worker.write_log(run_id, "Exporting 1200 rows\n<b>not bold</b>\ndone\n")
    worker.finish(run_id, success=True)
    latencies["completed"] = shows_within_2s(row("last_completed").locator(".state-succeeded"))
    expect(row("started")).to_have_count(0)
    assert page.evaluate("window.sameDocument") is True, "the page was reloaded"
    print("seconds from each change to the page:", {k: round(v, 2) for k, v in latencies.items()})

    row("last_completed").locator("a.run-id").click()
    page.wait_for_url(f"**/runs/{run_id}")
    expect(page.locator("#run-log")).to_have_text("Exporting 1200 rows\n<b>not bold</b>\ndone\n")
    expect(page.locator("#run-result")).to_have_text("success")


def test_the_log_grows_while_the_run_goes_on_and_stays_text(open_page, data, worker, artifacts_dir):
    job_id = data.job("Nightly import", script="python3 -m imports.nightly")
    run_id = data.run(job_id)
    worker.claim(run_id)
    worker.start(run_id, pid=4711)
    lines = [
        "2024-05-03 02:00:01 INFO  connecting to warehouse db-03",
        "2024-05-03 02:00:02 INFO  <script>window.injected = true</script>",
        '2024-05-03 02:00:02 INFO  <img src=x onerror="window.injected = true">',
    ]
    worker.write_log(run_id, "\n".join(lines) + "\n")
    page = open_page("victor")
    page.goto(f"/runs/{run_id}")
    log = page.locator("#run-log")
    expect(log).to_contain_text("<script>window.injected = true</script>")
    expect(page.locator("#run-state")).to_have_text("Started")
    page.evaluate("window.sameDocument = true")
    for number in range(1, 13):
        lines.append(f"2024-05-03 02:00:{10 + number:02d} INFO  imported batch {number}/12 (5000 rows)")
    worker.write_log(run_id, "\n".join(lines) + "\n")
    started = time.monotonic()
    expect(log).to_contain_text("imported batch 12/12", timeout=LIVE_WITHIN_MS)
    print(f"the log grew on the page after {time.monotonic() - started:.2f} s")
    assert page.locator("#run-log *").count() == 0, "log text became markup"
    assert page.evaluate("window.injected") is None
    run = worker.request("GET", f"/api/v1/run/{run_id}/")
    expect(page.locator("#run-details time").nth(2)).to_have_attribute(
        "title", f"{zoned(run['start_dts'])} {TIMEZONE}"
    )
    screenshot(page, artifacts_dir / "run-log-started-1280.png", full_page=True)

    lines.append("2024-05-03 02:01:00 ERROR warehouse closed the connection")
    worker.write_log(run_id, "\n".join(lines) + "\n")
    worker.finish(run_id, success=False)
    expect(page.locator("#run-result")).to_have_text("failure", timeout=LIVE_WITHIN_MS)
    expect(log).to_contain_text("warehouse closed the connection", timeout=LIVE_WITHIN_MS)
    assert page.evaluate("window.sameDocument") is True
    screenshot(page, artifacts_dir / "run-log-1280.png", full_page=True)


def test_the_badge_says_when_the_live_connection_is_lost_and_recovers(open_page):
    page = open_page("alice")
    badge = page.locator("#live-badge")
    expect(badge).to_have_attribute("data-state", "live")
    page.route("**/dashboard/overview.json*", lambda route: route.abort())
    expect(badge).to_have_attribute("data-state", "lost", timeout=LIVE_WITHIN_MS)
    expect(badge).to_contain_text("Connection lost")
    page.unroute("**/dashboard/overview.json*")
    expect(badge).to_have_attribute("data-state", "live", timeout=6000)
    expect(badge).to_have_text("Live")

    page.context.clear_cookies()
    expect(badge).to_have_attribute("data-state", "ended", timeout=6000)
    badge.get_by_role("link", name="log in").click()
    page.wait_for_url("**/login?next=%2F")


# --- actions ----------------------------------------------------------------------


def manual_runs(worker, job_id):
    return worker.request("GET", f"/api/v1/run/?job={job_id}&is_manual=true")["objects"]


def test_a_project_admin_schedules_a_job_now_with_or_without_children(open_page, data, worker):
    job_id = data.job("Run me now")
    page = open_page("alice")
    page.goto(f"/jobs/{job_id}")
    # The first refresh fills the page and moves the form: click after it.
    expect(page.locator("#live-badge")).to_have_attribute("data-state", "live")
    page.uncheck("#schedule-children")
    page.click("#schedule-now")
    first = wait_until(lambda: manual_runs(worker, job_id))[0]
    assert first["schedule_children"] is False
    expect(page.locator("#toast")).to_contain_text(f"Run #{first['id']} scheduled, without its children")
    expect(page.locator(f"#job-runs tr[data-run-id='{first['id']}']")).to_contain_text("Scheduled")

    worker.claim(first["id"])
    worker.start(first["id"])
    worker.finish(first["id"])
    expect(page.locator(f"#job-runs tr[data-run-id='{first['id']}']")).to_contain_text(
        "Succeeded", timeout=LIVE_WITHIN_MS
    )
    page.check("#schedule-children")
    page.click("#schedule-now")
    runs = wait_until(lambda: [r for r in manual_runs(worker, job_id) if r["id"] != first["id"]])
    assert runs[0]["schedule_children"] is True
    expect(page.locator(f"#job-runs tr[data-run-id='{runs[0]['id']}']")).to_be_visible(timeout=LIVE_WITHIN_MS)


def test_a_project_admin_kills_a_started_run(open_page, data, worker, artifacts_dir):
    job_id = data.job("Long running export", script="sleep 3600")
    run_id = data.run(job_id)
    worker.claim(run_id)
    worker.start(run_id, pid=5150)
    page = open_page("alice")
    page.goto(f"/runs/{run_id}")
    kill = page.locator("#kill-run")
    expect(kill).to_be_visible()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    kill.click()
    requests_seen = wait_until(worker.kill_requests)
    assert [k["run"] for k in requests_seen] == [f"/api/v1/run/{run_id}/"]
    assert "Kill run" in dialogs[0]
    expect(kill).to_have_text("Kill requested…")
    expect(page.locator("#kill-requests li")).to_contain_text("waiting for the worker")

    worker.execute_kill(requests_seen[0])
    worker.write_log(run_id, "killed by request\n")
    worker.finish(run_id, success=False)
    expect(page.locator("#run-result")).to_have_text("failure: killed on request", timeout=LIVE_WITHIN_MS)
    expect(page.locator("#run-state")).to_have_text("Killed")
    expect(page.locator("#kill-requests li")).to_contain_text("executed")
    expect(kill).to_be_hidden()
    assert worker.kill_requests() == []

    # Killed, not just failed, everywhere else too: the job's runs and chart,
    # and the overview's last completed runs.
    page.goto(f"/jobs/{job_id}")
    expect(page.locator(f"#job-runs tr[data-run-id='{run_id}']")).to_contain_text("Killed")
    expect(page.locator("#duration-chart rect[data-state='killed']")).to_have_count(1)
    expect(page.locator("#chart-legend")).to_contain_text("Killed")
    page.goto("/")
    row = page.locator(f"#section-last_completed li[data-run-id='{run_id}']")
    expect(row.locator(".state-badge")).to_have_text("Killed")
    screenshot(page, artifacts_dir / "killed-overview-1280.png", full_page=True)


def test_a_project_admin_disables_and_enables_a_job(open_page, data, worker):
    job_id = data.job("Toggle me")
    page = open_page("alice")
    page.goto(f"/jobs/{job_id}")
    toggle = page.locator("#toggle-job")
    expect(toggle).to_have_text("Disable job")
    toggle.click()
    wait_until(lambda: worker.request("GET", f"/api/v1/job/{job_id}/")["enqueue_is_enabled"] is False)
    expect(page.locator("#job-enabled-state")).to_have_text("disabled")
    expect(toggle).to_have_text("Enable job")
    toggle.click()
    wait_until(lambda: worker.request("GET", f"/api/v1/job/{job_id}/")["enqueue_is_enabled"] is True)
    expect(page.locator("#job-enabled-state")).to_have_text("enabled")


def test_a_disabled_jobs_due_run_says_so_and_the_toast_tells_what_still_runs(open_page, data, worker,
                                                                               artifacts_dir):
    job_id = data.job("Nightly reindex")
    due = data.run(job_id)
    page = open_page("alice")
    page.goto(f"/jobs/{job_id}")
    page.locator("#toggle-job").click()
    expect(page.locator("#toast")).to_contain_text("its scheduled runs wait until it is enabled again")
    expect(page.locator("#toast")).to_contain_text("A run scheduled by hand (Schedule now) still runs")
    expect(page.locator(f"#job-runs tr[data-run-id='{due}']")).to_contain_text("job disabled")

    page.goto("/")
    row = page.locator(f"#section-scheduled li[data-run-id='{due}']")
    expect(row.locator(".held-tag")).to_have_text("job disabled")
    # Waiting for its job, not late: no amber "due since".
    expect(row.locator(".due")).to_have_count(0)
    expect(row.locator(".held")).to_contain_text("due since")
    screenshot(page, artifacts_dir / "disabled-overview-1280.png", full_page=True)


def ping_both_workers(server):
    for api_key, secret in (("build-01", "worker-secret"), ("build-02", "worker-secret-2")):
        hand = TestWorker(server.url, api_key, secret)
        hand.request("PATCH", hand.me(), {"ping_response_dts": iso(utcnow()), "worker_version": "1.0"})


def test_the_workers_page_shows_health_and_runs_and_lets_only_admins_toggle(open_page, data, worker, server,
                                                                            artifacts_dir):
    ping_both_workers(server)
    run_id = data.run(data.job("Payroll export"))
    worker.claim(run_id)
    worker.start(run_id)
    with data.session() as session:
        silent = Worker(title="old-box", api_key="old-box", secret="x", ping_response_dts=None)
        pool = WorkerPool(title="Legacy pool", workers=[silent])
        session.add_all([silent, pool])
        billing = session.query(Project).filter(Project.title == "Billing").one()
        billing.worker_pools.append(pool)

    viewer = open_page("victor")
    viewer.goto("/workers")
    row = viewer.locator("#workers-table tr", has_text="build-01")
    expect(row.locator(".health")).to_have_text("responsive")
    expect(row).to_contain_text("Payroll export")
    expect(row).to_contain_text("Linux pool")
    expect(viewer.locator("#workers-table tr", has_text="old-box").locator(".health")).to_have_text("unresponsive")
    expect(viewer.locator("[data-action='toggle-worker']")).to_have_count(0)
    expect(viewer.locator("#pool-banner")).to_have_text(
        "No responsive worker in: Legacy pool. Their runs wait until a worker answers.")
    viewer.goto("/")
    expect(viewer.locator("#pool-banner")).to_contain_text("Legacy pool")
    expect(viewer.locator("#pool-banner")).not_to_contain_text("Linux pool")

    admin = open_page("root")
    admin.goto("/workers")
    button = admin.locator("#workers-table tr", has_text="build-02").locator("[data-action='toggle-worker']")
    expect(button).to_have_text("Disable")
    if os.environ.get("JOBRUNNER_DOCS_SCREENSHOT"):
        screenshot(admin, REPO / "docs" / "workers.png")
    button.click()
    expect(admin.locator("#toast")).to_contain_text("build-02 is disabled")
    expect(admin.locator("#workers-table tr", has_text="build-02").locator(".health")).to_have_text("disabled")
    admin.locator("#workers-table tr", has_text="build-02").locator("[data-action='toggle-worker']").click()
    expect(admin.locator("#workers-table tr", has_text="build-02").locator(".health")).to_have_text("responsive")
    screenshot(admin, artifacts_dir / "workers-1280.png", full_page=True)
    worker.finish(run_id)
    with data.session() as session:
        pool = session.query(WorkerPool).filter(WorkerPool.title == "Legacy pool").one()
        billing = session.query(Project).filter(Project.title == "Billing").one()
        billing.worker_pools.remove(pool)


def test_a_viewer_sees_no_action_buttons_and_a_forged_action_fails(open_page, data, worker):
    job_id = data.job("Look, do not touch")
    run_id = data.run(job_id)
    worker.claim(run_id)
    worker.start(run_id)
    page = open_page("victor")
    page.goto(f"/jobs/{job_id}")
    expect(page.locator("#job-details")).to_contain_text("Linux pool")
    for selector in ("#job-actions", "#schedule-now", "#toggle-job", "#schedule-children"):
        assert page.locator(selector).count() == 0, selector
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#run-state")).to_have_text("Started")
    assert page.locator("#kill-run").count() == 0
    statuses = page.evaluate(
        """async ([jobId, runId]) => {
            const headers = {"Content-Type": "application/json", "X-CSRF-Token":
                document.querySelector('meta[name="csrf-token"]').content};
            const send = (method, url, body) =>
                fetch(url, {method, headers, body: JSON.stringify(body)}).then((r) => r.status);
            return [
                await send("POST", "/api/v1/run/", {job: `/api/v1/job/${jobId}/`}),
                await send("POST", "/api/v1/kill_request/", {run: `/api/v1/run/${runId}/`}),
                await send("PATCH", `/api/v1/job/${jobId}/`, {enqueue_is_enabled: false}),
            ];
        }""",
        [job_id, run_id],
    )
    assert statuses == [403, 403, 403]
    assert manual_runs(worker, job_id) == [] and worker.kill_requests() == []
    worker.finish(run_id)


def test_a_write_without_the_csrf_token_is_refused(open_page, data):
    job_id = data.job("CSRF target")
    page = open_page("alice")
    status = page.evaluate(
        """async (jobId) => (await fetch(`/api/v1/job/${jobId}/`, {method: "PATCH",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({enqueue_is_enabled: false})})).status""",
        job_id,
    )
    assert status == 403


# --- finding things ---------------------------------------------------------------


def test_the_project_selector_remembers_the_choice(open_page):
    page = open_page("alice")
    scheduled = page.locator("#section-scheduled")
    expect(scheduled).to_contain_text("Sync payments")
    expect(scheduled).to_contain_text("Weekly sales report")
    page.select_option("#project-select", label="Reports")
    expect(scheduled).not_to_contain_text("Sync payments", timeout=LIVE_WITHIN_MS)
    expect(scheduled).to_contain_text("Weekly sales report")
    page.reload()
    expect(page.locator("#project-select option:checked")).to_have_text("Reports")
    page.goto("/jobs")
    expect(page.locator("#jobs-table")).to_contain_text("Weekly sales report")
    expect(page.locator("#jobs-table")).not_to_contain_text("Export ledger")
    page.select_option("#project-select", label="All projects")
    expect(page.locator("#jobs-table")).to_contain_text("Export ledger", timeout=LIVE_WITHIN_MS)
    # A job's page shows its own project; choosing another opens its runs.
    page.locator("#jobs-table a", has_text="Export ledger").click()
    expect(page.locator("#project-select option:checked")).to_have_text("Billing")
    page.select_option("#project-select", label="Reports")
    page.wait_for_url("**/?project=*")
    expect(page.locator("#section-scheduled")).to_contain_text("Weekly sales report")
    expect(page.locator("#section-scheduled")).not_to_contain_text("Export ledger")


def test_the_overview_filters_by_title_and_state(open_page):
    page = open_page("alice")
    scheduled = page.locator("#section-scheduled")
    expect(scheduled).to_contain_text("Export ledger")
    page.fill("#filter-title", "SYNC")
    expect(scheduled.locator("li.run-row")).to_have_count(1, timeout=LIVE_WITHIN_MS)
    expect(scheduled).to_contain_text("Sync payments")
    page.select_option("#filter-state", "last_completed")
    expect(scheduled).to_be_hidden()
    expect(page.locator("#section-last_completed")).to_be_visible()
    expect(page.locator("#section-last_completed li.run-row")).to_have_count(1)
    page.reload()
    expect(page.locator("#filter-title")).to_have_value("SYNC")
    expect(page.locator("#filter-state")).to_have_value("last_completed")


def test_job_details_say_the_schedule_in_words_and_show_the_chain_and_chart(open_page, worker):
    jobs = worker.request("GET", "/api/v1/job/?limit=100")["objects"]
    by_title = {job["title"]: job for job in jobs}
    sync = by_title["Sync payments"]
    next_run = worker.request(
        "GET", f"/api/v1/run/?job={sync['id']}&state=scheduled&order_by=schedule_dts")["objects"][0]
    page = open_page("victor")
    page.goto(f"/jobs/{sync['id']}")
    details = page.locator("#job-details")
    # The day is named only when it is not today (the test may run near midnight).
    expect(details).to_contain_text(
        re.compile(rf"every 2 hours, next at (\w+ \d+ \w+ )?{zoned(next_run['schedule_dts'], '%H:%M')} {TIMEZONE}")
    )
    expect(page.locator("#duration-chart svg rect.bar")).to_have_count(60)
    expect(page.locator("#duration-chart svg rect.bar-bad")).to_have_count(9)
    expect(page.locator("#job-badges")).to_contain_text("1 failure in a row")
    expect(page.locator("#job-runs tbody tr")).to_have_count(61)
    expect(page.locator("#job-script")).to_have_text("#!/bin/bash\nset -euo pipefail\n\npython3 -m billing.sync_payments\n")

    page.goto(f"/jobs/{by_title['Send invoices']['id']}")
    chain = page.locator("#job-chain")
    expect(chain.locator("li")).to_have_count(3)
    expect(chain.locator("[aria-current]")).to_have_text("Send invoices")
    expect(chain.locator("a")).to_have_text(["Export ledger", "Archive invoices"])
    expect(page.locator("#job-details")).to_contain_text("not recurring")


# --- looks --------------------------------------------------------------------------


def test_pages_fit_a_phone_and_screenshots(open_page, data, worker, server, artifacts_dir):
    # Something in every state, for pictures that show what the page is for.
    queued = data.run(data.job("Rebuild search index"))
    worker.claim(queued)
    running = data.run(data.job("Quarterly close", script="python3 -m billing.quarterly_close"))
    worker.claim(running)
    worker.start(running, pid=27182)

    killed = data.run(data.job("Rebuild caches"))
    worker.claim(killed)
    worker.start(killed, pid=31415)
    with data.session() as session:
        session.add(KillRequest(run_id=killed, schedule_dts=utcnow(), enqueue_dts=utcnow(), execute_dts=utcnow()))
    worker.finish(killed, success=False)
    held = data.run(data.job("Import legacy orders", enqueue_is_enabled=False))
    ping_both_workers(server)
    desktop = open_page("alice")
    expect(desktop.locator("#section-started")).to_contain_text("Quarterly close")
    expect(desktop.locator(f"#section-last_completed li[data-run-id='{killed}'] .state-badge")).to_have_text("Killed")
    expect(desktop.locator(f"#section-scheduled li[data-run-id='{held}'] .held-tag")).to_have_text("job disabled")
    expect(desktop.locator("#section-in_queue")).to_contain_text("Rebuild search index")
    assert no_horizontal_overflow(desktop)
    screenshot(desktop, artifacts_dir / "overview-1280.png", full_page=True)
    if os.environ.get("JOBRUNNER_DOCS_SCREENSHOT"):
        screenshot(desktop, REPO / "docs" / "dashboard.png")

    phone = open_page("alice", viewport=PHONE)
    expect(phone.locator("#section-started")).to_contain_text("Quarterly close")
    assert no_horizontal_overflow(phone), "the overview is wider than a phone"
    screenshot(phone, artifacts_dir / "overview-390.png", full_page=True)
    if os.environ.get("JOBRUNNER_DOCS_SCREENSHOT"):
        screenshot(phone, REPO / "docs" / "dashboard-phone.png")
    for name, path in (("jobs", "/jobs"), ("job", "/jobs/1"), ("run", f"/runs/{running}"), ("workers", "/workers")):
        phone.goto(path)
        expect(phone.locator("#live-badge")).to_have_attribute("data-state", "live")
        assert no_horizontal_overflow(phone), f"{path} is wider than a phone"
        screenshot(phone, artifacts_dir / f"{name}-390.png")
    desktop.goto("/jobs/1")
    expect(desktop.locator("#duration-chart svg")).to_be_visible()
    screenshot(desktop, artifacts_dir / "job-1280.png", full_page=True)
    desktop.goto("/jobs")
    expect(desktop.locator("#jobs-table")).to_contain_text("Quarterly close")
    screenshot(desktop, artifacts_dir / "jobs-1280.png", full_page=True)
    print(f"screenshots are in {artifacts_dir}")
    worker.finish(running)
