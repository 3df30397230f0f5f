"""Server-side records of dashboard sessions.

The signed cookie carries the user id and a random token; a session is
valid only while a row holds the token's sha256. Logging out deletes the
row, so a copy of the cookie is refused afterwards; changing a user's
password or deactivating the user deletes all of that user's rows. The
cookie itself expires after the idle time (the session factory's timeout),
the row at most MAX_AGE after login.
"""
import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, event, inspect, select
from sqlalchemy.orm import Session

from ..models import User, utcnow
from ..models.security import UserSession

SESSION_TOKEN_KEY = "jobrunner_session_token"
DEFAULT_IDLE_SECONDS = 12 * 3600
DEFAULT_MAX_AGE_SECONDS = 14 * 24 * 3600


def token_hash(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(dbsession, user, max_age_seconds):
    """A new session row for the user; returns the token for the cookie."""
    now = utcnow()
    # Rows past their maximum age are of no use to anyone: drop the user's.
    dbsession.execute(
        delete(UserSession).where(
            UserSession.user_id == user.id,
            UserSession.created_dts < now - timedelta(seconds=max_age_seconds),
        )
    )
    token = secrets.token_urlsafe(32)
    dbsession.add(UserSession(token_hash=token_hash(token), user_id=user.id, created_dts=now))
    dbsession.flush()
    return token


def end_session(dbsession, token):
    if token:
        dbsession.execute(delete(UserSession).where(UserSession.token_hash == token_hash(token)))


def end_user_sessions(dbsession, user_id):
    dbsession.execute(delete(UserSession).where(UserSession.user_id == user_id))


def session_user(dbsession, user_id, token, max_age_seconds):
    """The active user whose live session row holds this token, or None."""
    if not token or not isinstance(token, str) or not isinstance(user_id, int):
        return None
    oldest = utcnow() - timedelta(seconds=max_age_seconds)
    return dbsession.scalar(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            UserSession.token_hash == token_hash(token),
            UserSession.user_id == user_id,
            UserSession.created_dts >= oldest,
            User.is_active.is_(True),
        )
    )


@event.listens_for(Session, "before_flush")
def _end_sessions_on_credential_change(dbsession, flush_context, instances):
    """Whoever changes a password or deactivates a user (the admin CLI, the
    loader, a page), that user's sessions end with the same commit."""
    for obj in list(dbsession.dirty):
        if not isinstance(obj, User):
            continue
        state = inspect(obj)
        password_changed = state.attrs.password_hash.history.has_changes()
        deactivated = state.attrs.is_active.history.has_changes() and not obj.is_active
        if (password_changed or deactivated) and obj.id is not None:
            end_user_sessions(dbsession, obj.id)
