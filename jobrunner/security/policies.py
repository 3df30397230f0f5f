"""Who is asking: a worker signing with HMAC, or a user with a session."""
from dataclasses import dataclass, field

from pyramid.authentication import SessionAuthenticationHelper
from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.request import RequestLocalCache
from sqlalchemy import select

from ..audit import actor_of_user, set_actor
from ..models import User, Worker
from ..signing import compute_signature, is_api_key_header, parse_authorization, signature_matches
from .permissions import ADMIN_PRINCIPAL, group_principal, worker_principal



@dataclass
class Identity:
    """The authenticated caller; exactly one of user and worker is set."""

    via: str
    user: User | None = None
    worker: Worker | None = None
    principals: list = field(default_factory=list)

    @property
    def is_admin(self):
        return bool(self.user and self.user.is_admin)


def api_key_header(request):
    return request.headers.get("Authorization") or request.headers.get("Authentication")


def is_hmac_request(request):
    return is_api_key_header(api_key_header(request))


def request_path_qs(request):
    """The path and query string as the client sent them."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw and raw.startswith("/"):
        return raw
    return request.path_qs


class HMACSecurityPolicy:
    """Workers: `Authorization: ApiKey <api_key>:<hex hmac-sha1>`, checked
    against the worker's secret (the message is defined in jobrunner.signing)."""

    def identity(self, request):
        parsed = parse_authorization(api_key_header(request))
        if parsed is None:
            return None
        api_key, signature = parsed
        worker = request.dbsession.scalar(select(Worker).where(Worker.api_key == api_key))
        # Compute a signature even for an unknown key, so timing does not tell
        # which keys exist.
        secret = worker.secret if worker is not None else "-"
        expected = compute_signature(
            secret, request.method, request_path_qs(request), request.body
        )
        if not signature_matches(expected, signature) or worker is None:
            return None
        return Identity(
            via="hmac",
            worker=worker,
            principals=[Everyone, Authenticated, worker_principal(worker.api_key), "role:worker"],
        )

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


class SessionSecurityPolicy:
    """Dashboard users, logged in with a signed session cookie."""

    def __init__(self):
        self.helper = SessionAuthenticationHelper()

    def identity(self, request):
        userid = self.helper.authenticated_userid(request)
        if userid is None:
            return None
        user = request.dbsession.get(User, userid)
        if user is None or not user.is_active:
            return None
        principals = [Everyone, Authenticated, f"user:{user.id}"]
        principals += [group_principal(group.name) for group in user.groups]
        if user.is_admin:
            principals.append(ADMIN_PRINCIPAL)
        return Identity(via="session", user=user, principals=principals)

    def remember(self, request, userid, **kw):
        return self.helper.remember(request, userid, **kw)

    def forget(self, request, **kw):
        return self.helper.forget(request, **kw)


class JobRunnerSecurityPolicy:
    """Composes the two ways in; a request that carries an API key header is
    judged by its signature alone, never by a cookie that came along."""

    def __init__(self):
        self.hmac = HMACSecurityPolicy()
        self.session = SessionSecurityPolicy()
        self.acl = ACLHelper()
        # Pyramid asks again on every use of request.identity; the answer
        # cannot change within a request, so the queries and the HMAC run once.
        self.identity_cache = RequestLocalCache(self.load_identity)

    def identity(self, request):
        return self.identity_cache.get_or_create(request)

    def load_identity(self, request):
        if is_hmac_request(request):
            return self.hmac.identity(request)
        identity = self.session.identity(request)
        if identity is not None:
            # What this user changes in this request is audited as his;
            # a worker's traffic never is.
            set_actor(request.dbsession, actor_of_user(identity.user))
        return identity

    def authenticated_userid(self, request):
        identity = request.identity
        if identity is None:
            return None
        if identity.worker is not None:
            return worker_principal(identity.worker.api_key)
        return f"user:{identity.user.id}"

    def permits(self, request, context, permission):
        identity = request.identity
        principals = identity.principals if identity is not None else [Everyone]
        return self.acl.permits(context, principals, permission)

    def remember(self, request, userid, **kw):
        return self.session.remember(request, userid, **kw)

    def forget(self, request, **kw):
        return self.session.forget(request, **kw)
