"""Tables of the audit log, the webhook outbox and the retention tally."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base, UTCDateTime


class AuditEvent(Base):
    """Who changed what, written in the transaction of the change."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_dts", "dts"),
        Index("ix_audit_event_object", "object_type", "object_id"),
        Index("ix_audit_event_actor", "actor"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    dts: Mapped[datetime] = mapped_column(UTCDateTime)
    # "user:<username>" or "cli:<os user>"
    actor: Mapped[str] = mapped_column(String(255))
    # create, update, delete, schedule, kill, login, login_failed
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[int | None] = mapped_column(Integer)
    # The project the object belonged to when the event happened, so that a
    # project admin still sees the events of an object deleted since.
    project_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # {field: [old, new]}
    changes: Mapped[dict] = mapped_column(JSON, default=dict)


class WebhookDelivery(Base):
    """One POST to one URL: written with the event, sent after the commit by
    the scheduler, retried until a 2xx answer or until it gives up."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        # The scheduler's question: which pending deliveries are due?
        Index("ix_webhook_delivery_pending", "next_attempt_dts",
              postgresql_where=text("delivered_dts IS NULL AND failed_dts IS NULL"),
              sqlite_where=text("delivered_dts IS NULL AND failed_dts IS NULL")),
        Index("ix_webhook_delivery_created_dts", "created_dts"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    created_dts: Mapped[datetime] = mapped_column(UTCDateTime)
    event: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_dts: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_dts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the retries are used up.
    failed_dts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text, default="")


class RunPurgeTally(Base):
    """How many completed runs retention has deleted, by result, so that the
    completed-runs counter never goes down when old runs are purged."""

    __tablename__ = "run_purge_tally"
    result: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
