import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from jobrunner.worker.config import (
    ConfigError,
    config_from_command_line,
    load_config,
    worker_version,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """
[jobrunner_worker]
api_base_url = http://127.0.0.1:6543/
api_key = worker1
secret = very%secret
"""


def write_ini(tmp_path, text, name="worker.ini"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_defaults(tmp_path):
    config = load_config(write_ini(tmp_path, MINIMAL))
    assert config.api_base_url == "http://127.0.0.1:6543/"
    assert config.api_key == "worker1"
    # No interpolation: "%" is an ordinary character in secrets.
    assert config.secret == "very%secret"
    assert config.concurrent_jobs == 4
    assert config.log_level == "info"
    assert config.max_log_bytes == 819200
    assert config.script_temp_path == tempfile.gettempdir()
    assert config.poll_interval == 1.0
    assert config.poll_wait == 25.0
    assert config.ping_interval == 60.0


def test_all_settings(tmp_path):
    path = write_ini(tmp_path, MINIMAL + textwrap.dedent("""
        concurrent_jobs = 2
        log_level = DEBUG
        max_log_bytes = 5000
        script_temp_path = /var/tmp
        poll_interval = 0.1
        poll_wait = 0
        ping_interval = 0.5
    """))
    config = load_config(path)
    assert config.concurrent_jobs == 2
    assert config.log_level == "debug"
    assert config.max_log_bytes == 5000
    assert config.script_temp_path == "/var/tmp"
    assert config.poll_interval == 0.1
    assert config.poll_wait == 0
    assert config.ping_interval == 0.5


@pytest.mark.parametrize(
    "line, message",
    [
        ("concurrent_jobs = 0", "concurrent_jobs"),
        ("concurrent_jobs = many", "concurrent_jobs"),
        ("poll_interval = 0", "poll_interval"),
        ("ping_interval = -1", "ping_interval"),
        ("poll_wait = -1", "poll_wait"),
        ("poll_wait = 31", "poll_wait"),
        ("poll_wait = inf", "poll_wait"),
        ("ping_interval = nan", "ping_interval"),
        ("max_log_bytes = 10", "max_log_bytes"),
        ("log_level = loud", "log_level"),
    ],
)
def test_invalid_values_are_named(tmp_path, line, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_ini(tmp_path, MINIMAL + line + "\n"))


@pytest.mark.parametrize("name", ["api_base_url", "api_key", "secret"])
def test_required_settings(tmp_path, name):
    text = "\n".join(
        line for line in MINIMAL.splitlines() if not line.startswith(name)
    )
    with pytest.raises(ConfigError, match=name):
        load_config(write_ini(tmp_path, text))


def test_missing_section_and_file(tmp_path):
    with pytest.raises(ConfigError, match=r"\[jobrunner_worker\]"):
        load_config(write_ini(tmp_path, "[other]\nx = 1\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "absent.ini"))


def test_positional_path(tmp_path):
    path = write_ini(tmp_path, MINIMAL)
    assert config_from_command_line([path], environ={}).api_key == "worker1"


def test_config_path_option(tmp_path):
    path = write_ini(tmp_path, MINIMAL)
    config = config_from_command_line(["--config-path", path], environ={})
    assert config.api_key == "worker1"


def test_config_path_environment_variable(tmp_path):
    path = write_ini(tmp_path, MINIMAL)
    config = config_from_command_line([], environ={"CONFIG_PATH": path})
    assert config.api_key == "worker1"


def test_argument_wins_over_environment(tmp_path):
    path = write_ini(tmp_path, MINIMAL)
    other = write_ini(tmp_path, MINIMAL.replace("worker1", "worker2"), "other.ini")
    config = config_from_command_line([other], environ={"CONFIG_PATH": path})
    assert config.api_key == "worker2"


def test_conflicting_paths_exit_2(tmp_path, capsys):
    path = write_ini(tmp_path, MINIMAL)
    other = write_ini(tmp_path, MINIMAL, "other.ini")
    with pytest.raises(SystemExit) as exit_info:
        config_from_command_line([path, "--config-path", other], environ={})
    assert exit_info.value.code == 2
    assert "different files" in capsys.readouterr().err


def test_no_configuration_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        config_from_command_line([], environ={})
    assert exit_info.value.code == 2
    assert "CONFIG_PATH" in capsys.readouterr().err


def test_missing_api_key_exits_2_with_a_clear_message(tmp_path):
    path = write_ini(tmp_path, MINIMAL.replace("api_key = worker1", ""))
    completed = subprocess.run(
        [sys.executable, "-m", "jobrunner.worker", path],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "api_key is missing" in completed.stderr


def test_version_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        config_from_command_line(["--version"], environ={})
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"jobrunner-worker {worker_version()}"
    assert worker_version()
