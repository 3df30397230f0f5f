"""Login and logout, as an HTML form and as JSON."""
import json
import logging

from pyramid.csrf import new_csrf_token
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.security import NO_PERMISSION_REQUIRED, forget, remember
from pyramid.view import view_config
from sqlalchemy import select

from .. import audit
from ..errors import json_error
from ..models import User
from . import logins, sessions
from .passwords import HashingBusy, check_password

log = logging.getLogger(__name__)
LOGIN_TEMPLATE = "jobrunner:templates/login.jinja2"
# Retry soon: a slot frees within the time of one hash.
BUSY_RETRY_SECONDS = 2


# pyramid_tm's commit veto reads it; the metrics tween removes it from the
# answer again.
COMMIT_ANYWAY_HEADER = "x-tm"


def _safe_next(value):
    # Only paths on this site, so the login form is no open redirect.
    if isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


@view_config(
    route_name="login",
    request_method="GET",
    renderer=LOGIN_TEMPLATE,
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
    client_addr = request.client_addr or ""
    # The checks and the hash run outside the request's transaction: on
    # SQLite a writing transaction holds the database's write lock, and a
    # hash takes long on purpose.
    reader = request.registry["dbsession_factory"]()
    try:
        logins.check_allowed(reader, username, client_addr)
        # PostgreSQL refuses NUL in a query; no username holds one.
        row = None if "\x00" in username else reader.execute(
            select(User.id, User.password_hash, User.is_active).where(User.username == username)
        ).first()
    except logins.TooManyFailures as exc:
        log.warning("login refused, too many failures: username=%r address=%s", username[:150], client_addr)
        return _refused(request, wants_json, 429, str(exc), username, data,
                        retry_after=exc.retry_after)
    finally:
        reader.close()
    try:
        valid = check_password(row.password_hash if row else "", password)
    except HashingBusy:
        return _refused(request, wants_json, 503, "Too many logins at this moment; try again in a moment.",
                        username, data, retry_seconds=BUSY_RETRY_SECONDS)
    dbsession = request.dbsession
    user = dbsession.get(User, row.id) if valid and row.is_active else None
    if user is None or not user.is_active or user.password_hash != row.password_hash:
        log.warning("failed login: username=%r address=%s", username[:150], client_addr)
        logins.record_failure(dbsession, username, client_addr)
        audit.record(dbsession, "login_failed", "user", row.id if row else None,
                     actor=f"user:{username.replace(chr(0), '')[:200]}")
        response = _refused(request, wants_json, 400, "Wrong username or password.", username, data)
        # The failure must be counted although the answer is a 4xx (which
        # otherwise rolls the request's transaction back).
        response.headers[COMMIT_ANYWAY_HEADER] = "commit"
        return response
    audit.record(dbsession, "login", "user", user.id, actor=audit.actor_of_user(user))
    token = sessions.start_session(dbsession, user, _max_age(request))
    request.session.invalidate()
    headers = remember(request, user.id)
    request.session[sessions.SESSION_TOKEN_KEY] = token
    # A fresh token after login: a token planted before cannot be reused.
    csrf_token = new_csrf_token(request)
    if wants_json:
        response = request.response
        response.headerlist.extend(headers)
        response.content_type = "application/json"
        response.json_body = {"username": user.username, "csrf_token": csrf_token}
        return response
    return HTTPSeeOther(location=_safe_next(data.get("next")), headers=headers)


@view_config(route_name="logout", request_method="POST", permission=NO_PERMISSION_REQUIRED)
def logout(request):
    sessions.end_session(request.dbsession, request.session.get(sessions.SESSION_TOKEN_KEY))
    headers = forget(request)
    request.session.invalidate()
    return HTTPSeeOther(location=request.route_path("login"), headers=headers)


def _max_age(request):
    return request.registry.jobrunner_settings.session_max_age


def _refused(request, wants_json, status, message, username, data, retry_after=None,
             retry_seconds=None):
    if wants_json:
        response = json_error(request, status, message)
    else:
        response = render_to_response(
            LOGIN_TEMPLATE,
            {"error": message, "username": username, "next": _safe_next(data.get("next"))},
            request=request,
        )
        response.status = status
    if retry_after is not None:
        from ..models import utcnow

        retry_seconds = max(1, int((retry_after - utcnow()).total_seconds()) + 1)
    if retry_seconds is not None:
        response.headers["Retry-After"] = str(retry_seconds)
    return response

