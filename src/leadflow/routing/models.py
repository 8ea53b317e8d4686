"""Routing state: rules, team policies, rep profiles and absences, pools, the ownership
ledger (every assignment, claim and transfer), fairness passes, daily loads, SLA breaches
and notices."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from leadflow.db import Base, JSONType


class Strategy(StrEnum):
    """How a team picks one of its eligible reps."""

    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"
    WEIGHTED = "weighted"


class Presence(StrEnum):
    """A rep's own switch: away and offline reps get nothing new."""

    AVAILABLE = "available"
    OFFLINE = "offline"
    AWAY = "away"


class AwayPolicy(StrEnum):
    """What happens to a rep's hot, untouched leads when the rep goes away."""

    REASSIGN_HOT = "reassign_hot"
    KEEP = "keep"


class PoolKind(StrEnum):
    """Public pools (公海) hold recycled leads anyone may claim; nurture pools hold returned,
    immature leads; the triage pool holds rejected and unroutable leads for a lead manager."""

    PUBLIC = "public"
    NURTURE = "nurture"
    TRIAGE = "triage"


class OwnershipKind(StrEnum):
    """How a lead came to its owner (or pool). Every change goes through one service path."""

    ROUTED = "routed"
    REROUTED = "rerouted"
    PROMOTED = "promoted"
    TRANSFERRED = "transferred"
    CLAIMED = "claimed"
    POOLED = "pooled"


class EndReason(StrEnum):
    """Why an ownership ended."""

    REJECTED = "rejected"
    RETURNED = "returned"
    RECYCLED = "recycled"
    TRANSFERRED = "transferred"
    SLA_REROUTED = "sla_rerouted"
    AWAY = "away"
    PROMOTED = "promoted"
    CLAIMED = "claimed"
    REROUTED = "rerouted"


class RoutingRule(Base):
    """One line of the ordered routing table: first active match wins."""

    __tablename__ = "routing_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(120))
    # {"grades": [...], "min_probability": 0.3, "segments": [...], "product_lines": [...],
    #  "regions": [...], "channels": [...], "languages": [...], "tags": [...]}; see schemas.
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"))
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("lead_pool.id"))
    is_active: Mapped[bool] = mapped_column(default=True)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    updated_at: Mapped[datetime]


class LeadPool(Base):
    """A named pool of unowned leads with its claim and protection policy."""

    __tablename__ = "lead_pool"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[PoolKind] = mapped_column(String(12))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"))
    claim_daily_cap: Mapped[int] = mapped_column(default=10)
    holding_cap: Mapped[int] = mapped_column(default=50)
    # 保护期: days an owner keeps a lead without a deal; each follow-up extends it by
    # ``extension_days`` but never past ``max_protection_days`` after the ownership began.
    protection_days: Mapped[int] = mapped_column(default=7)
    extension_days: Mapped[int] = mapped_column(default=7)
    max_protection_days: Mapped[int] = mapped_column(default=30)
    warn_days: Mapped[int] = mapped_column(default=2)
    reclaim_cooldown_days: Mapped[int] = mapped_column(default=7)
    created_at: Mapped[datetime]


class TeamPolicy(Base):
    """How a team routes: strategy, default daily capacities, SLA targets, pool, away policy."""

    __tablename__ = "team_policy"

    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), primary_key=True)
    strategy: Mapped[Strategy] = mapped_column(String(16), default=Strategy.ROUND_ROBIN)
    # Leads per local day per grade; a grade not named is unlimited.
    capacity: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    # Minutes from arrival to first touch per grade; a grade not named has no SLA.
    sla_minutes: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("lead_pool.id"))
    away_policy: Mapped[AwayPolicy] = mapped_column(String(16), default=AwayPolicy.REASSIGN_HOT)
    # Fairness virtual time: the pass of the last chosen rep (see routing.rules).
    virtual_pass: Mapped[float] = mapped_column(default=0.0)
    updated_at: Mapped[datetime]


