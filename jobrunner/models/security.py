"""Tables of the security features: sessions, failed logins, API tokens and
the nonces of signed worker requests."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base, UTCDateTime


class UserSession(Base):
    """A dashboard login. The cookie carries a random token; the table keeps
    its sha256, so logging out (deleting the row) refuses every copy of the
    cookie, and a stolen table opens no session."""

    __tablename__ = "user_session"
    __table_args__ = (Index("ix_user_session_user_id", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    created_dts: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginFailure(Base):
    """One refused login, counted per username and per client address."""

    __tablename__ = "login_failure"
    __table_args__ = (
        Index("ix_login_failure_username_dts", "username", "dts"),
        Index("ix_login_failure_client_addr_dts", "client_addr", "dts"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150))
    client_addr: Mapped[str] = mapped_column(String(64))
    dts: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A personal API token: `Authorization: Bearer <token>` acts as its user."""

    __tablename__ = "api_token"
    __table_args__ = (Index("ix_api_token_user_id", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_dts: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_dts: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RequestNonce(Base):
    """A nonce of a v2-signed worker request, kept while its timestamp could
    still be accepted, so that no server process accepts the request twice."""

    __tablename__ = "request_nonce"
    __table_args__ = (Index("ix_request_nonce_seen_dts", "seen_dts"),)
    worker_id: Mapped[int] = mapped_column(
        ForeignKey("worker.id", ondelete="CASCADE"), primary_key=True
    )
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_dts: Mapped[datetime] = mapped_column(UTCDateTime)
