"""Settings from the paste ini, with `env:NAME` values read from the environment.

production.ini keeps no secrets: `sqlalchemy.url = env:JOBRUNNER_DATABASE_URL`.
Every entry point (web app, scheduler, admin CLI) resolves settings here.
"""
import os

ENV_PREFIX = "env:"


class MissingEnvironment(RuntimeError):
    pass


def resolve_settings(settings):
    resolved = dict(settings)
    missing = []
    for key, value in settings.items():
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            name = value[len(ENV_PREFIX):].strip()
            if name in os.environ:
                resolved[key] = os.environ[name]
            else:
                resolved[key] = ""
                missing.append((key, name))
    if missing and "sqlalchemy.url" in dict(missing):
        raise MissingEnvironment(
            f"sqlalchemy.url comes from the environment variable {dict(missing)['sqlalchemy.url']}, which is not set."
        )
    return resolved


def get_settings(config_uri):
    """The [app:main] settings of an ini file, resolved (for the CLIs)."""
    from pyramid.paster import get_appsettings

    return resolve_settings(get_appsettings(config_uri))
