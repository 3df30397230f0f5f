"""Migration 0003 upgrades (and downgrades) a database with rows in it."""
from alembic import command
from sqlalchemy import create_engine, inspect, text

from jobrunner.migrations import alembic_config, upgrade
from tests.scheduling.test_schedule_columns import _insert_a_job_and_a_run, fresh_database  # noqa: F401


def test_upgrade_keeps_the_rows_and_fills_the_new_columns(fresh_database):  # noqa: F811
    command.upgrade(alembic_config(fresh_database), "0002")
    engine = create_engine(fresh_database)
    with engine.begin() as connection:
        _insert_a_job_and_a_run(connection)
    engine.dispose()
    upgrade(fresh_database)
    engine = create_engine(fresh_database)
    with engine.begin() as connection:
        assert connection.execute(text("SELECT count(*) FROM run")).scalar() == 1
        job = connection.execute(text("SELECT webhook_urls, webhook_on_success FROM job")).one()
        assert (job[0], bool(job[1])) == ("", False)
        for table in ("project", "worker_pool", "job_template"):
            assert connection.execute(text(f"SELECT webhook_urls FROM {table}")).scalar() == ""
        tally = dict(connection.execute(text("SELECT result, count FROM run_purge_tally")).all())
        assert tally == {"success": 0, "failure": 0}
    engine.dispose()

    command.downgrade(alembic_config(fresh_database), "0002")
    engine = create_engine(fresh_database)
    tables = set(inspect(engine).get_table_names())
    columns = {column["name"] for column in inspect(engine).get_columns("job")}
    with engine.connect() as connection:
        runs = connection.execute(text("SELECT count(*) FROM run")).scalar()
    engine.dispose()
    assert not tables & {"audit_event", "webhook_delivery", "run_purge_tally"}
    assert "webhook_urls" not in columns and "webhook_on_success" not in columns
    assert runs == 1
