"""Who gets which admin page: administrators everything, a project's admin
groups their projects' templates and jobs, everybody else nothing."""
import pytest

from jobrunner.models import Job

from .conftest import get, post

RESOURCES = ["user", "group", "project", "worker_pool", "worker", "job_template", "job"]
ADMIN_ONLY = ["user", "group", "project", "worker_pool", "worker"]


@pytest.fixture
def someone(factory):
    return factory.user()


def item_of(world, resource, user):
    return {"user": user, "group": world.viewers, "project": world.project,
            "worker_pool": world.pool, "worker": world.worker, "job_template": world.template,
            "job": world.job}[resource]


def paths(world, resource, user):
    obj = item_of(world, resource, user)
    base = f"/admin/{resource}/"
    return [base, base + "new", f"{base}{obj.id}/edit", f"{base}{obj.id}/delete"]


@pytest.mark.parametrize("resource", RESOURCES)
def test_anonymous_goes_to_the_login_form(anonymous, world, resource, someone):
    for path in ["/admin/"] + paths(world, resource, someone):
        res = anonymous.get(path, status=303)
        assert "/login?next=" in res.location


@pytest.mark.parametrize("resource", RESOURCES)
def test_a_viewer_gets_a_403_page(viewer, world, resource, someone):
    for path in ["/admin/"] + paths(world, resource, someone):
        res = get(viewer, path, status=403)
        assert res.content_type == "text/html"
        assert "You may not use this page." in res.text


def test_a_viewer_may_not_post_either(viewer, world):
    res = post(viewer, f"/admin/job/{world.job.id}/delete", {}, status=403)
    assert res.content_type == "text/html"
    res = post(viewer, "/admin/group/new", {"name": "sneaky"}, status=403)
    assert "sneaky" not in get(viewer, "/api/v1/group/").text


@pytest.mark.parametrize("resource", RESOURCES)
def test_an_administrator_gets_every_page(admin, world, resource, someone):
    for path in paths(world, resource, someone):
        res = get(admin, path)
        assert res.status_int == 200, (path, res.text[:300])
        assert res.content_type == "text/html"
        assert res.headers["Cache-Control"] == "no-store"


def test_a_project_admin_sees_templates_and_jobs_only(project_admin, world):
    index = get(project_admin, "/admin/")
    assert 'href="/admin/job/"' in index.text and 'href="/admin/job_template/"' in index.text
    assert 'href="/admin/user/"' not in index.text and 'href="/admin/worker/"' not in index.text
    for resource in ADMIN_ONLY:
        get(project_admin, f"/admin/{resource}/", status=403)
        get(project_admin, f"/admin/{resource}/new", status=403)
    get(project_admin, f"/admin/job/{world.job.id}/edit", status=200)
    get(project_admin, f"/admin/job_template/{world.template.id}/edit", status=200)


def test_a_project_admin_never_sees_another_projects_objects(project_admin, world, other_world):
    jobs = get(project_admin, "/admin/job/")
    assert world.job.title in jobs.text and other_world.job.title not in jobs.text
    templates = get(project_admin, "/admin/job_template/")
    assert other_world.template.title not in templates.text
    for path in (f"/admin/job/{other_world.job.id}/edit", f"/admin/job/{other_world.job.id}/delete",
                 f"/admin/job_template/{other_world.template.id}/edit"):
        res = get(project_admin, path, status=404)
        assert other_world.job.title not in res.text
    res = post(project_admin, f"/admin/job/{other_world.job.id}/delete", {}, status=404)


def test_a_new_job_form_offers_only_the_users_projects(project_admin, world, other_world, factory):
    sibling = factory.job(world.template, world.pool)
    page = get(project_admin, "/admin/job/new")
    assert f'<option value="{world.template.id}"' in page.text
    assert f'<option value="{other_world.template.id}"' not in page.text
    assert f'<option value="{world.pool.id}"' in page.text
    assert f'<option value="{other_world.pool.id}"' not in page.text
    assert f'<option value="{sibling.id}"' in page.text
    assert f'<option value="{other_world.job.id}"' not in page.text
    edit = get(project_admin, f"/admin/job/{world.job.id}/edit")
    # A job is not its own parent.
    assert f'<option value="{world.job.id}"' not in edit.text.split('name="parent"')[1].split("</select>")[0]


def test_a_forged_relation_out_of_reach_is_refused(project_admin, world, other_world, dbsession):
    page = get(project_admin, "/admin/job/new")
    fields = dict(page.forms["admin-form"].submit_fields())
    fields.update(title="forged", job_template=str(other_world.template.id),
                  worker_pool=str(world.pool.id))
    res = post(project_admin, "/admin/job/new", fields, status=403)
    assert res.content_type == "text/html"
    assert dbsession.query(Job).filter_by(title="forged").count() == 0
    res = post(project_admin, "/admin/job_template/new",
               {"title": "forged", "project": str(other_world.project.id)}, status=403)


def test_the_dashboard_links_to_the_admin_pages_for_who_may_use_them(admin, project_admin, viewer, world):
    assert 'href="/admin/"' in get(admin, "/").text
    assert 'href="/admin/"' in get(project_admin, "/").text
    assert 'href="/admin/"' not in get(viewer, "/").text
    job_page = f"/jobs/{world.job.id}"
    assert f'href="/admin/job/{world.job.id}/edit"' in get(admin, job_page).text
    assert f'href="/admin/job/{world.job.id}/edit"' in get(project_admin, job_page).text
    assert f'href="/admin/job/{world.job.id}/edit"' not in get(viewer, job_page).text
    assert f'href="/jobs/{world.job.id}/runs"' in get(viewer, job_page).text


def test_a_form_without_its_csrf_token_changes_nothing(admin, dbsession):
    res = admin.testapp.post("/admin/group/new", {"name": "no token"}, status=403)
    assert res.content_type == "text/html" and "security token" in res.text
    res = post(admin, "/admin/group/new", {"name": "wrong token", "csrf_token": "x" * 40}, status=403)
    assert "no token" not in get(admin, "/admin/group/").text
    assert "wrong token" not in get(admin, "/admin/group/").text
