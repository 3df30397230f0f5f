"""Schema upgrades with alembic, from the repository or the installed package."""
import os

from alembic import command
from alembic.config import Config

from .models import normalize_url

HERE = os.path.dirname(os.path.abspath(__file__))


def script_location():
    for candidate in (os.path.join(HERE, "alembic"), os.path.join(HERE, "..", "alembic")):
        if os.path.exists(os.path.join(candidate, "env.py")):
            return os.path.abspath(candidate)
    raise RuntimeError("The alembic migrations are missing from this installation.")


def alembic_config(url, connection=None):
    config = Config()
    config.set_main_option("script_location", script_location())
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url, connection=None):
    command.upgrade(alembic_config(url, connection), "head")
