"""The page on which a user makes, sees (once) and revokes personal API tokens."""
from pyramid.httpexceptions import HTTPForbidden, HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.view import view_config

from . import tokens
from .permissions import Permission

TEMPLATE = "jobrunner:templates/tokens.jinja2"


def _session_user(request):
    # Tokens are managed from a logged-in browser only: a token that could
    # make tokens would outlive its own revocation.
    identity = request.identity
    if identity is None or identity.via != "session":
        raise HTTPForbidden()
    return identity.user


def _page(request, status=200, **values):
    user = _session_user(request)
    values.setdefault("tokens", tokens.list_tokens(request.dbsession, user))
    response = render_to_response(TEMPLATE, values, request=request)
    response.status = status
    return response


@view_config(route_name="account_tokens", request_method="GET", permission=Permission.VIEW)
def token_list(request):
    return _page(request)


@view_config(route_name="account_tokens", request_method="POST", permission=Permission.VIEW)
def token_create(request):
    user = _session_user(request)
    name = request.POST.get("name", "")
    expires = request.POST.get("expires", "")
    try:
        row, token = tokens.create_token(request.dbsession, user, name, tokens.parse_expiry(expires))
    except tokens.InvalidToken as exc:
        return _page(request, 400, error=str(exc), name=name[:255], expires=expires[:10])
    return _page(request, 201, new_token=token, new_name=row.name)


@view_config(route_name="account_token_revoke", request_method="POST", permission=Permission.VIEW)
def token_revoke(request):
    user = _session_user(request)
    raw = request.matchdict["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18 or not tokens.revoke_token(
        request.dbsession, user, int(raw)
    ):
        return _page(request, 404, error="No such token of yours.")
    return HTTPSeeOther(location=request.route_path("account_tokens"))
