"""Start-up settings: production.ini reads the environment and refuses a
default session secret; every jobrunner.* key is parsed once, into Settings."""
import dataclasses
import os
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest

from jobrunner import main
from jobrunner.security import InsecureSettings
from jobrunner.settings import Settings, SettingsError, load_settings, resolve_settings

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCTION_INI = os.path.join(HERE, "production.ini")


def production_env(tmp_path, secret):
    env = dict(os.environ)
    env.update(
        JOBRUNNER_DATABASE_URL=f"sqlite:///{tmp_path}/prod.sqlite",
        JOBRUNNER_SESSION_SECRET=secret,
        JOBRUNNER_BASE_URL="https://jobs.example.com",
        JOBRUNNER_ADMIN_EMAILS="ops@example.com",
        JOBRUNNER_SMTP_HOST="127.0.0.1",
        JOBRUNNER_MAIL_SENDER="jobrunner@example.com",
    )
    return env


def load_production_app(env):
    code = (
        "from pyramid.paster import get_app; import sys; "
        f"app = get_app({PRODUCTION_INI!r}, 'main'); print(app.registry.settings['sqlalchemy.url'])"
    )
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("secret", ["", "change-me", "short"])
def test_production_refuses_a_default_or_short_secret(tmp_path, secret):
    result = load_production_app(production_env(tmp_path, secret))
    assert result.returncode != 0
    assert "JOBRUNNER_SESSION_SECRET" in result.stderr


def test_production_takes_its_settings_from_the_environment(tmp_path):
    result = load_production_app(production_env(tmp_path, "x" * 40))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sqlite:///{tmp_path}/prod.sqlite"


def test_development_settings_need_no_strong_secret(tmp_path):
    app = main({}, **{"sqlalchemy.url": f"sqlite:///{tmp_path}/dev.sqlite", "jobrunner.session_secret": "x"})
    assert app.registry.settings["jobrunner.session_secret"] == "x"


def test_production_flag_checks_the_secret_in_process(tmp_path):
    with pytest.raises(InsecureSettings):
        main({}, **{"sqlalchemy.url": f"sqlite:///{tmp_path}/p.sqlite", "jobrunner.production": "true",
                    "jobrunner.session_secret": "change-me"})


# --- the parsed settings object -----------------------------------------------------


def test_an_empty_section_gives_the_documented_defaults():
    settings = Settings.from_mapping({})
    assert settings.timezone == "UTC" and settings.tz == ZoneInfo("UTC")
    assert settings.base_url == "" and settings.mail_base_url == "http://localhost:6543"
    assert settings.admin_emails == () and settings.mail_folder == "" and settings.mail_sender is None
    assert settings.mail_in_background is True
    assert settings.production is False and settings.secure_cookies is False
    assert settings.cookie_secret == "change-me"
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.scheduler_embedded is False and settings.scheduler_interval == 5
    assert (settings.ping_interval, settings.ping_margin, settings.unresponsive_after_intervals) == (60, 15, 3)
    assert settings.unresponsive_limit == 3 * 60 + 15


def test_every_key_is_parsed_once_into_its_type():
    settings = Settings.from_mapping({
        "sqlalchemy.url": "sqlite:///x.sqlite",
        "jobrunner.timezone": "Europe/Amsterdam",
        "jobrunner.base_url": " https://jobs.example.com/ ",
        "jobrunner.admin_emails": "a@example.com, b@example.com\nA@example.com",
        "jobrunner.mail_folder": "/tmp/mail",
        "mail.default_sender": "jobrunner@example.com",
        "jobrunner.production": "true",
        "jobrunner.session_secret": "s" * 40,
        "jobrunner.secure_cookies": "yes",
        "jobrunner.max_body_bytes": "2048",
        "jobrunner.scheduler.embedded": "on",
        "jobrunner.scheduler.interval": "0.5",
        "jobrunner.worker.ping_interval": "10",
        "jobrunner.worker.ping_margin": "5",
        "jobrunner.worker.unresponsive_after_intervals": "2",
    })
    assert settings.database_url == "sqlite:///x.sqlite"
    assert settings.tz == ZoneInfo("Europe/Amsterdam")
    assert settings.base_url == settings.mail_base_url == "https://jobs.example.com/"
    assert settings.admin_emails == ("a@example.com", "b@example.com")
    assert (settings.mail_folder, settings.mail_sender) == ("/tmp/mail", "jobrunner@example.com")
    assert settings.production and settings.secure_cookies and settings.scheduler_embedded
    assert settings.cookie_secret == "s" * 40
    assert settings.max_body_bytes == 2048 and settings.scheduler_interval == 0.5
    assert settings.unresponsive_limit == 2 * 10 + 5
    assert settings.ini["mail.default_sender"] == "jobrunner@example.com"
    settings.check_production_secret()  # long enough: no error


