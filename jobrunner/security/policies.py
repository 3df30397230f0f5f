"""Who is asking: a worker signing its requests, a user with a session, or
a user's personal API token."""
from dataclasses import dataclass, field

from pyramid.authentication import SessionAuthenticationHelper
from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.request import RequestLocalCache
from ..audit import actor_of_user, set_actor
from ..models import User
from ..signing import is_signed, parse_header
from .nonces import remember_nonce
from .permissions import ADMIN_PRINCIPAL, group_principal, worker_principal
from .sessions import SESSION_TOKEN_KEY, session_user
from .tokens import token_user
from .workers import SigningWorker

SENT_METHOD_KEY = "jobrunner.sent_method"
VERIFIED_WORKER_KEY = "jobrunner.verified_worker"
WORKER_CACHE_KEY = "jobrunner.worker_cache"
BEARER_PREFIX = "Bearer "


@dataclass
class Identity:
    """The authenticated caller; exactly one of user and worker is set.

    `via` says how: "signature" (a worker), "session" or "token" (a user;
    a token acts exactly as its user's session would, CSRF aside)."""

    via: str
    user: User | None = None
    worker: SigningWorker | None = None
    principals: list = field(default_factory=list)

    @property
    def is_admin(self):
        return bool(self.user and self.user.is_admin)


def api_key_header(request):
    return request.headers.get("Authorization") or request.headers.get("Authentication")


def is_hmac_request(request):
    return is_signed(api_key_header(request))


def request_path_qs(request):
    """The path and query string as the client sent them."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw and raw.startswith("/"):
        return raw
    return request.path_qs


def signed_methods(request):
    """A POST with X-HTTP-Method-Override may be signed over either method."""
    return {request.method, request.environ.get(SENT_METHOD_KEY, request.method)}


def user_identity(user, via):
    principals = [Everyone, Authenticated, f"user:{user.id}"]
    principals += [group_principal(group.name) for group in user.groups]
    if user.is_admin:
        principals.append(ADMIN_PRINCIPAL)
    return Identity(via=via, user=user, principals=principals)


class SignatureSecurityPolicy:
    """Workers: v2 (`JobRunner-HMAC-SHA256 ...`) or, while allowed, v1
    (`ApiKey <api_key>:<hex hmac-sha1>`).

    The worker is looked up in the process's WorkerCache (workers.py), not
    per request; a v2 nonce is remembered in the database on every request."""

    def identity(self, request):
        signed = parse_header(api_key_header(request))
        if signed is None:
            return None
        if signed.version == 1 and not request.registry.jobrunner_settings.accept_v1_signatures:
            return None
        # A retried attempt of this request (pyramid_retry makes a new
        # request from the same environ) must not meet its own nonce.
        worker = request.environ.get(VERIFIED_WORKER_KEY)
        if worker is None:
            worker = self._verified(request, signed)
            request.environ[VERIFIED_WORKER_KEY] = worker or False
        if not worker:
            return None
        return Identity(
            via="signature",
            worker=worker,
            principals=[Everyone, Authenticated, worker_principal(worker.api_key), "role:worker"],
        )

    def _verified(self, request, signed):
        """The SigningWorker once the signature (and for v2 the clock and
        the nonce) pass, else None."""
        if not signed.fresh():
            return None
        factory = request.registry["dbsession_factory"]
        found = request.registry[WORKER_CACHE_KEY].get(factory, signed.api_key)
        # Compute a signature even for an unknown key, so timing does not tell
        # which keys exist.
        worker, secret = found if found is not None else (None, "-")
        valid = signed.verify(secret, signed_methods(request), request_path_qs(request), request.body)
        if not valid or worker is None:
            return None
        if signed.version == 2 and not remember_nonce(factory, worker.id, signed.nonce):
            return None
        return worker

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


class TokenSecurityPolicy:
    """Scripts and CI: `Authorization: Bearer <personal API token>`."""

    def identity(self, request):
        token = api_key_header(request)[len(BEARER_PREFIX):].strip()
        user = token_user(request.dbsession, token)
        return user_identity(user, "token") if user is not None else None


class SessionSecurityPolicy:
    """Dashboard users, logged in with a signed session cookie whose token
    has a live row (see sessions.py)."""

    def __init__(self):
        self.helper = SessionAuthenticationHelper()

    def identity(self, request):
        userid = self.helper.authenticated_userid(request)
        if userid is None:
            return None
        max_age = request.registry.jobrunner_settings.session_max_age
        user = session_user(request.dbsession, userid, request.session.get(SESSION_TOKEN_KEY), max_age)
        return user_identity(user, "session") if user is not None else None

    def remember(self, request, userid, **kw):
        return self.helper.remember(request, userid, **kw)

    def forget(self, request, **kw):
        return self.helper.forget(request, **kw)


class JobRunnerSecurityPolicy:
    """Composes the ways in; a request that carries an Authorization header
    is judged by it alone, never by a cookie that came along."""

    def __init__(self):
        self.signature = SignatureSecurityPolicy()
        self.token = TokenSecurityPolicy()
        self.session = SessionSecurityPolicy()
        self.acl = ACLHelper()
        # Pyramid asks again on every use of request.identity; the answer
        # cannot change within a request, so the queries and the signature
        # check run once (and a v2 nonce is used once).
        self.identity_cache = RequestLocalCache(self.load_identity)

    def identity(self, request):
        return self.identity_cache.get_or_create(request)

    def load_identity(self, request):
        header = api_key_header(request)
        if is_signed(header):
            identity = self.signature.identity(request)
        elif header and header.startswith(BEARER_PREFIX):
            identity = self.token.identity(request)
        elif header and header.split(" ", 1)[0] in ("JobRunner-HMAC-SHA256", "Bearer"):
            identity = None
        else:
            identity = self.session.identity(request)
        if identity is not None and identity.user is not None:
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
