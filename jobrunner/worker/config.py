"""Command line and ini file of the worker daemon."""

import argparse
import configparser
import dataclasses
import logging
import math
import os
import tempfile
from importlib import metadata

from .logbuffer import MIN_LOG_BYTES

SECTION = "jobrunner_worker"
CONFIG_PATH_ENV = "CONFIG_PATH"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(Exception):
    """The worker cannot start with the configuration it was given."""


def worker_version():
    try:
        return metadata.version("jobrunner")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    api_base_url: str
    api_key: str
    secret: str
    concurrent_jobs: int = 4
    log_level: str = "info"
    max_log_bytes: int = 819200
    script_temp_path: str = dataclasses.field(default_factory=tempfile.gettempdir)
    poll_interval: float = 1.0
    # Seconds the server may hold the enqueueable list open until a run is
    # due (its `wait`, at most 30); 0: list every poll_interval instead.
    poll_wait: float = 25.0
    ping_interval: float = 60.0
    # Certificates for an HTTPS server (a file of PEM certificates); the
    # system's by default. Verification itself is never off.
    ca_bundle: str | None = None
    # The ini's own path, for the start-up warnings; never given to scripts.
    path: str | None = None

    @property
    def logging_level(self):
        return getattr(logging, self.log_level.upper())


def build_argument_parser():
    parser = argparse.ArgumentParser(
        prog="jobrunner-worker",
        description="Claim due runs from the Job-Runner server and execute them.",
    )
    parser.add_argument(
        "worker_ini",
        nargs="?",
        metavar="WORKER_INI",
        help="ini file with a [jobrunner_worker] section",
    )
    parser.add_argument(
        "--config-path",
        metavar="PATH",
        help=f"ini file, as WORKER_INI (default: ${CONFIG_PATH_ENV})",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {worker_version()}"
    )
    return parser


def resolve_config_path(worker_ini, config_path, environ):
    """The ini path from the positional argument, the option or the environment."""
    if worker_ini and config_path and worker_ini != config_path:
        raise ConfigError(
            "WORKER_INI and --config-path name different files; give only one"
        )
    path = worker_ini or config_path or environ.get(CONFIG_PATH_ENV)
    if not path:
        raise ConfigError(
            f"no configuration: give WORKER_INI, --config-path or ${CONFIG_PATH_ENV}"
        )
    return path


def _number(section, name, convert, default, minimum, exclusive=False):
    raw = section.get(name, "").strip()
    if not raw:
        return default
    try:
        value = convert(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
        relation = "greater than" if exclusive else "at least"
        raise ConfigError(f"{name} must be {relation} {minimum}, not {raw!r}")
    return value


MAX_POLL_WAIT = 30.0


def _poll_wait(section):
    value = _number(section, "poll_wait", float, 25.0, 0)
    if value > MAX_POLL_WAIT:
        raise ConfigError(f"poll_wait must be at most {MAX_POLL_WAIT:g}, not {value:g}")
    return value


def load_config(path):
    """Read the ``[jobrunner_worker]`` section of the ini file at ``path``."""
    # No interpolation: secrets may well contain "%".
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as ini_file:
            parser.read_file(ini_file)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    except configparser.Error as error:
        raise ConfigError(f"cannot parse {path}: {error}") from None
    if not parser.has_section(SECTION):
        raise ConfigError(f"{path} has no [{SECTION}] section")
    section = parser[SECTION]

    required = {}
    for name in ("api_base_url", "api_key", "secret"):
        value = section.get(name, "").strip()
        if not value:
            raise ConfigError(f"{name} is missing in [{SECTION}] of {path}")
        required[name] = value
    if not required["api_base_url"].startswith(("http://", "https://")):
        raise ConfigError("api_base_url must start with http:// or https://")

    log_level = section.get("log_level", "").strip().lower() or "info"
    if log_level not in LOG_LEVELS:
        raise ConfigError(
            f"log_level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}"
        )
    script_temp_path = (
        section.get("script_temp_path", "").strip() or tempfile.gettempdir()
    )
    ca_bundle = section.get("ca_bundle", "").strip() or None
    if ca_bundle is not None and not os.path.isfile(ca_bundle):
        raise ConfigError(f"ca_bundle {ca_bundle!r} is not a readable file")
    for name in ("verify", "insecure", "verify_ssl"):
        if name in section:
            raise ConfigError(
                f"{name} is not an option: certificates are always verified "
                "(name your own with ca_bundle)"
            )

    return WorkerConfig(
        api_base_url=required["api_base_url"],
        api_key=required["api_key"],
        secret=required["secret"],
        concurrent_jobs=_number(section, "concurrent_jobs", int, 4, 1),
        log_level=log_level,
        max_log_bytes=_number(section, "max_log_bytes", int, 819200, MIN_LOG_BYTES),
        script_temp_path=script_temp_path,
        poll_interval=_number(section, "poll_interval", float, 1.0, 0, exclusive=True),
        ping_interval=_number(section, "ping_interval", float, 60.0, 0, exclusive=True),
        poll_wait=_poll_wait(section),
        ca_bundle=ca_bundle,
        path=path,
    )


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def security_warnings(config):
    """What an operator should fix, said once at start."""
    import urllib.parse

    warnings = []
    parts = urllib.parse.urlsplit(config.api_base_url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS and not host.startswith("127."):
        warnings.append(
            f"api_base_url {config.api_base_url} is plain HTTP to another machine: the "
            "requests (job scripts, logs) travel unencrypted; use https://"
        )
    if config.path:
        try:
            mode = os.stat(config.path).st_mode
        except OSError:
            mode = 0
        if mode & 0o077:
            warnings.append(
                f"{config.path} holds the worker's secret and is open to other users "
                f"(mode {mode & 0o777:o}); chmod 600 it"
            )
    return warnings


def config_from_command_line(argv=None, environ=None):
    """Parse ``argv`` and load the ini; exits with status 2 on any error."""
    parser = build_argument_parser()
    args = parser.parse_args(argv)
    try:
        path = resolve_config_path(
            args.worker_ini, args.config_path, os.environ if environ is None else environ
        )
        return load_config(path)
    except ConfigError as error:
        parser.error(str(error))
