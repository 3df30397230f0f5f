"""Authentication (HMAC for workers, session for users) and authorization."""
from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.session import SignedCookieSessionFactory

from ..settings import InsecureSettings  # noqa: F401 (raised when the app starts)
from .permissions import Permission  # noqa: F401
from .policies import JobRunnerSecurityPolicy, is_hmac_request


def csrf_required(request):
    # Workers sign every request; a signature is not something a browser can
    # be tricked into sending, so only cookie-borne requests need a token.
    return not is_hmac_request(request)


def includeme(config):
    settings = config.registry.jobrunner_settings
    settings.check_production_secret()
    config.set_session_factory(
        SignedCookieSessionFactory(
            settings.cookie_secret,
            cookie_name="jobrunner_session",
            httponly=True,
            samesite="Lax",
            secure=settings.secure_cookies,
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
