"""Personal API tokens: `Authorization: Bearer <token>` acts as their user.

A token is 32 random bytes; the table keeps only its sha256 (a brute force
of 256 bits needs no slow hash), so a copy of the database opens nothing.
The user sees a token once, when it is made.
"""
import hashlib
import secrets
from datetime import datetime, time, timezone

from sqlalchemy import delete, or_, select

from ..models import User, utcnow
from ..models.security import ApiToken

TOKEN_PREFIX = "jrt_"
MAX_TOKENS_PER_USER = 50
MAX_NAME_LENGTH = 255


class InvalidToken(ValueError):
    """What the user asked for cannot be a token (the message says why)."""


def token_hash(token):
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def parse_expiry(raw, today=None):
    """An optional expiry date (YYYY-MM-DD, UTC): the token ends after that day."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError:
        raise InvalidToken("The expiry is a date such as 2030-12-31.")
    today = today or utcnow().date()
    if day < today or day.year > 9000:
        raise InvalidToken("The expiry must be today or a later date.")
    return datetime.combine(day, time.max, tzinfo=timezone.utc)


def create_token(dbsession, user, name, expires_dts=None):
    """A new token for the user; returns (row, the token in clear, shown once)."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH or any(c in name for c in "\r\n\x00"):
        raise InvalidToken(f"A name of 1 to {MAX_NAME_LENGTH} characters on one line.")
    count = len(list_tokens(dbsession, user))
    if count >= MAX_TOKENS_PER_USER:
        raise InvalidToken(f"At most {MAX_TOKENS_PER_USER} tokens; revoke one first.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=token_hash(token),
                   created_dts=utcnow(), expires_dts=expires_dts)
    dbsession.add(row)
    dbsession.flush()
    return row, token


def list_tokens(dbsession, user):
    return dbsession.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    ).all()


def revoke_token(dbsession, user, token_id):
    """Deletes one of the user's own tokens; False when there is no such token."""
    result = dbsession.execute(
        delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )
    return result.rowcount == 1


def token_user(dbsession, token):
    """The active user a valid, unexpired token belongs to, or None."""
    if not token or len(token) > 200:
        return None
    return dbsession.scalar(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == token_hash(token),
            or_(ApiToken.expires_dts.is_(None), ApiToken.expires_dts > utcnow()),
            User.is_active.is_(True),
        )
    )
