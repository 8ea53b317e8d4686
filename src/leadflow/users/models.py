"""Users, teams, roles and API tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from leadflow.db import Base


class Role(StrEnum):
    """What a user does in leadflow; permissions follow from it (see ``users.rules``)."""

    ADMIN = "admin"
    MANAGER = "manager"
    TEAM_LEAD = "team_lead"
    REP = "rep"
    PRESALES = "presales"
    MARKETER = "marketer"
    ANALYST = "analyst"


class TeamKind(StrEnum):
    """Pre-sales nurtures low-intent leads; sales closes; ops owns data and rules."""

    PRESALES = "presales"
    SALES = "sales"
    OPS = "ops"


class Segment(StrEnum):
    """Customer size segment a team serves."""

    ENTERPRISE = "enterprise"
    MID = "mid"
    SMB = "smb"


class Team(Base):
    """A group of people with one lead and a shared book of leads."""

    __tablename__ = "team"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[TeamKind] = mapped_column(String(16))
    segment: Mapped[Segment | None] = mapped_column(String(16))
    product_line: Mapped[str | None] = mapped_column(String(80))
    region: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime]

    members: Mapped[list[User]] = relationship(back_populates="team")


class User(Base):
    """A person who logs in (or the principal behind an API token)."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[Role] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"), index=True)
    locale: Mapped[str] = mapped_column(String(8), default="en")
    timezone: Mapped[str] = mapped_column(String(40), default="Asia/Shanghai")
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]

    team: Mapped[Team | None] = relationship(back_populates="members")


class ApiToken(Base):
    """A bearer token for integrations. Only a SHA-256 digest of the token is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()
