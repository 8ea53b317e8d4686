"""Cleaning state: firmographic reference data and the record of merges."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from leadflow.db import Base, JSONType


class Firmographic(Base):
    """Company background loaded by ``leadflow enrich load`` (matched by name key or domain)."""

    __tablename__ = "firmographic"

    id: Mapped[int] = mapped_column(primary_key=True)
    company: Mapped[str] = mapped_column(String(200))
    company_key: Mapped[str | None] = mapped_column(String(200), index=True)
    domain: Mapped[str | None] = mapped_column(String(120), index=True)
    industry: Mapped[str | None] = mapped_column(String(80))
    headcount: Mapped[int | None]
    region: Mapped[str | None] = mapped_column(String(80))
    province: Mapped[str | None] = mapped_column(String(80))
    city: Mapped[str | None] = mapped_column(String(80))
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    loaded_at: Mapped[datetime]


class LeadMerge(Base):
    """Two stored leads merged into one; ``snapshot`` holds what undo needs."""

    __tablename__ = "lead_merge"

    id: Mapped[int] = mapped_column(primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("lead.id"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("lead.id"), index=True)
    keys: Mapped[list[str]] = mapped_column(JSONType, default=list)
    similarity: Mapped[float | None]
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    merged_at: Mapped[datetime]
    undone_at: Mapped[datetime | None]
