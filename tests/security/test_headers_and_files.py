"""Security headers on every answer; private files never through a link;
a password changed with the admin CLI ends the user's sessions."""
import os
import stat

import pytest

from jobrunner.admin import CommandError, write_private_file
from tests.api.conftest import HOST
from tests.conftest import WorkerClient


def assert_api_headers(res):
    assert res.headers["Cache-Control"] == "no-store"
    assert res.headers["X-Content-Type-Options"] == "nosniff"


def test_api_answers_are_not_cached_nor_sniffed(app, world, admin, anonymous, testapp):
    assert_api_headers(admin.get("/api/v1/job/"))
    assert_api_headers(anonymous.get("/api/v1/job/", expect_errors=True))
    assert_api_headers(admin.get("/api/v1/job/999999/", status=404))
    assert_api_headers(WorkerClient(testapp, world.worker).get("/api/v1/worker/"))
    assert_api_headers(admin.get("/api/v1/job/schema/"))


@pytest.mark.parametrize("path", ["/login", "/", "/jobs", "/account/tokens", "/no-such-page"])
def test_html_pages_carry_the_policy(admin, path):
    res = admin.get(path, status="*")
    assert res.content_type == "text/html"
    policy = res.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert res.headers["Referrer-Policy"] == "same-origin"
    assert_api_headers(res)


def test_static_files_may_be_cached(anonymous):
    res = anonymous.get("/static/app.css")
    assert res.headers.get("Cache-Control") != "no-store"
    assert res.headers["X-Content-Type-Options"] == "nosniff"


def test_no_traceback_nor_version_in_an_error(admin):
    res = admin.get("/api/v1/run/?is_manual__gt=0", status="*")
    assert res.status_int == 400
    assert "Traceback" not in res.text and "jobrunner" not in res.headers.get("Server", "")


def test_private_file_refuses_a_symlink(tmp_path):
    target = tmp_path / "someone-elses"
    target.write_text("theirs")
    link = tmp_path / "worker.ini"
    link.symlink_to(target)
    with pytest.raises(CommandError):
        write_private_file(str(link), "secret = s3cret\n")
    assert target.read_text() == "theirs"
    dangling = tmp_path / "dangling.ini"
    dangling.symlink_to(tmp_path / "not-yet")
    with pytest.raises(CommandError):
        write_private_file(str(dangling), "secret = s3cret\n")
    assert not (tmp_path / "not-yet").exists()


def test_private_file_replaces_a_regular_file_with_a_private_one(tmp_path):
    path = tmp_path / "worker.ini"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_private_file(str(path), "new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_cookie_alone_is_no_csrf_bypass_with_a_bogus_signature(admin, world):
    # The header decides who asks; an invalid signature is nobody (401), and
    # it never lifts the CSRF check from the cookie that came along.
    res = admin.request("PATCH", f"/api/v1/job/{world.job.id}/", {"description": "x"}, csrf=False,
                        headers={"Authorization": "ApiKey whoever:abcdef", "Host": HOST})
    assert res.status_int == 401
    res = admin.request("PATCH", f"/api/v1/job/{world.job.id}/", {"description": "x"}, csrf=False)
    assert res.status_int == 403


