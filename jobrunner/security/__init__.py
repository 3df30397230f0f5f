"""Authentication (signatures for workers, sessions and tokens for users),
authorization, and the security headers of every answer."""
from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.session import SignedCookieSessionFactory
from pyramid.tweens import EXCVIEW

from ..settings import InsecureSettings  # noqa: F401 (raised when the app starts)
from .headers import add_security_headers
from .passwords import limit_concurrent_hashes
from .permissions import Permission  # noqa: F401
from .policies import WORKER_CACHE_KEY, JobRunnerSecurityPolicy, api_key_header, is_hmac_request
from .workers import WorkerCache


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
    transaction: the worker's look-up (when not cached) and a v2 nonce use
    short transactions of their own, which on SQLite must not wait for the
    request's write lock."""

    def tween(request):
        if is_hmac_request(request):
            request.identity
        return handler(request)

    return tween


def includeme(config):
    settings = config.registry.jobrunner_settings
    settings.check_production_secret()
    idle = int(settings.session_idle_timeout)
    config.set_session_factory(
        SignedCookieSessionFactory(
            settings.cookie_secret,
            cookie_name="jobrunner_session",
            httponly=True,
            samesite="Lax",
            secure=settings.secure_cookies,
            # The idle limit: a cookie not renewed within it is void. The
            # cookie is renewed on use at most every tenth of it.
            timeout=idle,
            reissue_time=max(1, min(3600, idle // 10)),
            max_age=int(settings.session_max_age),
        )
    )
    limit_concurrent_hashes(settings.login_max_concurrent_hashes)
    config.registry[WORKER_CACHE_KEY] = WorkerCache(settings.worker_cache_seconds)
    config.set_security_policy(JobRunnerSecurityPolicy())
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy())
    config.set_default_csrf_options(require_csrf=True, callback=csrf_required)
    config.set_default_permission(Permission.VIEW)
    config.add_subscriber(add_security_headers, "pyramid.events.NewResponse")
    # Below the exception views (and so below pyramid_tm and the API's
    # guard): a database that is away while the nonce is stored is answered
    # like anywhere else (503), not as a bare 500 from the server.
    config.add_tween("jobrunner.security.signed_identity_tween_factory", under=EXCVIEW)
    config.add_route("login", "/login")
    config.add_route("logout", "/logout")
    config.add_route("account_tokens", "/account/tokens")
    config.add_route("account_token_revoke", "/account/tokens/{id}/revoke")
    config.scan(".views")
    config.scan(".token_views")
