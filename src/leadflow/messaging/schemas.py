"""Messaging API shapes: messages, inbound replies from the mail gateway, page beacons."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from leadflow.messaging.models import MessageStatus


class MessageChannel(StrEnum):
    """The channels a message can go out on (the others are calls a rep makes)."""

    EMAIL = "email"
    SMS = "sms"
    WECHAT = "wechat"


class MessageOut(BaseModel):
    """One message of the outbox as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    lead_id: int
    channel: str
    provider: str
    to_address: str
    subject: str
    body: str
    status: MessageStatus
    send_after: datetime
    attempts: int
    error: str | None
    provider_ref: str | None
    task_id: int | None
    enrollment_id: int | None
    sender_id: int | None
    created_at: datetime
    sent_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None


class InboundIn(BaseModel):
    """A message the mail gateway received for us (a reply, an auto-reply or a bounce)."""

    model_config = ConfigDict(populate_by_name=True)

    from_address: str = Field(alias="from", min_length=3, max_length=254)
    subject: str = Field(default="", max_length=1000)
    headers: dict[str, str] = Field(default_factory=dict)
    text: str = Field(default="", max_length=200_000)


class InboundKind(StrEnum):
    """What an inbound message turned out to be."""

    REPLY = "reply"
    OUT_OF_OFFICE = "out_of_office"
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    UNMATCHED = "unmatched"


class InboundOut(BaseModel):
    """What leadflow did with an inbound message."""

    kind: InboundKind
    lead_id: int | None = None
    message_id: int | None = None
    return_date: date | None = None


class BeaconIn(BaseModel):
    """A page view or reading time reported by the website snippet."""

    v: str = Field(min_length=1, max_length=200, description="the lead's signed visitor id")
    u: str = Field(min_length=1, max_length=1000, description="the page URL")
    k: str = Field(default="visit", pattern="^(visit|read)$")
    s: float = Field(default=0, ge=0, le=86_400, description="seconds the page was read")
