"""The scoring rule set as a document (YAML in and out, JSON in the database) and API shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GRADES: tuple[str, ...] = ("A+", "A", "B", "C", "D")
Grade = Literal["A+", "A", "B", "C", "D"]


def grade_rank(grade: str) -> int:
    """0 for A+ … 4 for D: a lower rank is a better grade."""
    return GRADES.index(grade)


class Op(StrEnum):
    """How a condition compares a lead's field with its value."""

    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"
    BETWEEN = "between"
    GTE = "gte"
    LTE = "lte"
    PRESENT = "present"
    MISSING = "missing"


_LIST_OPS = {Op.IN, Op.NOT_IN, Op.CONTAINS}
_NUMBER_OPS = {Op.GTE, Op.LTE}


class Condition(BaseModel):
    """``field op value``, e.g. ``industry in [教育, 软件]`` or ``activity.community_class gte 1``.

    Fields are lead columns (``industry``, ``headcount``, ``title``, ``tags`` …), ``channel``
    (the campaign's), ``custom.<name>`` (a custom field), ``activity.<kind>`` (how many such
    activities the lead has), and, in overrides, ``fit``, ``engagement``, ``score`` and
    ``probability``.
    """

    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1, max_length=120)
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op in _LIST_OPS:
            values = self.value if isinstance(self.value, list) else [self.value]
            if not values or any(v is None or str(v).strip() == "" for v in values):
                raise ValueError(f"{self.op} needs a non-empty list of values")
            self.value = [str(v).strip() for v in values]
        elif self.op in _NUMBER_OPS:
            self.value = _number(self.value, self.op)
        elif self.op is Op.BETWEEN:
            if not isinstance(self.value, list) or len(self.value) != 2:
                raise ValueError("between needs [low, high] (either may be null)")
            low, high = (None if v is None else _number(v, self.op) for v in self.value)
            if low is None and high is None:
                raise ValueError("between needs at least one bound")
            if low is not None and high is not None and low > high:
                raise ValueError(f"between: low {low} is above high {high}")
            self.value = [low, high]
        elif self.op in {Op.EQ, Op.NE}:
            if self.value is None or str(self.value).strip() == "":
                raise ValueError(f"{self.op} needs a value")
            self.value = str(self.value).strip()
        return self


def _number(value: Any, op: Op) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{op} needs a number, got {value!r}") from None


class FitRule(Condition):
    """A rule of the ideal customer profile: a hit adds ``points`` to the fit score."""

    label: str = Field(default="", max_length=120)
    points: float = Field(ge=-100, le=100)


class FitConfig(BaseModel):
    """Who the lead is: the ideal customer profile."""

    model_config = ConfigDict(extra="forbid")

    rules: list[FitRule] = Field(default_factory=list)
    # Fit is the sum of hits clamped to 0..max, then shown as 0..100.
    max: float = Field(default=100, gt=0)


class ActivityPoints(BaseModel):
    """Points one kind of activity earns, before decay."""

    model_config = ConfigDict(extra="forbid")

    points: float = Field(ge=-100, le=100)
    # Bound on this kind's decayed total (both signs), so 40 email opens are not an A.
    cap: float | None = Field(default=None, gt=0)
    # Multiply by the activity's value (minutes read, amount paid) instead of counting it.
    per_value: bool = False
    # Pages (substrings of the activity's ``ref``) worth other points, e.g. ``/pricing: 8``.
    pages: dict[str, float] = Field(default_factory=dict)


class EngagementConfig(BaseModel):
    """What the lead does, with time decay."""

    model_config = ConfigDict(extra="forbid")

    half_life_days: float = Field(default=14, gt=0, le=3650)
    activities: dict[str, ActivityPoints] = Field(default_factory=dict)
    max_total: float = Field(default=100, gt=0)
    min_total: float = Field(default=-50, le=0)

    @field_validator("activities")
    @classmethod
    def _known_kinds(cls, value: dict[str, ActivityPoints]) -> dict[str, ActivityPoints]:
        from leadflow.leads.models import ENGAGEMENT_KINDS

        known = {k.value for k in ENGAGEMENT_KINDS}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown activity kinds {unknown}; known: {sorted(known)}")
        return value