class RepProfile(Base):
    """What routing needs to know about one rep."""

    __tablename__ = "rep_profile"

    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    presence: Mapped[Presence] = mapped_column(String(12), default=Presence.AVAILABLE)
    # Per-grade daily capacity overriding the team's; empty means the team's.
    capacity: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    max_open_leads: Mapped[int | None]
    weight: Mapped[float] = mapped_column(default=1.0)
    languages: Mapped[list[str]] = mapped_column(JSONType, default=list)
    product_lines: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Local working hours as minutes after midnight; both None means around the clock.
    work_start_minute: Mapped[int | None] = mapped_column(default=9 * 60)
    work_end_minute: Mapped[int | None] = mapped_column(default=18 * 60)
    # Public-holiday calendar (ISO country code, "CN" by default); None: weekends only.
    holiday_calendar: Mapped[str | None] = mapped_column(String(8), default="CN")
    updated_at: Mapped[datetime]


class RepAbsence(Base):
    """Leave or a holiday of one rep, in UTC."""

    __tablename__ = "rep_absence"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200), default="")


class RepPass(Base):
    """The fairness ledger: one stride-scheduling pass per rep and team.

    Kept per (team, rep) and never reset, so a rep joining, leaving or coming back does not
    restart the rotation for everyone else.
    """

    __tablename__ = "rep_pass"

    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    pass_value: Mapped[float] = mapped_column(default=0.0)
    assigned: Mapped[int] = mapped_column(default=0)
    last_assigned_at: Mapped[datetime | None]


class RepDayLoad(Base):
    """Leads routed to a rep on one local day, per grade: the daily capacity counter."""

    __tablename__ = "rep_day_load"

    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    grade: Mapped[str] = mapped_column(String(2), primary_key=True)
    assigned: Mapped[int] = mapped_column(default=0)


class Ownership(Base):
    """One stretch of a lead's life with one owner or in one pool: the ownership ledger.

    Exactly one row per lead is open (``ended_at`` null): a partial unique index makes a
    double assignment impossible whatever path or process tries it.
    """

    __tablename__ = "ownership"
    __table_args__ = (
        Index("uq_ownership_open_lead", "lead_id", unique=True,
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
        Index("ix_ownership_user_id_ended_at", "user_id", "ended_at"),
        Index("ix_ownership_sla_due_at", "sla_due_at",
              sqlite_where=text("ended_at IS NULL AND accepted_at IS NULL"),
              postgresql_where=text("ended_at IS NULL AND accepted_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # Team, pool, rule and actor are history, not links: no foreign keys, so a ledger row
    # outlives a deleted rule or pool, and a batch insert skips four checks per row.
    team_id: Mapped[int | None]
    pool_id: Mapped[int | None]
    kind: Mapped[OwnershipKind] = mapped_column(String(12))
    grade: Mapped[str | None] = mapped_column(String(2))
    rule_id: Mapped[int | None]
    reason: Mapped[str] = mapped_column(Text, default="")
    actor_id: Mapped[int | None]
    started_at: Mapped[datetime]
    sla_due_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    breach_level: Mapped[int] = mapped_column(default=0)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[EndReason | None] = mapped_column(String(16))


class SlaBreach(Base):
    """A lead not touched in time: level 1 escalates to the team lead, level 2 reroutes."""

    __tablename__ = "sla_breach"

    id: Mapped[int] = mapped_column(primary_key=True)
    ownership_id: Mapped[int] = mapped_column(ForeignKey("ownership.id"), index=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"), index=True)
    level: Mapped[int]
    grade: Mapped[str | None] = mapped_column(String(2))
    minutes_late: Mapped[float]
    breached_at: Mapped[datetime]


class NoticeKind(StrEnum):
    """Why someone is told something."""

    SLA_ESCALATION = "sla_escalation"
    RECYCLE_WARNING = "recycle_warning"
    LEAD_REROUTED = "lead_rerouted"
    TRIAGE = "triage"


class Notice(Base):
    """A message to one user in the app (the team lead's escalations, recycle warnings)."""

    __tablename__ = "notice"
    __table_args__ = (Index("ix_notice_user_id_read_at", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("lead.id"))
    kind: Mapped[NoticeKind] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]
