"""What a person sees when the admin pages refuse: a page, not JSON."""
from pyramid.exceptions import BadCSRFToken
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.view import exception_view_config, forbidden_view_config

from ..api.errors import APIError
from ..dashboard.views import display_name

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
@forbidden_view_config(route_name="job_runs")
def forbidden(exc, request):
    if request.identity is None:
        # A person who is not logged in: to the login form, and back here after.
        location = request.route_path("login", _query={"next": request.path_qs})
        return HTTPSeeOther(location=location)
    return refused_page(request, 403, "You may not use this page.")


@exception_view_config(BadCSRFToken, route_name="admin")
def bad_csrf(exc, request):
    return refused_page(request, 403, "The form was out of date (its security token did not match). "
                                      "Go back, reload the page and send it again.")


@exception_view_config(APIError, route_name="admin")
def refused(exc, request):
    return refused_page(request, exc.status, exc.message)
