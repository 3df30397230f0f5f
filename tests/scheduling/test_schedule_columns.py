"""The schedule columns: the 0002 migration upgrades a database with rows in it."""
import os
from datetime import datetime, timezone

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import Session

from jobrunner.migrations import alembic_config, upgrade
from jobrunner.models import Job, Run, get_engine
from jobrunner.scheduling.schedule import Schedule, next_time
from tests.admin.conftest import FreshPostgres


@pytest.fixture
def fresh_database(tmp_path):
    base = os.environ.get("JOBRUNNER_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_path}/migration.sqlite"
        return
    database = FreshPostgres(base)
    yield database.url
    database.drop()


def _insert_a_job_and_a_run(connection):
    """Rows as a server of the 0001 schema writes them."""
    statements = [
        "INSERT INTO project (id, title, description, notification_addresses, enqueue_is_enabled)"
        " VALUES (1, 'P', '', '', true)",
        "INSERT INTO worker_pool (id, title, description, notification_addresses, enqueue_is_enabled)"
        " VALUES (1, 'Pool', '', '', true)",
        "INSERT INTO job_template (id, title, description, body, project_id, notification_addresses,"
        " enqueue_is_enabled) VALUES (1, 'T', '', '', 1, '', true)",
        "INSERT INTO job (id, title, description, job_template_id, worker_pool_id, script_content_partial,"
        " script_content, enqueue_is_enabled, reschedule_interval, reschedule_interval_type,"
        " notification_addresses, run_on_all_workers, schedule_children_on_error, fail_times)"
        " VALUES (1, 'J', '', 1, 1, '', '', true, 12, 'HOUR', '', false, false, 0)",
        "INSERT INTO run (id, job_id, schedule_dts, is_manual, schedule_children)"
        " VALUES (1, 1, '2027-10-30 04:00:00', false, true)",
    ]
    for statement in statements:
        connection.execute(text(statement))


def test_upgrade_fills_the_new_columns_of_existing_rows(fresh_database):
    command.upgrade(alembic_config(fresh_database), "0001")
    engine = create_engine(fresh_database)
    with engine.begin() as connection:
        _insert_a_job_and_a_run(connection)
    engine.dispose()

    upgrade(fresh_database)

    engine = get_engine({"sqlalchemy.url": fresh_database})
    with Session(engine) as session:
        job = session.get(Job, 1)
        assert (job.cron_expression, job.timezone, job.timeout) == (None, None, None)
        assert (job.concurrency_policy, job.retries, job.retry_delay, job.misfire_policy) == (
            "forbid", 0, 60, "skip")
        run = session.get(Run, 1)
        assert (run.attempt, run.timed_out) == (1, False)
        # The old row computes with the new calculator: 12 HOUR keeps 06:00
        # and 18:00 local time across October's change in Amsterdam.
        after = next_time(Schedule.of_job(job), run.schedule_dts, run.schedule_dts, "Europe/Amsterdam")
        assert after == datetime(2027, 10, 30, 16, tzinfo=timezone.utc)
        following = next_time(Schedule.of_job(job), after, after, "Europe/Amsterdam")
        assert following == datetime(2027, 10, 31, 5, tzinfo=timezone.utc)

        # A writer that leaves the new columns out (an older server) still works.
        session.execute(text(
            "INSERT INTO run (id, job_id, schedule_dts, is_manual, schedule_children)"
            " VALUES (2, 1, '2027-11-01 00:00:00', false, true)"))
        session.commit()
        attempts = session.execute(text("SELECT attempt, timed_out FROM run ORDER BY id")).all()
        assert [tuple(row) for row in attempts] == [(1, False), (1, False)]
    engine.dispose()


def test_downgrade_removes_the_columns_and_keeps_the_rows(fresh_database):
    command.upgrade(alembic_config(fresh_database), "0001")
    engine = create_engine(fresh_database)
    with engine.begin() as connection:
        _insert_a_job_and_a_run(connection)
    engine.dispose()
    upgrade(fresh_database)
    command.downgrade(alembic_config(fresh_database), "0001")
    engine = create_engine(fresh_database)
    columns = {column["name"] for column in inspect(engine).get_columns("job")}
    run_columns = {column["name"] for column in inspect(engine).get_columns("run")}
    with engine.connect() as connection:
        runs = connection.execute(text("SELECT count(*) FROM run")).scalar()
    engine.dispose()
    assert "cron_expression" not in columns and "misfire_policy" not in columns
    assert "attempt" not in run_columns and "title" in columns
    assert runs == 1
