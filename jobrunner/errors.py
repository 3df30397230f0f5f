"""Errors as the app answers them: a JSON body {"error": message, "errors":
{field: message}} for the API and for scripts, the login page for a person
who is not logged in, and one view per kind of exception."""
import logging

from pyramid.exceptions import BadCSRFToken
from pyramid.httpexceptions import HTTPException, HTTPForbidden, HTTPNotFound, HTTPSeeOther
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .domain_errors import DomainError, InvalidFields, NotAllowed, RunConflict

log = logging.getLogger(__name__)


def json_error(request, status, message, errors=None, headers=None):
    """The request's response, made into a JSON error."""
    response = request.response
    response.status = status
    response.content_type = "application/json"
    response.json_body = {"error": message, "errors": errors or {}}
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def is_api(request):
    return request.path.startswith("/api/") or request.path == "/api"


def login_redirect(request):
    return HTTPSeeOther(location=request.route_path("login", _query={"next": request.path_qs}))


@exception_view_config(BadCSRFToken)
def bad_csrf(exc, request):
    return json_error(request, 403, "Missing or invalid CSRF token.")


@forbidden_view_config()
def forbidden(exc, request):
    if request.identity is None:
        if not is_api(request) and request.method == "GET":
            return login_redirect(request)
        return json_error(request, 401, "Authentication required.")
    return json_error(request, 403, "You may not do that.")


@notfound_view_config()
def not_found(exc, request):
    # An anonymous caller learns nothing of what exists in the API.
    if request.identity is None and is_api(request):
        return json_error(request, 401, "Authentication required.")
    return json_error(request, 404, "Not found.")


# The one mapping of the domain's refusals to HTTP statuses.
DOMAIN_STATUS = ((InvalidFields, 400), (NotAllowed, 403), (RunConflict, 409))


def domain_status(exc):
    """The HTTP status of a domain error."""
    return next((code for kind, code in DOMAIN_STATUS if isinstance(exc, kind)), 400)


@exception_view_config(DomainError)
def domain_error(exc, request):
    return json_error(request, domain_status(exc), exc.message, exc.errors)


@exception_view_config(IntegrityError)
def integrity_error(exc, request):
    log.info("integrity error: %s", exc)
    return json_error(request, 409, "The change conflicts with the stored data.")


# How long a client is asked to wait while the database is away: about a
# restart's time; workers retry with their own back-off anyway.
DATABASE_RETRY_AFTER_SECONDS = 5


@exception_view_config(OperationalError)
@exception_view_config(InterfaceError)
@exception_view_config(PoolTimeout)
def database_unavailable(exc, request):
    # The database is restarting, unreachable, or every connection is busy:
    # nothing was changed (the transaction is aborted), so the request may be
    # sent again. Logged without a traceback: it is the database's state, not
    # a bug.
    log.warning("database unavailable on %s %s: %s", request.method, request.path,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return json_error(request, 503, "The database is not available at the moment; try again shortly.",
                      headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


@exception_view_config(HTTPException)
def http_exception(exc, request):
    if isinstance(exc, (HTTPForbidden, HTTPNotFound)) or exc.status_code < 400:
        return exc
    return json_error(request, exc.status_code, exc.explanation or exc.title)


@exception_view_config(Exception)
def server_error(exc, request):
    log.exception("unexpected error on %s %s", request.method, request.path)
    return json_error(request, 500, "Internal server error.")


def includeme(config):
    config.scan(".errors")
