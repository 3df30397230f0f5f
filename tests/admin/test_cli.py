"""`jobrunner-admin` through its console script, in a subprocess."""
import configparser
import os
import stat

import pytest
from sqlalchemy import inspect, select

from jobrunner.loader import parse_yaml
from jobrunner.models import Group, Job, Run, User, Worker
from jobrunner.security.passwords import check_password
from jobrunner.worker.config import load_config

from .conftest import AdminCLI, run_admin, write_ini

COMMANDS = ("init-db", "load", "dump", "add-user", "set-password", "add-group", "add-worker",
            "list", "schedule")

SETUP = """
groups: [Ops, Viewers]
workers:
  - {title: Local worker, api_key: local-key, secret: local-secret}
worker_pools:
  - {title: Local, workers: [local-key]}
projects:
  - {title: Alpha, worker_pools: [Local], groups: [Viewers], auth_groups: [Ops]}
  - {title: Beta, worker_pools: [Local]}
job_templates:
  - {project: Alpha, title: Shell, body: "#!/bin/sh\\n{{ content }}\\n"}
  - {project: Beta, title: Shell, body: "#!/bin/sh\\n{{ content }}\\n"}
jobs:
  - project: Alpha
    job_template: Shell
    title: Backup
    worker_pool: Local
    script_content_partial: echo backup
    reschedule_interval: 1
    reschedule_interval_type: DAY
    reschedule_excludes: [{start_time: 22:00, end_time: "23:00", note: maintenance}]
    schedule_dts: 2030-01-01 03:00
  - {project: Alpha, job_template: Shell, title: Report, worker_pool: Local, parent: Backup}
  - {project: Beta, job_template: Shell, title: Backup, worker_pool: Local}
"""


