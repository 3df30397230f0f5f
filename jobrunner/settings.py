"""Settings from the paste ini, read once at start-up.

`resolve_settings` replaces `env:NAME` values with the environment variable
NAME (production.ini keeps no secrets: `sqlalchemy.url = env:JOBRUNNER_DATABASE_URL`).
`Settings.from_mapping` turns the resolved [app:main] section into one typed,
frozen object with every `jobrunner.*` key parsed and defaulted here and
nowhere else. The web app keeps it in `registry.jobrunner_settings`; the
scheduler and the admin CLI build it the same way with `load_settings`.
"""
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from zoneinfo import ZoneInfo

ENV_PREFIX = "env:"

DEFAULT_TIMEZONE = "UTC"
DEFAULT_MAIL_BASE_URL = "http://localhost:6543"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_SCHEDULER_INTERVAL = 5.0
DEFAULT_PING_INTERVAL = 60.0
DEFAULT_PING_MARGIN = 15.0
DEFAULT_UNRESPONSIVE_AFTER_INTERVALS = 3.0
DEFAULT_WEBHOOK_TIMEOUT = 5.0
DEFAULT_RETENTION_KEEP_PER_JOB = 100

DEFAULT_SESSION_IDLE_TIMEOUT = 12 * 3600
DEFAULT_SESSION_MAX_AGE = 14 * 24 * 3600
DEFAULT_LOGIN_MAX_CONCURRENT_HASHES = 2
DEFAULT_WORKER_CACHE_SECONDS = 2.0
MAX_WORKER_CACHE_SECONDS = 10.0
# Enqueueable lists held open at once per server process (`wait`): each
# holds one waitress thread, so keep it well below the server's `threads`
# (the inis set threads = 24 for 16 waiters, leaving 8 for everything else).
DEFAULT_API_MAX_WAITING = 16
WORKER_WRITE_SCOPES = ("all", "protocol")

DEFAULT_SESSION_SECRET = "change-me"
KNOWN_DEFAULT_SECRETS = frozenset({"", DEFAULT_SESSION_SECRET, "development-only-secret", "test-secret"})
MIN_PRODUCTION_SECRET_LENGTH = 32


class MissingEnvironment(RuntimeError):
    pass


class InsecureSettings(RuntimeError):
    pass


class SettingsError(ValueError):
    """A setting whose value cannot be used."""


def resolve_settings(settings):
    """The settings with every `env:NAME` value read from the environment
    (an unset variable reads as empty; an unset database URL is an error)."""
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


def _text(mapping, name):
    return str(mapping.get(name) or "").strip()


def _seconds(mapping, name, default):
    value = mapping.get(name)
    if value is None or str(value).strip() == "":
        return float(default)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a number of seconds, got {value!r}") from None
    if seconds < 0:
        raise SettingsError(f"{name} must not be negative, got {value!r}")
    return seconds


def _worker_cache_seconds(mapping):
    name = "jobrunner.worker_cache_seconds"
    seconds = _seconds(mapping, name, DEFAULT_WORKER_CACHE_SECONDS)
    # A revoked key or a disabled worker must not work for long in the
    # processes that did not make the change.
    if seconds > MAX_WORKER_CACHE_SECONDS:
        raise SettingsError(f"{name} may be at most {MAX_WORKER_CACHE_SECONDS:g}, got {seconds:g}")
    return seconds


def _byte_count(mapping, name, default):
    value = mapping.get(name)
    if value is None or str(value).strip() == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a whole number of bytes, got {value!r}") from None


def _at_least_one(mapping, name, default):
    """A whole number of at least 1 (0 would refuse every login)."""
    count = _count(mapping, name, default)
    if count < 1:
        raise SettingsError(f"{name} must be at least 1, got {count}")
    return count


def _retention_days(mapping, name):
    """None (keep everything) or a positive number of days."""
    value = _text(mapping, name)
    if not value:
        return None
    try:
        days = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number of days, got {value!r}") from None
    if days <= 0:
        raise SettingsError(f"{name} must be positive, got {value!r}")
    return days


