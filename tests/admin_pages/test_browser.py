"""The admin pages in a real browser (Debian's Chromium through Playwright),
against pserve on loopback, with a real worker daemon started from the ini
file the admin page hands out."""
import os
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.dashboard.conftest import (  # noqa: F401
    PHONE, REPO, artifacts_dir, browser, live, open_page, server,
)
from tests.dashboard.live import TIMEZONE
from tests.dashboard.test_browser import expect, no_horizontal_overflow, screenshot, wait_until

pytestmark = pytest.mark.browser


def docs_screenshot(page, artifacts, name, **kw):
    """To test-artifacts/, and to docs/ with JOBRUNNER_DOCS_SCREENSHOT=1."""
    # From the top: a full-page picture of a scrolled page shows the sticky
    # header in the middle.
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, artifacts / name, **kw)
    if os.environ.get("JOBRUNNER_DOCS_SCREENSHOT"):
        screenshot(page, REPO / "docs" / name, **kw)


@pytest.fixture
def worker_processes():
    processes = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_an_admin_sets_up_a_worker_and_a_project_admin_schedules_a_job_on_it(
        open_page, server, tmp_path, artifacts_dir, worker_processes):
    # --- the administrator: a worker, a pool for it, the pool in the project ---------
    root = open_page("root")
    root.goto("/")
    root.click("nav.mainnav >> text=Admin")
    expect(root.locator("h1")).to_have_text("Administration")
    root.goto("/admin/worker/new")
    root.fill("#f-title", "story-worker")
    root.fill("#f-concurrent_jobs", "2")
    root.click("#save")
    expect(root.locator("#worker-credentials")).to_be_visible()
    docs_screenshot(root, artifacts_dir, "admin-worker-1280.png", full_page=True)
    with root.expect_download() as download:
        root.click("#download-ini")
    ini_text = Path(download.value.path()).read_text()
    assert ini_text == root.input_value("#worker-ini")
    assert f"api_base_url = {server.url}" in ini_text
    root.reload()
    expect(root.locator("#worker-credentials")).to_have_count(0)

    root.goto("/admin/worker_pool/new")
    root.fill("#f-title", "Story pool")
    root.check("label:has-text('story-worker') input")
    root.check("#f-enqueue_is_enabled")
    root.click("#save")
    expect(root.locator(".flash")).to_contain_text("Story pool")
    root.goto("/admin/project/")
    root.click("#admin-list >> text=Billing")
    root.check("label:has-text('Story pool') input")
    root.click("#save")
    expect(root.locator(".flash")).to_contain_text("Billing")

    # --- the project admin writes a job and watches its next runs --------------------
    alice = open_page("alice")
    alice.goto("/admin/")
    expect(alice.locator(".admin-nav a")).to_have_text(["Job templates", "Jobs"])
    alice.goto("/admin/job/new")
    alice.fill("#f-title", "Story job")
    alice.select_option("#f-job_template", label="Billing › Bash")
    alice.select_option("#f-worker_pool", label="Story pool")
    alice.fill("#f-script_content_partial", 'echo "the answer is $((6 * 7))"')
    expect(alice.locator("#preview-status")).to_contain_text("No schedule")
    alice.fill("#f-reschedule_interval", "1")
    alice.select_option("#f-reschedule_interval_type", "HOUR")
    expect(alice.locator("#preview-times li")).to_have_count(5)
    hourly = alice.locator("#preview-times").inner_text()
    alice.select_option("#f-reschedule_interval_type", "DAY")
    expect(alice.locator("#preview-times")).not_to_have_text(hourly)
    expect(alice.locator("#preview-times li")).to_have_count(5)
    alice.fill("#f-reschedule_interval", "0")
    expect(alice.locator("#preview-status")).to_contain_text("reschedule_interval: ")
    expect(alice.locator("#preview-times li")).to_have_count(0)
    alice.fill("#f-reschedule_interval", "1")
    expect(alice.locator("#preview-times li")).to_have_count(5)
    alice.click("#add-exclude")
    rows = alice.locator(".exclude-row")
    expect(rows).to_have_count(1)
    rows.nth(0).locator("input[type=time]").nth(0).fill("22:00")
    rows.nth(0).locator("input[type=time]").nth(1).fill("23:00")
    rows.nth(0).locator("input[type=text]").fill("backups")
    alice.click("#add-exclude")
    expect(rows).to_have_count(2)
    rows.nth(1).locator(".remove-exclude").click()
    expect(rows).to_have_count(1)
    # A cron schedule instead of the interval: the preview follows the expression.
    alice.fill("#f-reschedule_interval", "")
    alice.select_option("#f-reschedule_interval_type", "")
    alice.fill("#f-cron_expression", "*/5 * * * *")
    expect(alice.locator("#preview-times li")).to_have_count(5)
    every_five = alice.locator("#preview-times").inner_text()
    alice.fill("#f-cron_expression", "30 2 * * *")
    expect(alice.locator("#preview-times")).not_to_have_text(every_five)
    expect(alice.locator("#preview-times li")).to_have_count(5)
    alice.fill("#f-cron_expression", "61 * * * *")
    expect(alice.locator("#preview-status")).to_contain_text("cron_expression: ")
    expect(alice.locator("#preview-times li")).to_have_count(0)
    alice.fill("#f-cron_expression", "30 2 * * *")
    expect(alice.locator("#preview-times li")).to_have_count(5)
    local_now = datetime.now(ZoneInfo(TIMEZONE)) - timedelta(minutes=1)
    alice.fill("#f-first_run_at", local_now.strftime("%Y-%m-%dT%H:%M"))
    docs_screenshot(alice, artifacts_dir, "admin-job-form-1280.png", full_page=True)
    phone = open_page("alice", viewport=PHONE)
    phone.goto("/admin/job/new")
    phone.fill("#f-reschedule_interval", "2")
    phone.select_option("#f-reschedule_interval_type", "HOUR")
    expect(phone.locator("#preview-times li")).to_have_count(5)
    assert no_horizontal_overflow(phone), "the job form is wider than a phone"
    docs_screenshot(phone, artifacts_dir, "admin-job-form-390.png", full_page=True)
    alice.click("#save")
    expect(alice.locator(".flash")).to_contain_text("Story job")
    alice.click("#admin-list >> text=Story job")
    alice.wait_for_url(re.compile(r"/admin/job/\d+/edit$"))
    job_id = int(alice.url.split("/")[-2])

    # --- the worker daemon, started with the ini the admin page gave ------------------
    ini = tmp_path / "story-worker.ini"
    ini.write_text(ini_text + f"poll_interval = 0.2\nscript_temp_path = {tmp_path}\n")
    ini.chmod(0o600)
    daemon = Path(sys.executable).with_name("jobrunner-worker")
    log = open(tmp_path / "worker.log", "wb")
    worker_processes.append(subprocess.Popen([str(daemon), str(ini)], stdout=log, stderr=subprocess.STDOUT))

    # --- the run shows in the job's history, with its filters -------------------------
    alice.goto(f"/jobs/{job_id}")
    alice.click("#job-history")
    history = alice.locator("#history tbody")

    def returned():
        alice.reload()
        return "succeeded" in history.inner_text()

    wait_until(returned, timeout=30, interval=0.5)
    expect(history).to_contain_text("story-worker")
    alice.select_option("#filter-result", "failed")
    alice.click("#apply-filters")
    expect(history).to_contain_text("No runs match these filters")
    alice.select_option("#filter-result", "succeeded")
    alice.select_option("#filter-worker", label="story-worker")
    alice.click("#apply-filters")
    expect(alice.locator("#history tbody tr[data-state=succeeded]")).to_have_count(1)
    docs_screenshot(alice, artifacts_dir, "admin-history-1280.png", full_page=True)
    phone.goto(alice.url)
    assert no_horizontal_overflow(phone), "the history page is wider than a phone"
    docs_screenshot(phone, artifacts_dir, "admin-history-390.png", full_page=True)
    alice.click("#history tbody a")
    expect(alice.locator("body")).to_contain_text("the answer is 42")


def test_a_viewer_sees_no_admin_link_and_a_403_page(open_page):
    victor = open_page("victor")
    expect(victor.locator("nav.mainnav a")).to_have_text(["Runs", "Jobs", "Workers"])
    response = victor.goto("/admin/")
    assert response.status == 403
    expect(victor.locator("#refused-message")).to_be_visible()
