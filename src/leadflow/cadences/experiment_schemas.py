"""A/B test API shapes: experiments and their arms, the stop request and the report."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from leadflow.cadences.abtest import Decision, Metric


class ArmIn(BaseModel):
    """One variant: another cadence (cadence test) or another subject/body (step test).

    An arm with neither is the control: the experiment's cadence or step as it is.
    """

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=8, pattern=r"^[A-Za-z0-9]+$")
    label: str = Field(default="", max_length=120)
    cadence_id: int | None = None
    subject: str | None = Field(default=None, max_length=200)
    body: str | None = None
    weight: float = Field(default=1.0, gt=0, le=100)

    @field_validator("key")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("subject", "body")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None


class ExperimentIn(BaseModel):
    """A new experiment on a cadence (``step_id`` set: on that step's template)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    cadence_id: int
    step_id: int | None = None
    metric: Metric = Metric.REPLIED
    arms: list[ArmIn] = Field(min_length=2, max_length=8)


class ArmOut(BaseModel):
    """A stored arm."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    key: str
    label: str
    cadence_id: int | None
    subject: str | None
    body: str | None
    weight: float


class ExperimentOut(BaseModel):
    """A stored experiment with its arms."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    cadence_id: int
    step_id: int | None
    metric: Metric
    is_running: bool
    started_at: datetime
    ended_at: datetime | None
    winner_arm_id: int | None
    arms: list[ArmOut] = []


class StopIn(BaseModel):
    """Stop an experiment, naming the winning arm (or none)."""

    model_config = ConfigDict(extra="forbid")

    winner_arm_id: int | None = None


class ArmResultOut(BaseModel):
    """One arm's figures on one metric."""

    arm_id: int
    key: str
    label: str
    enrolled: int
    successes: int
    rate: float | None
    mean: float
    ci_low: float
    ci_high: float
    prob_best: float
    expected_loss: float
    more_needed: int | None


class VerdictOut(BaseModel):
    """The comparison on one metric."""

    metric: Metric
    decision: Decision
    leader: str
    compared_with: str
    winner: str | None
    lift: float | None
    prob_best: float
    p_value: float = Field(description="always-valid p-value (mixture SPRT), leader vs rival")
    more_per_arm: int | None
    more_total: int | None
    summary: str
    arms: list[ArmResultOut]


class ReportOut(BaseModel):
    """An experiment's report: every metric, the deciding one first."""

    experiment: ExperimentOut
    days_running: float
    enrolled: int
    leads_per_day: float | None
    days_needed: float | None
    verdicts: list[VerdictOut]
