"""The dashboard's pages and its overview endpoint, through the real app."""
import re
from datetime import timedelta

import pytest

from tests.conftest import csrf_token_of, now, uri

PAGES = ["/", "/jobs", "/jobs/{job}", "/runs/{run}"]


def page_path(template, world, run):
    return template.format(job=world.job.id, run=run.id)


@pytest.fixture
def run(world, factory):
    return factory.run(world.job)


# --- who gets in ---------------------------------------------------------------


@pytest.mark.parametrize("template", PAGES)
def test_anonymous_page_request_goes_to_login(testapp, world, run, template):
    path = page_path(template, world, run)
    res = testapp.get(path, status=303)
    assert res.location.endswith("/login?next=" + path.replace("/", "%2F"))


def test_anonymous_overview_data_is_401_json(testapp):
    res = testapp.get("/dashboard/overview.json", status=401)
    assert res.json["error"] == "Authentication required."


@pytest.mark.parametrize("template", PAGES)
def test_viewer_sees_every_page_with_csrf_meta(world, run, as_user, template):
    client = as_user(groups=[world.viewers])
    res = client.get(page_path(template, world, run))
    assert res.content_type == "text/html"
    assert csrf_token_of(res) == client.csrf_token
    assert 'data-timezone="Europe/Amsterdam"' in res.text
    assert "<option value=\"%d\">%s</option>" % (world.project.id, world.project.title) in res.text
    assert 'name="csrf_token"' in res.text  # the logout form
    assert "no-project-notice" not in res.text


def test_pages_carry_a_content_security_policy(world, as_user):
    res = as_user(groups=[world.viewers]).get("/")
    policy = res.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert res.headers["X-Content-Type-Options"] == "nosniff"


def test_scripts_and_styles_are_served_by_the_app(world, as_user, testapp):
    page = as_user(groups=[world.viewers]).get("/")
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert {a.split("?")[0] for a in assets} >= {"/static/app.css", "/static/js/lib.js", "/static/js/overview.js"}
    for asset in assets:
        testapp.get(asset, status=200)
    assert "http://" not in page.text and "https://" not in page.text


def test_user_without_projects_gets_a_notice(as_user, world):
    res = as_user().get("/")
    assert 'id="no-project-notice"' in res.text
    assert "project-select" not in res.text


def test_admin_sees_every_project(factory, as_user, world):
    other = factory.project(title="Someone else's")
    res = as_user(is_admin=True).get("/jobs")
    assert f'<option value="{other.id}">' in res.text
    assert f'<option value="{world.project.id}">' in res.text


# --- action buttons -------------------------------------------------------------

ACTION_IDS = ('id="schedule-now"', 'id="toggle-job"', 'id="schedule-children"')


def test_viewer_gets_no_action_buttons(world, run, as_user):
    client = as_user(groups=[world.viewers])
    job_page = client.get(f"/jobs/{world.job.id}")
    run_page = client.get(f"/runs/{run.id}")
    for marker in ACTION_IDS:
        assert marker not in job_page.text
    assert 'id="kill-run"' not in run_page.text
    assert 'id="job-actions"' not in job_page.text


@pytest.mark.parametrize("who", ["project_admin", "site_admin"])
def test_admins_get_action_buttons(world, run, as_user, who):
    client = as_user(groups=[world.admins]) if who == "project_admin" else as_user(is_admin=True)
    job_page = client.get(f"/jobs/{world.job.id}")
    for marker in ACTION_IDS:
        assert marker in job_page.text
    assert 'data-enabled="true"' in job_page.text
    assert 'id="kill-run"' in client.get(f"/runs/{run.id}").text


def test_admin_of_another_project_is_only_a_viewer_here(world, factory, as_user):
    other_admins = factory.group()
    factory.project(auth_groups=[other_admins])
    user = factory.user(groups=[world.viewers, other_admins])
    page = as_user(user).get(f"/jobs/{world.job.id}")
    assert 'id="schedule-now"' not in page.text


def test_viewer_forging_an_action_gets_403(world, run, as_user):
    client = as_user(groups=[world.viewers])
    client.post("/api/v1/run/", {"job": uri("job", world.job)}, status=403)
    client.patch(uri("job", world.job), {"enqueue_is_enabled": False}, status=403)


# --- out of reach ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/runs/{other_run}", "/jobs/{other_job}", "/runs/999999",
                                  "/jobs/999999", "/runs/abc", "/runs/99999999999999999999999",
                                  "/no/such/page"])
def test_out_of_reach_is_an_html_404(world, factory, as_user, path):
    other = factory.world()
    other_run = factory.run(other.job)
    client = as_user(groups=[world.viewers])
    res = client.get(path.format(other_run=other_run.id, other_job=other.job.id), status=404)
    assert res.content_type == "text/html"
    assert "Not found" in res.text
    assert other.job.title not in res.text


def test_api_404_stays_json(world, as_user):
    res = as_user(groups=[world.viewers]).get("/api/v1/run/999999/", status=404)
    assert res.json["error"] == "Not found."


# --- escaping --------------------------------------------------------------------


