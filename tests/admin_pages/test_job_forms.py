"""Job templates and jobs: created and edited by admins and project admins,
under the API's rules."""
from datetime import datetime, timezone

from jobrunner.models import Job, JobTemplate, RescheduleExclude, Run

from .conftest import get, error_of, form_fields, post


def job_fields(world, **overrides):
    fields = {
        "title": "Nightly export", "description": "", "job_template": str(world.template.id),
        "worker_pool": str(world.pool.id), "parent": "", "script_content_partial": "echo export",
        "enqueue_is_enabled": "true", "reschedule_interval": "1", "reschedule_interval_type": "DAY",
        "notification_addresses": "", "disable_enqueue_after_fails": "", "first_run_at": "",
    }
    fields.update(overrides)
    return [(name, value) for name, value in fields.items() if value is not None]


def test_a_project_admin_writes_a_job_with_excludes_and_a_first_run(project_admin, world, dbsession):
    fields = job_fields(world, first_run_at="2027-03-01T02:30") + [
        ("reschedule_excludes.start_time", "22:00"), ("reschedule_excludes.end_time", "23:30"),
        ("reschedule_excludes.note", "backups"),
        ("reschedule_excludes.start_time", ""), ("reschedule_excludes.end_time", ""),
        ("reschedule_excludes.note", ""),
    ]
    res = post(project_admin, "/admin/job/new", fields, status=303)
    assert res.location.endswith("/admin/job/")
    job = dbsession.query(Job).filter_by(title="Nightly export").one()
    assert job.script_content == "#!/bin/sh\necho export\n"
    assert job.reschedule_interval == 1 and job.reschedule_interval_type.value == "DAY"
    assert [(e.start_time.isoformat(), e.end_time.isoformat(), e.note) for e in job.reschedule_excludes] == [
        ("22:00:00", "23:30:00", "backups")]
    run = dbsession.query(Run).filter_by(job_id=job.id).one()
    # 02:30 in Amsterdam (the configured zone) in winter is 01:30 UTC.
    assert run.schedule_dts == datetime(2027, 3, 1, 1, 30, tzinfo=timezone.utc)
    assert not run.is_manual
    page = get(project_admin, f"/admin/job/{job.id}/edit")
    values = form_fields(page)
    assert ("reschedule_excludes.start_time", "22:00") in values
    assert ("reschedule_excludes.note", "backups") in values


def test_a_new_first_run_moves_the_waiting_scheduled_run(admin, world, factory, dbsession):
    waiting = factory.run(world.job, schedule_dts=datetime(2030, 1, 1, tzinfo=timezone.utc))
    page = get(admin, f"/admin/job/{world.job.id}/edit")
    fields = [(n, v) for n, v in form_fields(page) if n != "first_run_at"] + [("first_run_at", "2029-07-01T12:00")]
    post(admin, f"/admin/job/{world.job.id}/edit", fields, status=303)
    runs = dbsession.query(Run).filter_by(job_id=world.job.id).all()
    assert [r.id for r in runs] == [waiting.id]
    dbsession.refresh(runs[0])
    assert runs[0].schedule_dts == datetime(2029, 7, 1, 10, 0, tzinfo=timezone.utc)


def test_the_apis_job_rules_name_their_fields_and_keep_the_typed_values(project_admin, admin, world, factory,
                                                                       dbsession):
    foreign_pool = factory.pool()
    res = post(project_admin, "/admin/job/new", job_fields(
        world, title=world.job.title, worker_pool=str(foreign_pool.id), reschedule_interval="0",
        script_content_partial="echo kept\n", notification_addresses="nobody",
    ) + [("reschedule_excludes.start_time", "25:00"), ("reschedule_excludes.end_time", "01:00"),
         ("reschedule_excludes.note", "bad")], status=400)
    assert "e-mail" in error_of(res, "notification_addresses")
    assert "times such as 22:00" in error_of(res, "reschedule_excludes")
    form = res.forms["admin-form"]
    assert form["script_content_partial"].value == "echo kept\n"
    assert ("reschedule_excludes.start_time", "25:00") in form_fields(res)
    # Fix the types; the job rules (pool, interval, title) come next. (A pool
    # of no project of his is out of a project admin's reach: 403.)
    post(project_admin, "/admin/job/new", job_fields(world, worker_pool=str(foreign_pool.id)), status=403)
    res = post(admin, "/admin/job/new", job_fields(
        world, title=world.job.title, worker_pool=str(foreign_pool.id), reschedule_interval="0",
    ), status=400)
    assert "is not one of the project's pools" in error_of(res, "worker_pool")
    assert "must be greater than zero" in error_of(res, "reschedule_interval")
    assert "has a job titled" in error_of(res, "title")
    assert dbsession.query(Job).filter_by(job_template_id=world.template.id).count() == 1


