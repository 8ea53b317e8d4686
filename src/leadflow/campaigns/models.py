"""Marketing campaigns: where leads come from and what they cost."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from leadflow.db import Base


class Channel(StrEnum):
    """Marketing channel of a campaign (the brief's list, plus the common online ones)."""

    SEO = "seo"
    SEM = "sem"
    CONTENT = "content"
    WEBINAR = "webinar"
    OFFLINE_EVENT = "offline_event"
    SEMINAR = "seminar"
    USER_CONFERENCE = "user_conference"
    COMMUNITY_GROUP = "community_group"
    REFERRAL = "referral"
    PAID_CONSULTATION = "paid_consultation"
    GIFT = "gift"
    SOCIAL = "social"
    EMAIL = "email"
    PARTNER = "partner"
    OTHER = "other"


OFFLINE_CHANNELS = frozenset(
    {Channel.OFFLINE_EVENT, Channel.SEMINAR, Channel.USER_CONFERENCE}
)


class Campaign(Base):
    """One marketing activity with a channel, a cost and dates."""

    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[Channel] = mapped_column(String(24))
    is_online: Mapped[bool]
    product_line: Mapped[str | None] = mapped_column(String(80))
    topic: Mapped[str | None] = mapped_column(String(120))
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    starts_on: Mapped[date | None]
    ends_on: Mapped[date | None]
    created_at: Mapped[datetime]
