"""What a person sees when the admin pages refuse: a page, not JSON."""
from pyramid.exceptions import BadCSRFToken
from pyramid.renderers import render_to_response
from pyramid.view import exception_view_config, forbidden_view_config

from ..api.errors import APIError
from ..dashboard.views import display_name, not_found_page
from ..domain_errors import DomainError
from ..errors import DOMAIN_STATUS, login_redirect

TEMPLATE = "jobrunner:admin_pages/templates/refused.jinja2"


def refused_page(request, status, message):
    response = render_to_response(
        TEMPLATE,
        {"page": "admin", "username": display_name(request.identity), "projects": [],
         "is_admin": bool(request.identity and request.identity.is_admin),
         "status": status, "message": message},
        request=request,
    )
    response.status = status
    response.headers["Cache-Control"] = "no-store"
    return response


@forbidden_view_config(route_name="admin")
def forbidden(exc, request):
    if request.identity is None:
        # A person who is not logged in: to the login form, and back here after.
        return login_redirect(request)
    return refused_page(request, 403, "You may not use this page.")


@forbidden_view_config(route_name="job_runs")
def history_out_of_reach(exc, request):
    # As the job's page: out of reach looks the same as not there.
    if request.identity is None:
        return login_redirect(request)
    return not_found_page(request)


@exception_view_config(BadCSRFToken, route_name="admin")
def bad_csrf(exc, request):
    return refused_page(request, 403, "The form was out of date (its security token did not match). "
                                      "Go back, reload the page and send it again.")


@exception_view_config(APIError, route_name="admin")
@exception_view_config(DomainError, route_name="admin")
def refused(exc, request):
    return refused_page(request, status_of(exc), exc.message)


def status_of(exc):
    """The HTTP status of a refusal: the API's own, or the domain's mapping."""
    if isinstance(exc, APIError):
        return exc.status
    return next((code for kind, code in DOMAIN_STATUS if isinstance(exc, kind)), 400)
