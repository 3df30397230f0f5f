"""Login and logout, as an HTML form and as JSON."""
import json

from pyramid.csrf import new_csrf_token
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.security import NO_PERMISSION_REQUIRED, forget, remember
from pyramid.view import view_config
from sqlalchemy import select

from .. import audit
from ..errors import json_error
from ..models import User
from .passwords import check_password


# pyramid_tm's commit veto reads it; the metrics tween removes it from the
# answer again.
COMMIT_ANYWAY_HEADER = "x-tm"


def _safe_next(value):
    # Only paths on this site, so the login form is no open redirect.
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/"


@view_config(
    route_name="login",
    request_method="GET",
    renderer="jobrunner:templates/login.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def login_form(request):
    return {"error": None, "username": "", "next": _safe_next(request.params.get("next"))}


@view_config(route_name="login", request_method="POST", permission=NO_PERMISSION_REQUIRED)
def login(request):
    wants_json = request.content_type == "application/json"
    if wants_json:
        try:
            data = json.loads(request.body or b"{}")
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            return json_error(request, 400, "Malformed JSON body.")
    else:
        data = request.POST
    username = str(data.get("username") or "")
    password = str(data.get("password") or "")
    # PostgreSQL refuses NUL in a query; no username holds one.
    user = None if "\x00" in username else request.dbsession.scalar(
        select(User).where(User.username == username)
    )
    valid = check_password(user.password_hash if user else "", password)
    if not (valid and user.is_active):
        audit.record(request.dbsession, "login_failed", "user", user.id if user else None,
                     actor=f"user:{username.replace(chr(0), '')[:200]}")
        message = "Wrong username or password."
        if wants_json:
            response = json_error(request, 400, message)
        else:
            from pyramid.renderers import render_to_response

            response = render_to_response(
                "jobrunner:templates/login.jinja2",
                {"error": message, "username": username, "next": _safe_next(data.get("next"))},
                request=request,
            )
            response.status = 400
        # A 4xx answer rolls the transaction back; the failed login's audit
        # event must stay.
        response.headers[COMMIT_ANYWAY_HEADER] = "commit"
        return response
    audit.record(request.dbsession, "login", "user", user.id, actor=audit.actor_of_user(user))
    headers = remember(request, user.id)
    # A fresh token after login: a token planted before cannot be reused.
    token = new_csrf_token(request)
    if wants_json:
        response = request.response
        response.headerlist.extend(headers)
        response.content_type = "application/json"
        response.json_body = {"username": user.username, "csrf_token": token}
        return response
    return HTTPSeeOther(location=_safe_next(data.get("next")), headers=headers)


@view_config(route_name="logout", request_method="POST", permission=NO_PERMISSION_REQUIRED)
def logout(request):
    headers = forget(request)
    request.session.invalidate()
    return HTTPSeeOther(location=request.route_path("login"), headers=headers)
