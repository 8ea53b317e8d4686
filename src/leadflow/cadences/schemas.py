"""Pydantic shapes of the cadence API and forms."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadflow.cadences.models import Channel, ExitReason, Maturity, Purpose
from leadflow.cadences.rules import Disposition


class StepIn(BaseModel):
    """One step as an admin edits it."""

    day_offset: int = Field(ge=0, le=365)
    window_start: int = Field(default=9 * 60, ge=0, le=24 * 60)
    window_end: int = Field(default=18 * 60, ge=0, le=24 * 60)
    channel: Channel
    automatic: bool = False
    subject: str = Field(default="", max_length=200)
    body: str = Field(default="", max_length=20_000)
    script: str = Field(default="", max_length=5_000)

    @model_validator(mode="after")
    def _window(self) -> StepIn:
        if self.window_end <= self.window_start:
            raise ValueError("the window must end after it starts")
        if self.automatic and self.channel not in (Channel.EMAIL, Channel.SMS, Channel.WECHAT):
            raise ValueError("only email, SMS and WeChat steps can send themselves")
        return self


class CadenceIn(BaseModel):
    """A cadence or nurture program with its steps."""

    name: str = Field(min_length=1, max_length=120)
    purpose: Purpose = Purpose.SALES
    description: str = Field(default="", max_length=2_000)
    is_active: bool = True
    auto_enroll: bool = False
    grades: list[str] = Field(default_factory=list)
    team_ids: list[int] = Field(default_factory=list)
    product_lines: list[str] = Field(default_factory=list)
    priority: int = Field(default=100, ge=0, le=10_000)
    attempt_budget: int = Field(default=6, ge=1, le=50)
    exit_on: list[ExitReason] = Field(default_factory=list)
    out_of_office_days: int = Field(default=7, ge=1, le=60)
    pool_id: int | None = None
    maturity: Maturity | None = None
    topic: str | None = Field(default=None, max_length=120)
    steps: list[StepIn] = Field(min_length=1, max_length=60)

    @field_validator("name", "topic")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value else value

    @model_validator(mode="after")
    def _nurture_is_automatic(self) -> CadenceIn:
        if self.purpose == Purpose.NURTURE and not all(s.automatic for s in self.steps):
            raise ValueError("nurture programs send by themselves: every step is automatic")
        offsets = [s.day_offset for s in self.steps]
        if offsets != sorted(offsets):
            raise ValueError("steps must be in day order")
        return self


class StepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    position: int
    day_offset: int
    window_start: int
    window_end: int
    channel: Channel
    automatic: bool
    subject: str
    body: str
    script: str


class CadenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    purpose: Purpose
    description: str
    is_active: bool
    auto_enroll: bool
    conditions: dict[str, list[object]]
    priority: int
    attempt_budget: int
    exit_on: list[str]
    pool_id: int | None
    maturity: Maturity | None
    topic: str | None
    steps: list[StepOut] = Field(default_factory=list)


class EnrollIn(BaseModel):
    """Put a lead in a cadence by hand."""

    cadence_id: int


class DispositionIn(BaseModel):
    """What happened when the rep did the task."""

    disposition: Disposition
    note: str = Field(default="", max_length=2_000)
    callback_at: datetime | None = None

    @model_validator(mode="after")
    def _callback(self) -> DispositionIn:
        if self.disposition == Disposition.CALL_BACK and self.callback_at is None:
            raise ValueError("say when to call back")
        if self.callback_at is not None and self.callback_at.tzinfo is None:
            raise ValueError("callback_at needs a time zone")
        return self


class SkipIn(BaseModel):
    """Skipping a task needs a reason: it is logged, so the queue cannot be cherry-picked."""

    reason: str = Field(min_length=3, max_length=300)

    @field_validator("reason")
    @classmethod
    def _strip(cls, value: str) -> str:
        if len(value.strip()) < 3:
            raise ValueError("say why you skip this task")
        return value.strip()