class Override(BaseModel):
    """A grade rule from the brief that beats the arithmetic, e.g. paid consultation → A+."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=120)
    when: list[Condition] = Field(min_length=1)
    grade: Grade
    # set: exactly this grade; floor: at least this grade; cap: at most this grade.
    mode: Literal["set", "floor", "cap"] = "set"


class Weights(BaseModel):
    """How fit, engagement and the learned probability combine into the score."""

    model_config = ConfigDict(extra="forbid")

    fit: float = Field(default=0.4, ge=0)
    engagement: float = Field(default=0.3, ge=0)
    model: float = Field(default=0.3, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> Weights:
        if self.fit + self.engagement <= 0:
            raise ValueError("fit and engagement weights cannot both be 0 (cold start needs one)")
        return self


class GradingConfig(BaseModel):
    """Score thresholds per grade, overrides, and the MQL line."""

    model_config = ConfigDict(extra="forbid")

    weights: Weights = Field(default_factory=Weights)
    # The lowest score of each grade; below C's is D.
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"A+": 80.0, "A": 65.0, "B": 45.0, "C": 25.0}
    )
    # A lead whose grade is this or better is marketing-qualified.
    mql_grade: Grade = "A"
    overrides: list[Override] = Field(default_factory=list)

    @field_validator("thresholds")
    @classmethod
    def _descending(cls, value: dict[str, float]) -> dict[str, float]:
        missing = [g for g in GRADES[:-1] if g not in value]
        if missing or set(value) - set(GRADES[:-1]):
            raise ValueError(f"thresholds are needed for exactly {list(GRADES[:-1])}")
        ordered = [value[g] for g in GRADES[:-1]]
        if any(a <= b for a, b in pairwise(ordered)):
            raise ValueError("thresholds must fall from A+ to C")
        return value


class ModelConfig(BaseModel):
    """When the learned model joins the rules (cold start) and what counts as an outcome."""

    model_config = ConfigDict(extra="forbid")

    min_outcomes: int = Field(default=300, ge=20)
    min_positive: int = Field(default=30, ge=5)
    # A lead neither converted nor disqualified this long after arrival counts as lost.
    outcome_window_days: int = Field(default=90, ge=7)


class RulesetDocument(BaseModel):
    """Everything an admin can change about scoring, versioned as one document."""

    model_config = ConfigDict(extra="forbid")

    fit: FitConfig = Field(default_factory=FitConfig)
    engagement: EngagementConfig = Field(default_factory=EngagementConfig)
    grading: GradingConfig = Field(default_factory=GradingConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)


class ActivityIn(BaseModel):
    """An engagement event reported by an integration (webinar tool, web tracker, …)."""

    kind: str = Field(min_length=1, max_length=24)
    occurred_at: datetime | None = None
    value: float | None = Field(default=None, ge=0, le=1_000_000)
    ref: str | None = Field(default=None, max_length=300)
    summary: str = Field(default="", max_length=500)
    detail: dict[str, Any] = Field(default_factory=dict)


class ReasonOut(BaseModel):
    """One reason behind a score."""

    source: str
    text: str
    points: float


class ScoreOut(BaseModel):
    """A lead's score, grade and the reasons for them."""

    lead_id: int
    grade: str
    score: float
    fit: float
    engagement: float
    probability: float | None
    is_mql: bool
    ruleset_version: int
    model_id: int | None
    scored_at: datetime
    reasons: list[ReasonOut] = Field(default_factory=list)


class FlagIn(BaseModel):
    """A rep's report that a grade is wrong."""

    suggested_grade: Grade | None = None
    reason: str = Field(min_length=3, max_length=1000)
