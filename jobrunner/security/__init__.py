"""Authentication (signatures for workers, sessions and tokens for users),
authorization, and the security headers of every answer."""
from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.session import SignedCookieSessionFactory
from pyramid.settings import asbool

from .headers import add_security_headers
from .passwords import DEFAULT_MAX_CONCURRENT_HASHES, limit_concurrent_hashes
from .permissions import Permission  # noqa: F401
from .policies import JobRunnerSecurityPolicy, api_key_header, is_hmac_request
from .scope import write_scope
from .sessions import DEFAULT_IDLE_SECONDS, DEFAULT_MAX_AGE_SECONDS

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
    # A browser can be tricked into sending a cookie, never a valid worker
    # signature or a bearer token: only those requests go without a token.
    # An invalid signature gives no identity, so it is no way around it; and
    # a request without the header is judged by its cookie: it needs a token.
    if not api_key_header(request):
        return True
    return request.identity is None


def signed_identity_tween_factory(handler, registry):
    """Judges a worker's signature before anything opens the request's
    transaction: a v2 nonce is stored in a short transaction of its own,
    which on SQLite must not wait for the request's write lock."""

    def tween(request):
        if is_hmac_request(request):
            request.identity
        return handler(request)

    return tween


def includeme(config):
    settings = config.get_settings()
    check_production_secret(settings)
    config.registry["jobrunner.worker_write_scope"] = write_scope(settings)
    secret = settings.get("jobrunner.session_secret") or DEFAULT_SESSION_SECRET
    idle = int(settings.get("jobrunner.session.idle_timeout") or DEFAULT_IDLE_SECONDS)
    max_age = int(settings.get("jobrunner.session.max_age") or DEFAULT_MAX_AGE_SECONDS)
    config.set_session_factory(
        SignedCookieSessionFactory(
            secret,
            cookie_name="jobrunner_session",
            httponly=True,
            samesite="Lax",
            secure=asbool(settings.get("jobrunner.secure_cookies", False)),
            # The idle limit: a cookie not renewed within it is void. The
            # cookie is renewed on use at most every tenth of it.
            timeout=idle,
            reissue_time=max(1, min(3600, idle // 10)),
            max_age=max_age,
        )
    )
    limit_concurrent_hashes(int(
        settings.get("jobrunner.login.max_concurrent_hashes", DEFAULT_MAX_CONCURRENT_HASHES)
    ))
    config.set_security_policy(JobRunnerSecurityPolicy())
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy())
    config.set_default_csrf_options(require_csrf=True, callback=csrf_required)
    config.set_default_permission(Permission.VIEW)
    config.add_subscriber(add_security_headers, "pyramid.events.NewResponse")
    config.add_tween("jobrunner.security.signed_identity_tween_factory",
                     under=("jobrunner.api.request_guard_tween_factory", "pyramid_tm.tm_tween_factory"))
    config.add_route("login", "/login")
    config.add_route("logout", "/logout")
    config.add_route("account_tokens", "/account/tokens")
    config.add_route("account_token_revoke", "/account/tokens/{id}/revoke")
    config.scan(".views")
    config.scan(".token_views")
