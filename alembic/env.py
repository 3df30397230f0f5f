"""Alembic environment: the URL comes from the app's settings (init-db)."""
from alembic import context
from sqlalchemy import engine_from_config, pool

from jobrunner.models import metadata
from jobrunner.models import get_engine

config = context.config


def run_migrations_offline():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = get_engine({"sqlalchemy.url": config.get_main_option("sqlalchemy.url"),
                         "sqlalchemy.poolclass": pool.NullPool})
    with engine.connect() as connection:
        _run(connection)


def _run(connection):
    # render_as_batch lets later revisions alter tables on SQLite too.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

__all__ = ["engine_from_config"]
