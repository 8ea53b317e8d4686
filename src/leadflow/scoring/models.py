"""Scoring state: rule-set versions, trained model versions, each lead's score, grade flags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from leadflow.db import Base, JSONType


class ScoringRuleset(Base):
    """One version of the scoring configuration (fit rules, engagement points, grading).

    Versions are append-only: an edit writes a new row, the highest version is in force, and
    every lead score records the version that produced it.
    """

    __tablename__ = "scoring_ruleset"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # SHA-256 of the canonical document: processes cache parsed rule sets by it.
    digest: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime]


class ScoringModel(Base):
    """A trained conversion model with its metrics; ``blob`` is skops, loaded with an allowlist."""

    __tablename__ = "scoring_model"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    # "database" or the history file's name.
    source: Mapped[str] = mapped_column(String(255))
    target: Mapped[str] = mapped_column(String(120))
    id_column: Mapped[str | None] = mapped_column(String(120))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    # SHA-256 of the blob: processes cache loaded models by it, never by id alone.
    digest: Mapped[str] = mapped_column(String(64))
    # Only one model at a time scores the leads in the database.
    is_active: Mapped[bool] = mapped_column(default=False)
    n_rows: Mapped[int]
    n_positive: Mapped[int]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime]


class LeadScore(Base):
    """The current score of one lead; a narrow table so re-scoring rewrites little."""

    __tablename__ = "lead_score"

    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id"), primary_key=True)
    fit: Mapped[float]
    engagement: Mapped[float]
    probability: Mapped[float | None]
    score: Mapped[float]
    grade: Mapped[str] = mapped_column(String(2))
    is_mql: Mapped[bool] = mapped_column(default=False)
    # When the lead first crossed the MQL line, and the grade it had then.
    mql_at: Mapped[datetime | None]
    first_grade: Mapped[str] = mapped_column(String(2))
    ruleset_version: Mapped[int]
    model_id: Mapped[int | None]
    scored_at: Mapped[datetime]
    # Engagement per kind as of ``totals_at`` (see scoring.totals); NULL when unknown. A
    # re-score that reuses them leaves both as they are: decayed from then, they still hold.
    engagement_totals: Mapped[bytes | None] = mapped_column(LargeBinary)
    totals_at: Mapped[datetime | None]


class GradeFlag(Base):
    """A rep's report that a lead's grade is wrong; read in the calibration report."""

    __tablename__ = "grade_flag"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    grade: Mapped[str] = mapped_column(String(2))
    suggested_grade: Mapped[str | None] = mapped_column(String(2))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
