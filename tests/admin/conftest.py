"""A fresh database and ini file for driving `jobrunner-admin` in a subprocess."""
import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from jobrunner.migrations import upgrade
from jobrunner.models import get_engine, normalize_url

BIN = os.path.dirname(sys.executable)
ADMIN = os.path.join(BIN, "jobrunner-admin")


class FreshPostgres:
    """A database of its own, created with CREATE DATABASE and dropped after."""

    def __init__(self, base_url):
        self.server = make_url(normalize_url(base_url))
        self.name = f"{self.server.database}_admin_{uuid.uuid4().hex[:10]}"
        self._execute(f'CREATE DATABASE "{self.name}"')
        self.url = self.server.set(database=self.name).render_as_string(hide_password=False)

    def _execute(self, statement):
        admin = create_engine(self.server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(statement))
        admin.dispose()

    def drop(self):
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def write_ini(path, database_url, **settings):
    values = {
        "sqlalchemy.url": database_url,
        "jobrunner.timezone": "Europe/Amsterdam",
        "jobrunner.base_url": "http://jobrunner.example:6543",
        "jobrunner.session_secret": "admin-test-secret",
        **settings,
    }
    lines = ["[app:main]", "use = egg:jobrunner"]
    # "%" would be interpolation in a paste ini.
    lines += [f"{key} = {value.replace('%', '%%')}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run_admin(*args, input=None, cwd=None):
    return subprocess.run([ADMIN, *args], input=input, capture_output=True, text=True, cwd=cwd,
                          timeout=120)


class AdminCLI:
    """Runs the console script against one ini file and database."""

    def __init__(self, tmp_path, database_url):
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.ini = write_ini(tmp_path / "admin.ini", database_url)
        self.engine = None

    def __call__(self, *args, input=None, ini=None):
        return run_admin(ini or self.ini, *args, input=input, cwd=self.tmp_path)

    def ok(self, *args, input=None):
        result = self(*args, input=input)
        assert result.returncode == 0, result.stderr
        return result

    def session(self):
        if self.engine is None:
            self.engine = get_engine({"sqlalchemy.url": self.database_url})
        return sessionmaker(bind=self.engine)()

    def close(self):
        if self.engine is not None:
            self.engine.dispose()


@pytest.fixture
def empty_database(tmp_path):
    """The URL of a database without tables."""
    base = os.environ.get("JOBRUNNER_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_path}/admin.sqlite"
        return
    database = FreshPostgres(base)
    yield database.url
    database.drop()


@pytest.fixture
def cli(tmp_path, empty_database):
    """jobrunner-admin on a migrated, empty database of its own."""
    upgrade(empty_database)
    admin_cli = AdminCLI(tmp_path, empty_database)
    yield admin_cli
    admin_cli.close()
