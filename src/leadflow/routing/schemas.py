"""Routing API shapes: rule conditions, rules, rep profiles, team policies, lead actions."""

from __future__ import annotations

from datetime import date, datetime

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator

from leadflow.routing.models import AwayPolicy, PoolKind, Presence, Strategy
from leadflow.scoring.schemas import GRADES, Grade
from leadflow.users.models import Segment


def _clean(values: list[str]) -> list[str]:
    return sorted({v.strip() for v in values if v and v.strip()})


class RuleConditions(BaseModel):
    """What a lead must have for a rule to match; an empty list matches anything."""

    model_config = ConfigDict(extra="forbid")

    grades: list[Grade] = []
    min_probability: float | None = Field(default=None, ge=0, le=1)
    segments: list[Segment] = []
    product_lines: list[str] = []
    regions: list[str] = []
    channels: list[str] = []
    languages: list[str] = []
    tags: list[str] = []

    @field_validator("product_lines", "regions", "channels", "languages", "tags")
    @classmethod
    def _trimmed(cls, values: list[str]) -> list[str]:
        return _clean(values)

    @field_validator("grades")
    @classmethod
    def _ordered(cls, values: list[str]) -> list[str]:
        return sorted(set(values), key=GRADES.index)


class RuleIn(BaseModel):
    """A routing rule to create or replace: conditions and a team or a pool."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    conditions: RuleConditions = RuleConditions()
    team_id: int | None = None
    pool_id: int | None = None
    is_active: bool = True


class RuleOut(RuleIn):
    """A stored routing rule."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    position: int
    updated_at: datetime


class RuleOrderIn(BaseModel):
    """The rule ids in their new order."""

    rule_ids: list[int]


class TeamPolicyIn(BaseModel):
    """How a team routes."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = Strategy.ROUND_ROBIN
    capacity: dict[Grade, int] = {}
    sla_minutes: dict[Grade, int] = {}
    pool_id: int | None = None
    away_policy: AwayPolicy = AwayPolicy.REASSIGN_HOT

    @field_validator("capacity", "sla_minutes")
    @classmethod
    def _non_negative(cls, values: dict[str, int]) -> dict[str, int]:
        if any(v < 0 for v in values.values()):
            raise ValueError("must be zero or more")
        return values


class RepProfileIn(BaseModel):
    """What routing needs to know about a rep."""

    model_config = ConfigDict(extra="forbid")

    presence: Presence = Presence.AVAILABLE
    capacity: dict[Grade, int] = {}
    max_open_leads: int | None = Field(default=None, ge=0)
    weight: float = Field(default=1.0, ge=0, le=100)
    languages: list[str] = []
    product_lines: list[str] = []
    work_start_minute: int | None = Field(default=9 * 60, ge=0, lt=24 * 60)
    work_end_minute: int | None = Field(default=18 * 60, ge=0, le=24 * 60)
    holiday_calendar: str | None = "CN"

    @field_validator("languages", "product_lines")
    @classmethod
    def _trimmed(cls, values: list[str]) -> list[str]:
        return _clean(values)

    @field_validator("holiday_calendar")
    @classmethod
    def _known_calendar(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in holidays.list_supported_countries():
            raise ValueError(f"unknown holiday calendar {value!r}; use an ISO country code")
        return value.upper() if value else None


class PoolIn(BaseModel):
    """A lead pool and its claim and protection rules."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    kind: PoolKind = PoolKind.PUBLIC
    team_id: int | None = None
    claim_daily_cap: int = Field(default=10, ge=0)
    holding_cap: int = Field(default=50, ge=0)
    protection_days: int = Field(default=7, ge=1)
    extension_days: int = Field(default=7, ge=0)
    max_protection_days: int = Field(default=30, ge=1)
    warn_days: int = Field(default=2, ge=0)
    reclaim_cooldown_days: int = Field(default=7, ge=0)


class AbsenceIn(BaseModel):
    """Leave or a holiday for a rep."""

    starts_at: datetime
    ends_at: datetime
    reason: str = Field(default="", max_length=200)


class RejectIn(BaseModel):
    """Why the lead does not fit (it goes to triage)."""

    reason: str = Field(min_length=1, max_length=500)


class ReturnIn(BaseModel):
    """Why the lead is not ready and when to look again (it goes to nurture)."""

    reason: str = Field(min_length=1, max_length=500)
    follow_up_on: date | None = None


class TransferIn(BaseModel):
    """Give leads to a named rep."""

    lead_ids: list[int] = Field(min_length=1, max_length=10_000)
    to_user_id: int
    reason: str = Field(default="", max_length=500)


class RerouteIn(BaseModel):
    """Send a lead through the rules again, or into a named team."""

    team_id: int | None = None


class TouchIn(BaseModel):
    """A rep's touch: call, email, message or meeting."""

    kind: str
    summary: str = Field(default="", max_length=2000)


class PresenceIn(BaseModel):
    """A rep's presence switch."""

    presence: Presence


class OwnershipOut(BaseModel):
    """Where a lead stands: owner or pool, and why."""

    lead_id: int
    owner_id: int | None
    team_id: int | None
    pool_id: int | None
    status: str
    reason: str | None = None
    sla_due_at: datetime | None = None
    protected_until: datetime | None = None


class OwnedMatchOut(BaseModel):
    """An owned lead matching the person or company a rep looks at (撞单)."""

    lead_id: int
    owner_name: str
    team_name: str | None
    matched_on: str