def test_help_for_the_program_and_every_command(tmp_path):
    result = run_admin("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    for command in COMMANDS:
        # Help needs no settings: the ini is not read.
        result = run_admin("no-such.ini", command, "--help", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: jobrunner-admin CONFIG_URI {command}")


@pytest.mark.parametrize("args, message", [
    ((), "the following arguments are required: CONFIG_URI, COMMAND"),
    (("x.ini",), "the following arguments are required: COMMAND"),
    (("x.ini", "frobnicate"), "invalid choice: 'frobnicate'"),
    (("x.ini", "list", "planets"), "invalid choice: 'planets'"),
    (("x.ini", "add-user"), "the following arguments are required: USERNAME"),
    (("x.ini", "add-user", "bob", "--password", "secret"), "unrecognized arguments"),
    (("x.ini", "add-worker", "w", "--concurrent-jobs", "0"), "must be at least 1, not 0"),
    (("x.ini", "add-worker", "w", "--concurrent-jobs", "many"), "not a whole number: 'many'"),
    (("x.ini", "add-group", " "), "must not be empty"),
    (("x.ini", "dump", "a", "b"), "unrecognized arguments: b"),
])
def test_usage_errors_exit_with_2(tmp_path, args, message):
    result = run_admin(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.startswith("usage: jobrunner-admin")


def test_unreadable_settings_exit_with_1(tmp_path):
    cli = AdminCLI(tmp_path, "sqlite://")
    result = cli("list", "users", ini=str(tmp_path / "missing.ini"))
    assert result.returncode == 1
    assert "cannot read the settings of" in result.stderr and "missing.ini" in result.stderr
    no_url = tmp_path / "no-url.ini"
    no_url.write_text("[app:main]\nuse = egg:jobrunner\n")
    result = cli("list", "users", ini=str(no_url))
    assert result.returncode == 1
    assert "the settings have no sqlalchemy.url" in result.stderr


def test_init_db_creates_and_upgrades_the_tables(tmp_path, empty_database):
    cli = AdminCLI(tmp_path, empty_database)
    result = cli.ok("init-db")
    assert "up to date" in result.stdout
    with cli.session() as session:
        tables = set(inspect(session.get_bind()).get_table_names())
    assert {"job", "run", "user", "worker_pool", "alembic_version"} <= tables
    cli.ok("init-db")  # upgrading an up-to-date database is fine
    cli.ok("list", "jobs")
    cli.close()


def test_init_db_makes_the_folder_of_a_sqlite_database(tmp_path):
    url = f"sqlite:///{tmp_path}/var/db/jobrunner.sqlite"
    ini = write_ini(tmp_path / "new.ini", url)
    assert AdminCLI(tmp_path, url)("init-db", ini=ini).returncode == 0
    assert (tmp_path / "var" / "db" / "jobrunner.sqlite").exists()


def test_init_db_fails_without_the_database(tmp_path, empty_database):
    if empty_database.startswith("sqlite"):
        (tmp_path / "a-file").write_text("")
        missing = f"sqlite:///{tmp_path}/a-file/x.sqlite"
        expected = "cannot create the folder of the SQLite database"
    else:
        missing = empty_database + "_missing"
        expected = "database error"
    ini = write_ini(tmp_path / "missing-db.ini", missing)
    result = AdminCLI(tmp_path, missing)("init-db", ini=ini)
    assert result.returncode == 1
    assert expected in result.stderr


def test_load_is_idempotent_and_dump_round_trips(cli, tmp_path):
    setup = tmp_path / "setup.yaml"
    setup.write_text(SETUP)
    result = cli.ok("load", str(setup))
    assert "created job 'Backup' (project 'Alpha')" in result.stdout
    assert "scheduled job 'Backup' (project 'Alpha'): 2030-01-01T02:00:00+00:00" in result.stdout
    assert result.stdout.strip().endswith("12 change(s).")
    assert cli.ok("load", str(setup)).stdout == "No changes.\n"

    dumped = cli.ok("dump").stdout
    data = parse_yaml(dumped)
    assert [job["title"] for job in data["jobs"]] == ["Backup", "Report", "Backup"]
    assert data["jobs"][0]["reschedule_excludes"] == [
        {"start_time": "22:00", "end_time": "23:00", "note": "maintenance"}]
    cli.ok("dump", str(tmp_path / "dump.yaml"))
    assert (tmp_path / "dump.yaml").read_text() == dumped
    assert stat.S_IMODE(os.stat(tmp_path / "dump.yaml").st_mode) == 0o600  # holds secrets
    assert cli.ok("load", "-", input=dumped).stdout == "No changes.\n"
    assert cli.ok("dump").stdout == dumped

    changed = SETUP.replace("echo backup", "echo full backup")
    result = cli.ok("load", "--dry-run", "-", input=changed)
    assert "updated job 'Backup' (project 'Alpha'): script_content_partial" in result.stdout
    assert "nothing was stored" in result.stdout
    assert cli.ok("dump").stdout == dumped
    result = cli.ok("load", "-", input=changed)
    assert result.stdout.endswith("1 change(s).\n")
    assert "echo full backup" in cli.ok("dump").stdout


@pytest.mark.parametrize("content, message", [
    ("jobs: [unclosed", "not valid YAML"),
    (SETUP.replace("worker_pool: Local, parent: Backup", "worker_pool: Elsewhere, parent: Backup"),
     "jobs[1] (Report): worker_pool: no worker pool 'Elsewhere'"),
    (SETUP.replace("parent: Backup", "parent: Report"),
     "jobs[1] (Report): parent: the chain Report -> Report is a cycle"),
    (SETUP + "planets: []\n", "unknown section(s): planets"),
])
def test_invalid_file_exits_with_1_and_changes_nothing(cli, content, message):
    cli.ok("load", "-", input="groups: [Existing]\n")
    before = cli.ok("dump").stdout
    result = cli("load", "-", input=content)
    assert result.returncode == 1
    assert f"jobrunner-admin: error: {message}" in result.stderr
    assert cli.ok("dump").stdout == before


def test_load_of_a_missing_file(cli, tmp_path):
    result = cli("load", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr and "nope.yaml" in result.stderr


def test_groups_users_and_passwords(cli):
    assert cli.ok("add-group", "Ops").stdout == "Group 'Ops' added.\n"
    result = cli("add-group", "Ops")
    assert result.returncode == 1 and "the group 'Ops' exists already" in result.stderr

    result = cli.ok("add-user", "alice", "--email", "alice@example.com", "--group", "Ops",
                    input="correct horse\n")
    assert result.stdout == "User 'alice' added.\n"
    assert "correct horse" not in result.stdout + result.stderr
    cli.ok("add-user", "root", "--admin", input="battery staple\n")
    with cli.session() as session:
        alice = session.scalar(select(User).where(User.username == "alice"))
        assert check_password(alice.password_hash, "correct horse")
        assert alice.email == "alice@example.com" and not alice.is_admin
        assert [g.name for g in alice.groups] == ["Ops"]
        assert session.scalar(select(User.is_admin).where(User.username == "root")) is True

    for args, stdin, message in [
        (("add-user", "alice"), "x\n", "the user 'alice' exists already"),
        (("add-user", "bob", "--group", "Nobody"), "x\n", "no group 'Nobody'"),
        (("add-user", "bob"), "\n", "the password must not be empty"),
        (("add-user", "bob"), "", "the password must not be empty"),
        (("set-password", "nobody"), "x\n", "no user 'nobody'"),
        (("set-password", "alice"), "", "the password must not be empty"),
    ]:
        result = cli(*args, input=stdin)
        assert result.returncode == 1, args
        assert message in result.stderr, args
    with cli.session() as session:
        assert session.scalar(select(User).where(User.username == "bob")) is None

    assert cli.ok("set-password", "alice", input="new one\n").stdout == (
        "Password of 'alice' changed.\n")
    with cli.session() as session:
        alice = session.scalar(select(User).where(User.username == "alice"))
        assert check_password(alice.password_hash, "new one")
    listing = cli.ok("list", "users").stdout.splitlines()
    assert listing[0].split() == ["USERNAME", "EMAIL", "ADMIN", "ACTIVE", "GROUPS"]
    assert listing[1].split() == ["alice", "alice@example.com", "no", "yes", "Ops"]
    assert listing[2].split() == ["root", "-", "yes", "yes", "-"]
    assert cli.ok("list", "groups").stdout.splitlines()[1].split() == ["Ops", "1"]


def test_add_worker_prints_a_ready_worker_ini(cli, tmp_path):
    cli.ok("load", "-", input="worker_pools: [{title: Pool A}, {title: Pool B}]\n")
    result = cli.ok("add-worker", "Build box", "--pool", "Pool A", "--pool", "Pool B",
                    "--concurrent-jobs", "2")
    assert "Worker 'Build box'" in result.stderr
    ini = tmp_path / "worker.ini"
    ini.write_text(result.stdout)
    config = load_config(str(ini))
    assert config.api_base_url == "http://jobrunner.example:6543"
    assert config.concurrent_jobs == 2
    assert config.ping_interval == 60  # the server's jobrunner.worker.ping_interval (default)
    assert len(config.api_key) >= 32 and len(config.secret) >= 32
    with cli.session() as session:
        worker = session.scalar(select(Worker).where(Worker.api_key == config.api_key))
        assert worker.secret == config.secret and worker.title == "Build box"
        assert [pool.title for pool in worker.pools] == ["Pool A", "Pool B"]
        assert worker.concurrent_jobs == 2

    result = cli.ok("add-worker", "Second", "-o", str(tmp_path / "second.ini"))
    assert result.stdout == ""
    assert stat.S_IMODE(os.stat(tmp_path / "second.ini").st_mode) == 0o600
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(tmp_path / "second.ini")
    assert parser["jobrunner_worker"]["api_key"] != config.api_key

    result = cli("add-worker", "Third", "--pool", "Pool Z")
    assert result.returncode == 1 and "no worker pool 'Pool Z'" in result.stderr
    listing = cli.ok("list", "workers").stdout
    assert "Build box" in listing and "Second" in listing and "Third" not in listing


def test_list_every_kind(cli):
    cli.ok("load", "-", input=SETUP)
    expected = {
        "users": [["USERNAME", "EMAIL", "ADMIN", "ACTIVE", "GROUPS"]],
        "groups": [["NAME", "USERS"], ["Ops", "0"], ["Viewers", "0"]],
        "workers": [["ID", "TITLE", "API_KEY", "ENABLED", "JOBS", "LAST_PING", "POOLS"],
                    ["1", "Local", "worker", "local-key", "yes", "4", "-", "Local"]],
        "pools": [["TITLE", "ENABLED", "WORKERS", "PROJECTS"],
                  ["Local", "yes", "Local", "worker", "Alpha,", "Beta"]],
        "projects": [["TITLE", "ENABLED", "POOLS", "VIEWERS", "ADMINS"],
                     ["Alpha", "yes", "Local", "Viewers", "Ops"], ["Beta", "yes", "Local", "-", "-"]],
        "jobs": [["PROJECT", "TEMPLATE", "TITLE", "POOL", "EVERY", "ENABLED", "NEXT_RUN"],
                 # the next run in jobrunner.timezone (Europe/Amsterdam)
                 ["Alpha", "Shell", "Backup", "Local", "1", "DAY", "yes", "2030-01-01", "03:00:00"],
                 ["Alpha", "Shell", "Report", "Local", "-", "yes", "-"],
                 ["Beta", "Shell", "Backup", "Local", "-", "yes", "-"]],
    }
    for kind, rows in expected.items():
        output = cli.ok("list", kind).stdout
        assert [line.split() for line in output.splitlines()] == rows, output


def test_schedule_a_manual_run(cli):
    cli.ok("load", "-", input=SETUP)
    result = cli("schedule", "Backup")
    assert result.returncode == 1
    assert "2 jobs are titled 'Backup' (projects: Alpha, Beta); give --project" in result.stderr
    result = cli.ok("schedule", "Backup", "--project", "Alpha")
    assert "of job 'Backup' (project 'Alpha') for now." in result.stdout
    cli.ok("schedule", "Report", "--no-children")
    for args, message in [
        (("schedule", "Nothing"), "no job 'Nothing'"),
        (("schedule", "Report", "--project", "Beta"), "no job 'Report' in project 'Beta'"),
        (("schedule", "Report", "--project", "Gamma"), "no project 'Gamma'"),
    ]:
        result = cli(*args)
        assert result.returncode == 1 and message in result.stderr, args

    with cli.session() as session:
        runs = session.execute(
            select(Job.title, Run.is_manual, Run.schedule_children, Run.schedule_id, Run.id)
            .join(Run.job).order_by(Run.id)
        ).all()
    # The first run is the one `schedule_dts` made; the manual runs follow.
    assert [(title, manual, children) for title, manual, children, *_ in runs] == [
        ("Backup", False, True), ("Backup", True, True), ("Report", True, False)]
    assert all(schedule_id == run_id for *_, schedule_id, run_id in runs)
    # A manual run does not touch the schedule: loading again adds nothing.
    assert cli.ok("load", "-", input=SETUP).stdout == "No changes.\n"
    with cli.session() as session:
        assert session.scalar(select(Group).where(Group.name == "Ops")) is not None