def _count(mapping, name, default):
    value = _text(mapping, name)
    if not value:
        return default
    try:
        count = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {value!r}") from None
    if count < 0:
        raise SettingsError(f"{name} must not be negative, got {value!r}")
    return count


@dataclass(frozen=True)
class Settings:
    """Every `jobrunner.*` setting, parsed. `ini` keeps the whole resolved
    section for the libraries configured from it (SQLAlchemy, pyramid_mailer)."""

    database_url: str = ""
    timezone: str = DEFAULT_TIMEZONE
    base_url: str = ""
    admin_emails: tuple = ()
    mail_folder: str = ""
    mail_sender: str | None = None
    # Mail is handed to a sender thread after the commit, so a slow or
    # hanging mail server holds up no request and no scheduler round;
    # false sends it within the commit's hook (the tests read the mailbox
    # at once).
    mail_in_background: bool = True
    production: bool = False
    session_secret: str = ""
    secure_cookies: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    scheduler_embedded: bool = False
    scheduler_interval: float = DEFAULT_SCHEDULER_INTERVAL
    ping_interval: float = DEFAULT_PING_INTERVAL
    ping_margin: float = DEFAULT_PING_MARGIN
    unresponsive_after_intervals: float = DEFAULT_UNRESPONSIVE_AFTER_INTERVALS
    # /metrics is served only with a token.
    metrics_token: str = ""
    webhook_secret: str = ""
    webhook_timeout: float = DEFAULT_WEBHOOK_TIMEOUT
    # None: keep every run.
    retention_days: float | None = None
    retention_keep_per_job: int = DEFAULT_RETENTION_KEEP_PER_JOB
    worker_write_scope: str = "all"
    accept_v1_signatures: bool = True
    # How long a server process trusts what it looked up about a signing
    # worker (security/workers.py); 0 looks it up on every request.
    worker_cache_seconds: float = DEFAULT_WORKER_CACHE_SECONDS
    session_idle_timeout: float = DEFAULT_SESSION_IDLE_TIMEOUT
    session_max_age: float = DEFAULT_SESSION_MAX_AGE
    login_max_concurrent_hashes: int = DEFAULT_LOGIN_MAX_CONCURRENT_HASHES
    # 0: no list waits; every `wait` is answered at once.
    api_max_waiting: int = DEFAULT_API_MAX_WAITING
    ini: MappingProxyType = field(default_factory=lambda: MappingProxyType({}), repr=False, compare=False)

    @classmethod
    def from_mapping(cls, mapping):
        """From resolved [app:main] settings; raises SettingsError for a
        value that cannot be used, so bad settings fail at start-up."""
        from pyramid.settings import asbool

        from .scheduling.mail import split_addresses

        admin_emails = str(mapping.get("jobrunner.admin_emails") or "").replace(",", "\n")
        scope = _text(mapping, "jobrunner.worker_write_scope") or "all"
        if scope not in WORKER_WRITE_SCOPES:
            raise SettingsError(
                f"jobrunner.worker_write_scope is one of {', '.join(WORKER_WRITE_SCOPES)}, not {scope!r}"
            )
        v1 = mapping.get("jobrunner.accept_v1_signatures")
        return cls(
            database_url=_text(mapping, "sqlalchemy.url"),
            timezone=_text(mapping, "jobrunner.timezone") or DEFAULT_TIMEZONE,
            base_url=_text(mapping, "jobrunner.base_url"),
            admin_emails=tuple(split_addresses(admin_emails)),
            mail_folder=_text(mapping, "jobrunner.mail_folder"),
            mail_sender=_text(mapping, "mail.default_sender") or None,
            mail_in_background=asbool(mapping.get("jobrunner.mail_in_background", True)),
            production=asbool(mapping.get("jobrunner.production")),
            session_secret=str(mapping.get("jobrunner.session_secret") or ""),
            secure_cookies=asbool(mapping.get("jobrunner.secure_cookies")),
            max_body_bytes=_byte_count(mapping, "jobrunner.max_body_bytes", DEFAULT_MAX_BODY_BYTES),
            scheduler_embedded=asbool(mapping.get("jobrunner.scheduler.embedded")),
            scheduler_interval=_seconds(mapping, "jobrunner.scheduler.interval", DEFAULT_SCHEDULER_INTERVAL),
            ping_interval=_seconds(mapping, "jobrunner.worker.ping_interval", DEFAULT_PING_INTERVAL),
            ping_margin=_seconds(mapping, "jobrunner.worker.ping_margin", DEFAULT_PING_MARGIN),
            unresponsive_after_intervals=_seconds(
                mapping, "jobrunner.worker.unresponsive_after_intervals", DEFAULT_UNRESPONSIVE_AFTER_INTERVALS
            ),
            metrics_token=_text(mapping, "jobrunner.metrics_token"),
            webhook_secret=_text(mapping, "jobrunner.webhook_secret"),
            webhook_timeout=_seconds(mapping, "jobrunner.webhook_timeout", DEFAULT_WEBHOOK_TIMEOUT),
            retention_days=_retention_days(mapping, "jobrunner.retention_days"),
            retention_keep_per_job=_count(
                mapping, "jobrunner.retention_keep_per_job", DEFAULT_RETENTION_KEEP_PER_JOB
            ),
            worker_write_scope=scope,
            accept_v1_signatures=True if v1 is None or str(v1).strip() == "" else asbool(v1),
            worker_cache_seconds=_worker_cache_seconds(mapping),
            session_idle_timeout=_seconds(mapping, "jobrunner.session.idle_timeout", DEFAULT_SESSION_IDLE_TIMEOUT),
            session_max_age=_seconds(mapping, "jobrunner.session.max_age", DEFAULT_SESSION_MAX_AGE),
            login_max_concurrent_hashes=_at_least_one(
                mapping, "jobrunner.login.max_concurrent_hashes", DEFAULT_LOGIN_MAX_CONCURRENT_HASHES
            ),
            api_max_waiting=_count(mapping, "jobrunner.api.max_waiting", DEFAULT_API_MAX_WAITING),
            ini=MappingProxyType(dict(mapping)),
        )

    @property
    def tz(self):
        """The time zone of schedules, mails and the dashboard (raises for
        an unknown name: the admin CLI reports that in its own words)."""
        return ZoneInfo(self.timezone)

    @property
    def mail_base_url(self):
        """The base of the links in mails."""
        return self.base_url or DEFAULT_MAIL_BASE_URL

    @property
    def unresponsive_limit(self):
        """Seconds without a ping after which an enabled worker is unresponsive:
        the allowed number of missed heartbeats, plus a margin."""
        return self.unresponsive_after_intervals * self.ping_interval + self.ping_margin

    @property
    def cookie_secret(self):
        """The secret that signs session cookies (a fixed one in development)."""
        return self.session_secret or DEFAULT_SESSION_SECRET

    def check_production_secret(self):
        """In production a forged session cookie must not be possible: the
        secret must be long and none of the well-known defaults."""
        if not self.production:
            return
        secret = self.session_secret
        if secret in KNOWN_DEFAULT_SECRETS or len(secret) < MIN_PRODUCTION_SECRET_LENGTH:
            raise InsecureSettings(
                "jobrunner.session_secret is a default or shorter than "
                f"{MIN_PRODUCTION_SECRET_LENGTH} characters: set JOBRUNNER_SESSION_SECRET "
                "to a long random value (python3 -c 'import secrets; print(secrets.token_urlsafe(48))')."
            )


def get_settings(config_uri):
    """The [app:main] settings of an ini file, resolved."""
    from pyramid.paster import get_appsettings

    return resolve_settings(get_appsettings(config_uri))


def load_settings(config_uri):
    """The Settings of an ini file, as the web app builds them (for the CLIs)."""
    return Settings.from_mapping(get_settings(config_uri))


def includeme(config):
    """Parsed once at start-up; everything in the app reads its settings from
    `registry.jobrunner_settings`."""
    config.registry.jobrunner_settings = Settings.from_mapping(config.registry.settings)