def test_titles_are_escaped(world, factory, as_user):
    job = factory.job(world.template, world.pool, title='<script>alert("job")</script>')
    run = factory.run(job)
    client = as_user(groups=[world.viewers])
    for path in (f"/jobs/{job.id}", f"/runs/{run.id}"):
        text = client.get(path).text
        assert '<script>alert("job")</script>' not in text
        assert "&lt;script&gt;alert(&#34;job&#34;)&lt;/script&gt;" in text


# --- login and logout ------------------------------------------------------------


def test_login_page_keeps_its_form(testapp):
    page = testapp.get("/login?next=/jobs")
    for name in ("username", "password", "csrf_token", "next"):
        assert f'name="{name}"' in page.text
    assert csrf_token_of(page)
    assert 'value="/jobs"' in page.text


def test_wrong_password_says_so(testapp, factory):
    user = factory.user()
    token = csrf_token_of(testapp.get("/login"))
    res = testapp.post("/login", {"username": user.username, "password": "nope", "csrf_token": token},
                       status=400)
    assert "Wrong username or password." in res.text
    assert f'value="{user.username}"' in res.text


def test_logout_form_needs_its_csrf_token(world, as_user, testapp):
    client = as_user(groups=[world.viewers])
    testapp.post("/logout", {}, status=403)
    client.get("/")
    res = testapp.post("/logout", {"csrf_token": client.csrf_token}, status=303)
    assert res.location.endswith("/login")
    testapp.get("/", status=303)


# --- the overview's data ----------------------------------------------------------


def overview(client, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return client.get("/dashboard/overview.json" + ("?" + query if query else "")).json


def test_overview_sorts_runs_into_states(world, factory, as_user):
    job = world.job
    later = factory.run(job, schedule_dts=now() + timedelta(hours=2))
    sooner = factory.run(job, schedule_dts=now() + timedelta(hours=1))
    second = factory.job(world.template, world.pool)
    queued = factory.run(second, enqueue_dts=now(), worker=world.worker)
    third = factory.job(world.template, world.pool)
    started = factory.run(third, enqueue_dts=now(), start_dts=now(), worker=world.worker, pid=7)
    fourth = factory.job(world.template, world.pool)
    done = factory.run(fourth, enqueue_dts=now(), start_dts=now(), return_dts=now(), return_success=False,
                       worker=world.worker)
    fourth.last_completed_schedule_id = done.schedule_id
    factory.db.flush()

    data = overview(as_user(groups=[world.viewers]))
    sections = data["sections"]
    assert [r["id"] for r in sections["scheduled"]["objects"]] == [sooner.id, later.id]
    assert [r["id"] for r in sections["in_queue"]["objects"]] == [queued.id]
    assert [r["id"] for r in sections["started"]["objects"]] == [started.id]
    assert [r["id"] for r in sections["last_completed"]["objects"]] == [done.id]
    first = sections["started"]["objects"][0]
    assert first["job_title"] == third.title
    assert first["worker_title"] == world.worker.title
    assert first["project_id"] == world.project.id
    assert first["resource_uri"] == uri("run", started) and first["pid"] == 7
    assert sections["scheduled"]["total"] == 2
    assert "now" in data


def test_overview_shows_only_runs_in_reach(world, factory, as_user):
    mine = factory.run(world.job)
    other = factory.world()
    factory.run(other.job)
    data = overview(as_user(groups=[world.viewers]))
    assert [r["id"] for r in data["sections"]["scheduled"]["objects"]] == [mine.id]
    assert overview(as_user(groups=[world.viewers]), project=other.project.id)["sections"]["scheduled"]["total"] == 0


def test_overview_filters_by_project_and_title(world, factory, as_user):
    second_project = factory.project(groups=[world.viewers], pools=[world.pool])
    second_job = factory.job(factory.template(second_project), world.pool, title="Nightly 100%_backup")
    first = factory.run(world.job)
    second = factory.run(second_job)
    client = as_user(groups=[world.viewers])

    def ids(**params):
        return [r["id"] for r in overview(client, **params)["sections"]["scheduled"]["objects"]]

    assert ids() == [first.id, second.id]
    assert ids(project=world.project.id) == [first.id]
    assert ids(project="all") == [first.id, second.id]
    assert ids(title="nightly") == [second.id]
    assert ids(title="100%25_") == [second.id]
    assert ids(title="0%25b") == []  # % and _ are taken literally


@pytest.mark.parametrize("value", ["x", "-1", "1" * 30, "%C2%B2", "1.5"])
def test_overview_rejects_a_bad_project(world, as_user, value):
    res = as_user(groups=[world.viewers]).get(f"/dashboard/overview.json?project={value}", status=400)
    assert res.json["errors"] == {"project": "project takes a project id or 'all'."}


def test_overview_rejects_a_nul_in_the_title(world, as_user):
    res = as_user(groups=[world.viewers]).get("/dashboard/overview.json?title=a%00b", status=400)
    assert list(res.json["errors"]) == ["title"]


def test_overview_takes_any_other_title(world, factory, as_user):
    job = factory.job(world.template, world.pool, title="Zürich ✓ 'quoted' \\ back")
    run = factory.run(job)
    client = as_user(groups=[world.viewers])
    for title in ("%C3%BCrich", "%E2%9C%93", "%27quoted%27", "%5C+back", "x" * 400):
        found = overview(client, title=title)["sections"]["scheduled"]["objects"]
        assert [r["id"] for r in found] == ([] if title == "x" * 400 else [run.id]), title