def test_a_refused_edit_leaves_the_job_as_it_was(admin, world, factory, dbsession):
    child = factory.job(world.template, world.pool, parent=world.job)
    page = get(admin, f"/admin/job/{world.job.id}/edit")
    fields = dict(form_fields(page))
    fields.update(parent=str(child.id), description="changed")
    res = post(admin, f"/admin/job/{world.job.id}/edit", fields, status=400)
    assert "is a cycle" in error_of(res, "parent")
    assert res.forms["admin-form"]["description"].value == "changed"
    dbsession.expire_all()
    job = dbsession.get(Job, world.job.id)
    assert job.parent_id is None and job.description == ""


def test_a_job_form_lists_every_writable_field_of_the_api(admin, world):
    from jobrunner.api.resources import RESOURCE_TYPES

    page = get(admin, f"/admin/job/{world.job.id}/edit")
    for node in RESOURCE_TYPES["job"].schema.children:
        if not node.readonly and node.name != "reschedule_excludes":
            assert f'name="{node.name}"' in page.text, node.name
            assert f'<label for="f-{node.name}"' in page.text or f"<legend>" in page.text
    assert 'class="code-editor"' in page.text and 'id="schedule-preview"' in page.text


def test_a_template_change_renders_its_jobs_again(project_admin, world, dbsession):
    page = get(project_admin, f"/admin/job_template/{world.template.id}/edit")
    fields = dict(form_fields(page))
    fields["body"] = "#!/bin/bash\nset -e\n{{ content }}\n"
    post(project_admin, f"/admin/job_template/{world.template.id}/edit", fields, status=303)
    dbsession.expire_all()
    assert dbsession.get(Job, world.job.id).script_content == "#!/bin/bash\nset -e\necho hello\n"


def test_a_project_admin_creates_templates_in_his_projects_only(project_admin, world, other_world, dbsession):
    page = get(project_admin, "/admin/job_template/new")
    assert f'<option value="{world.project.id}"' in page.text
    assert f'<option value="{other_world.project.id}"' not in page.text
    post(project_admin, "/admin/job_template/new",
         {"title": "Python", "project": str(world.project.id), "body": "#!/usr/bin/env python3\n{{ content }}\n",
          "enqueue_is_enabled": "true"}, status=303)
    assert dbsession.query(JobTemplate).filter_by(title="Python", project_id=world.project.id).count() == 1
    res = post(project_admin, "/admin/job_template/new",
               {"title": "Python", "project": str(world.project.id)}, status=400)
    assert error_of(res, "title") == "A template with this title exists in this project already."


def test_unchecked_boxes_are_false_and_checked_ones_send_true(admin, world, dbsession):
    page = get(admin, f"/admin/job/{world.job.id}/edit")
    assert page.forms["admin-form"]["enqueue_is_enabled"].checked
    fields = [(n, v) for n, v in form_fields(page) if n != "enqueue_is_enabled"] + [("run_on_all_workers", "true")]
    post(admin, f"/admin/job/{world.job.id}/edit", fields, status=303)
    dbsession.expire_all()
    job = dbsession.get(Job, world.job.id)
    assert not job.enqueue_is_enabled and job.run_on_all_workers
    assert dbsession.query(RescheduleExclude).filter_by(job_id=job.id).count() == 0
