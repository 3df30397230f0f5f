"""Fixtures of the browser tests: a live server, Chromium, logged-in pages."""
import os
from pathlib import Path

import pytest

from .live import PASSWORD, Data, LiveServer, TestWorker, fresh_database, seed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def artifacts_dir():
    path = Path(os.environ.get("JOBRUNNER_TEST_ARTIFACTS", REPO / "test-artifacts")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def live(tmp_path_factory, mail_sink):
    """(server, data): the app under pserve on its own database with demo data."""
    tmp_dir = tmp_path_factory.mktemp("live")
    with fresh_database(tmp_dir) as url:
        data = Data(url)
        seed(data)
        server = LiveServer(url, mail_sink.port, tmp_dir).start()
        try:
            yield server, data
        finally:
            server.stop()
            data.dispose()


@pytest.fixture
def server(live):
    return live[0]


@pytest.fixture
def data(live):
    return live[1]


@pytest.fixture
def worker(server):
    return TestWorker(server.url)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, server):
    """open_page(username, viewport=DESKTOP) -> a page logged in through the form."""
    contexts = []

    def open_as(username=None, viewport=DESKTOP):
        context = browser.new_context(viewport=viewport, base_url=server.url, locale="en-GB")
        context.set_default_timeout(10000)
        contexts.append(context)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Refused requests (401, 403, a cut connection) are what some tests
        # are about; any other console error (a blocked script or style under
        # the Content-Security-Policy, say) is a fault of the page.
        page.on(
            "console",
            lambda message: message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and errors.append(message.text),
        )
        page.js_errors = errors
        if username:
            log_in(page, username)
        return page

    yield open_as
    errors = [error for context in contexts for page in context.pages for error in page.js_errors]
    for context in contexts:
        context.close()
    assert errors == [], f"script errors on the pages: {errors}"


def log_in(page, username, password=PASSWORD):
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
