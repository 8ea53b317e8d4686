"""The message outbox (one row per message, exactly once per idempotency key), tracking
events (opens, clicks, visits; machine traffic marked) and the suppression list."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from leadflow.db import Base, JSONType


class MessageStatus(StrEnum):
    """pending → sending (leased by a worker) → sent, or failed / suppressed.

    A ``sending`` row whose lease ran out is in doubt (its worker died mid-send): it is sent
    again with the same Message-ID, so receivers see one message.
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class Message(Base):
    """One email, SMS or WeChat message, written before it is sent."""

    __tablename__ = "message"
    __table_args__ = (
        Index("ix_message_pending", "send_after", "id",
              sqlite_where=text("status IN ('pending', 'sending')"),
              postgresql_where=text("status IN ('pending', 'sending')")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # e.g. "task:123": a retried step or a second worker cannot write a second message.
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    # Random, unguessable: identifies the message in tracking links and unsubscribe pages.
    token: Mapped[str] = mapped_column(String(32), unique=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id"))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollment.id"))
    arm_id: Mapped[int | None]
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    channel: Mapped[str] = mapped_column(String(12))
    provider: Mapped[str] = mapped_column(String(20))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[MessageStatus] = mapped_column(String(10), default=MessageStatus.PENDING)
    send_after: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    provider_ref: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    clicked_at: Mapped[datetime | None]


class TrackingKind(StrEnum):
    OPEN = "open"
    CLICK = "click"
    VISIT = "visit"
    READ = "read"
    UNSUBSCRIBE = "unsubscribe"


class TrackingEvent(Base):
    """One open, click or page visit as it arrived, with the verdict on machine traffic."""

    __tablename__ = "tracking_event"
    __table_args__ = (Index("ix_tracking_event_message_id_kind", "message_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id"), index=True)
    kind: Mapped[TrackingKind] = mapped_column(String(12))
    occurred_at: Mapped[datetime]
    url: Mapped[str | None] = mapped_column(String(1000))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    ip: Mapped[str | None] = mapped_column(String(45))
    seconds: Mapped[float | None]
    machine: Mapped[bool] = mapped_column(default=False)
    machine_reason: Mapped[str | None] = mapped_column(String(120))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Suppression(Base):
    """An address that must never get a message on a channel (unsubscribed, bounced)."""

    __tablename__ = "suppression"
    __table_args__ = (Index("uq_suppression_channel_address", "channel", "address", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(12))
    address: Mapped[str] = mapped_column(String(254))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("lead.id"))
    reason: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
