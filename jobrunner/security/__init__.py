"""Authentication (HMAC for workers, session for users) and authorization."""
from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.session import SignedCookieSessionFactory
from pyramid.settings import asbool

from .permissions import Permission  # noqa: F401
from .policies import JobRunnerSecurityPolicy, is_hmac_request

DEFAULT_SESSION_SECRET = "change-me"
KNOWN_DEFAULT_SECRETS = {"", DEFAULT_SESSION_SECRET, "development-only-secret", "test-secret"}
MIN_PRODUCTION_SECRET_LENGTH = 32


class InsecureSettings(RuntimeError):
    pass


def check_production_secret(settings):
    """In production a forged session cookie must not be possible."""
    if not asbool(settings.get("jobrunner.production", False)):
        return
    secret = settings.get("jobrunner.session_secret") or ""
    if secret in KNOWN_DEFAULT_SECRETS or len(secret) < MIN_PRODUCTION_SECRET_LENGTH:
        raise InsecureSettings(
            "jobrunner.session_secret is a default or shorter than "
            f"{MIN_PRODUCTION_SECRET_LENGTH} characters: set JOBRUNNER_SESSION_SECRET "
            "to a long random value (python3 -c 'import secrets; print(secrets.token_urlsafe(48))')."
        )


def csrf_required(request):
    # Workers sign every request; a signature is not something a browser can
    # be tricked into sending, so only cookie-borne requests need a token.
    return not is_hmac_request(request)


def includeme(config):
    settings = config.get_settings()
    check_production_secret(settings)
    secret = settings.get("jobrunner.session_secret") or DEFAULT_SESSION_SECRET
    config.set_session_factory(
        SignedCookieSessionFactory(
            secret,
            cookie_name="jobrunner_session",
            httponly=True,
            samesite="Lax",
            secure=asbool(settings.get("jobrunner.secure_cookies", False)),
            timeout=None,
            max_age=14 * 24 * 3600,
            reissue_time=3600,
        )
    )
    config.set_security_policy(JobRunnerSecurityPolicy())
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy())
    config.set_default_csrf_options(require_csrf=True, callback=csrf_required)
    config.set_default_permission(Permission.VIEW)
    config.add_route("login", "/login")
    config.add_route("logout", "/logout")
    config.scan(".views")
