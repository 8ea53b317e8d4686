"""The outbox: one row per event, handled later by the worker through ``EVENT_HANDLERS``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from leadflow.db import Base, JSONType


class EventKind(StrEnum):
    """What happened, in the words handlers subscribe to."""

    LEAD_MQL = "lead.mql"
    LEAD_GRADE_CHANGED = "lead.grade_changed"


class OutboxEvent(Base):
    """An event waiting for (or done with) its handlers."""

    __tablename__ = "outbox_event"
    # Workers look for unhandled events oldest first.
    __table_args__ = (Index("ix_outbox_event_handled_at_id", "handled_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[EventKind] = mapped_column(String(40))
    # Not a foreign key, like ``Activity.lead_id`` (see docs/decisions.md).
    lead_id: Mapped[int | None]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime]
    handled_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(500))
