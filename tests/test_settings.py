"""Start-up settings: production.ini reads the environment and refuses a
default session secret."""
import os
import subprocess
import sys

import pytest

from jobrunner import main
from jobrunner.security import InsecureSettings

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