@pytest.mark.parametrize("name, value", [
    ("jobrunner.scheduler.interval", "soon"),
    ("jobrunner.worker.ping_interval", "-1"),
    ("jobrunner.worker.ping_margin", "x"),
    ("jobrunner.max_body_bytes", "ten"),
])
def test_a_bad_value_is_refused_by_name(name, value):
    with pytest.raises(SettingsError, match=name.replace(".", r"\.")):
        Settings.from_mapping({name: value})


def test_the_settings_cannot_change_after_start_up():
    settings = Settings.from_mapping({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.timezone = "Europe/Amsterdam"


def test_the_web_app_keeps_the_parsed_settings_in_its_registry(tmp_path):
    app = main({}, **{"sqlalchemy.url": f"sqlite:///{tmp_path}/dev.sqlite",
                      "jobrunner.timezone": "Europe/Amsterdam", "jobrunner.max_body_bytes": "100"})
    assert isinstance(app.registry.jobrunner_settings, Settings)
    assert app.registry.jobrunner_settings.timezone == "Europe/Amsterdam"
    assert app.registry.jobrunner_settings.max_body_bytes == 100


def test_the_command_lines_read_an_ini_file_the_same_way(tmp_path, monkeypatch):
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[app:main]\nuse = egg:jobrunner\n"
        "sqlalchemy.url = env:TEST_JOBRUNNER_DB\n"
        "jobrunner.base_url = env:TEST_JOBRUNNER_BASE\n"
        "jobrunner.timezone = Europe/Amsterdam\n"
        "jobrunner.worker.ping_interval = 10\n"
    )
    monkeypatch.setenv("TEST_JOBRUNNER_DB", f"sqlite:///{tmp_path}/cli.sqlite")
    monkeypatch.setenv("TEST_JOBRUNNER_BASE", "https://jobs.example.com")
    settings = load_settings(str(ini))
    assert settings.database_url == f"sqlite:///{tmp_path}/cli.sqlite"
    assert settings.base_url == "https://jobs.example.com"
    assert settings.timezone == "Europe/Amsterdam" and settings.ping_interval == 10
    assert settings == Settings.from_mapping(resolve_settings(dict(settings.ini)))


def test_a_scheduler_with_a_bad_setting_exits_with_a_message(tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[app:main]\nuse = egg:jobrunner\n"
        f"sqlalchemy.url = sqlite:///{tmp_path}/s.sqlite\n"
        "jobrunner.scheduler.interval = soon\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "jobrunner.scheduling.daemon", str(ini)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "jobrunner.scheduler.interval" in result.stderr


def test_concurrent_hashes_is_a_whole_number_of_at_least_one():
    from jobrunner.settings import Settings, SettingsError

    assert Settings.from_mapping({"jobrunner.login.max_concurrent_hashes": "3"}).login_max_concurrent_hashes == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(SettingsError):
            Settings.from_mapping({"jobrunner.login.max_concurrent_hashes": bad})


def test_max_waiting_is_a_whole_number():
    from jobrunner.settings import DEFAULT_API_MAX_WAITING, Settings, SettingsError

    assert Settings.from_mapping({}).api_max_waiting == DEFAULT_API_MAX_WAITING
    assert Settings.from_mapping({"jobrunner.api.max_waiting": "0"}).api_max_waiting == 0
    assert Settings.from_mapping({"jobrunner.api.max_waiting": "40"}).api_max_waiting == 40
    for bad in ("-1", "many", "2.5"):
        with pytest.raises(SettingsError):
            Settings.from_mapping({"jobrunner.api.max_waiting": bad})
