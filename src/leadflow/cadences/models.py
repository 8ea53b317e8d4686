"""Cadences and what they drive: enrollments, tasks (the work queue's rows) and A/B tests.

A nurture program is a cadence whose purpose is ``nurture``: automatic steps only, for the
leads in a nurture pool, grouped by maturity (warm / cold) and topic.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, ForeignKey, Index, String, Text, literal_column, text
from sqlalchemy.orm import Mapped, mapped_column

from leadflow.db import Base, JSONType


class Purpose(StrEnum):
    """Sales cadences drive reps' tasks; nurture programs send automatic content."""

    SALES = "sales"
    NURTURE = "nurture"


class Channel(StrEnum):
    """How a step reaches the lead."""

    CALL = "call"
    EMAIL = "email"
    SMS = "sms"
    WECHAT = "wechat"
    VOICEMAIL = "voicemail"
    GHOST_CALL = "ghost_call"
    SOCIAL = "social"


class Maturity(StrEnum):
    """Nurture groups: warm leads are interested and researching; cold ones went quiet."""

    WARM = "warm"
    COLD = "cold"


class ExitReason(StrEnum):
    """Why an enrollment ended or paused."""

    REPLIED = "replied"
    MEETING_BOOKED = "meeting_booked"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    NOT_INTERESTED = "not_interested"
    WRONG_NUMBER = "wrong_number"
    UNREACHABLE = "unreachable"
    COMPLETED = "completed"
    OWNER_CHANGED = "owner_changed"
    OUT_OF_OFFICE = "out_of_office"
    REP_AWAY = "rep_away"
    MANUAL = "manual"
    PROMOTED = "promoted"


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    EXITED = "exited"


class TaskKind(StrEnum):
    """A cadence step, a callback the lead asked for, or a task a rep added by hand."""

    STEP = "step"
    CALLBACK = "callback"
    MANUAL = "manual"


class TaskStatus(StrEnum):
    """scheduled → open (due: in the queue) → claimed (on a rep's screen) → done / skipped;
    cancelled when the enrollment ends or the lead changes hands."""

    SCHEDULED = "scheduled"
    OPEN = "open"
    CLAIMED = "claimed"
    DONE = "done"
    CANCELLED = "cancelled"


class Cadence(Base):
    """An ordered list of steps a lead goes through, with who enrolls and what ends it."""

    __tablename__ = "cadence"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    purpose: Mapped[Purpose] = mapped_column(String(8), default=Purpose.SALES)
    description: Mapped[str] = mapped_column(Text, default="")
    preset: Mapped[str | None] = mapped_column(String(40))
    is_active: Mapped[bool] = mapped_column(default=True)
    # Automatic enrollment on assignment: a lead matches when every non-empty list holds
    # its value ({"grades": ["A+", "A"], "team_ids": [3], "product_lines": ["CRM"]}).
    auto_enroll: Mapped[bool] = mapped_column(default=False)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    priority: Mapped[int] = mapped_column(default=100)
    attempt_budget: Mapped[int] = mapped_column(default=6)
    # Exit conditions (ExitReason values) that end the enrollment.
    exit_on: Mapped[list[str]] = mapped_column(JSONType, default=list)
    out_of_office_days: Mapped[int] = mapped_column(default=7)
    # Nurture programs: which pool's leads, at what maturity, on which topic.
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("lead_pool.id"))
    maturity: Mapped[Maturity | None] = mapped_column(String(8))
    topic: Mapped[str | None] = mapped_column(String(120))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CadenceStep(Base):
    """One touch: on day ``day_offset`` within a local-time window, by a channel."""

    __tablename__ = "cadence_step"
    __table_args__ = (Index("uq_cadence_step_position", "cadence_id", "position", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cadence_id: Mapped[int] = mapped_column(ForeignKey("cadence.id", ondelete="CASCADE"))
    position: Mapped[int]
    day_offset: Mapped[int] = mapped_column(default=0)
    # Minutes after local midnight; the step is due at the window's start on its day.
    window_start: Mapped[int] = mapped_column(default=9 * 60)
    window_end: Mapped[int] = mapped_column(default=18 * 60)
    channel: Mapped[Channel] = mapped_column(String(12))
    automatic: Mapped[bool] = mapped_column(default=False)
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    # Talking points / script shown to the rep on the task card.
    script: Mapped[str] = mapped_column(Text, default="")


class Experiment(Base):
    """An A/B test: a cadence against its variants, or variants of one step's template."""

    __tablename__ = "experiment"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    cadence_id: Mapped[int] = mapped_column(ForeignKey("cadence.id"), index=True)
    step_id: Mapped[int | None] = mapped_column(ForeignKey("cadence_step.id"))
    # The outcome the winner is judged on: contacted, replied, meeting or converted.
    metric: Mapped[str] = mapped_column(String(16), default="replied")
    is_running: Mapped[bool] = mapped_column(default=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    winner_arm_id: Mapped[int | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class ExperimentArm(Base):
    """One variant: another cadence (cadence tests) or another subject/body (step tests)."""

    __tablename__ = "experiment_arm"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(8))
    label: Mapped[str] = mapped_column(String(120), default="")
    cadence_id: Mapped[int | None] = mapped_column(ForeignKey("cadence.id"))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    weight: Mapped[float] = mapped_column(default=1.0)


class Enrollment(Base):
    """A lead going through a cadence: where it is, how many attempts are spent, why it ended.

    One live (active or paused) enrollment per lead: a partial unique index guards it.
    """

    __tablename__ = "enrollment"
    __table_args__ = (
        Index("uq_enrollment_live_lead", "lead_id", unique=True,
              sqlite_where=text("status IN ('active', 'paused')"),
              postgresql_where=text("status IN ('active', 'paused')")),
        Index("ix_enrollment_paused_until", "paused_until",
              sqlite_where=text("status = 'paused'"), postgresql_where=text("status = 'paused'")),
        Index("ix_enrollment_owner_id_status", "owner_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id"))
    cadence_id: Mapped[int] = mapped_column(ForeignKey("cadence.id"), index=True)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiment.id"))
    arm_id: Mapped[int | None] = mapped_column(ForeignKey("experiment_arm.id"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    status: Mapped[EnrollmentStatus] = mapped_column(String(10), default=EnrollmentStatus.ACTIVE)
    # Position of the next step to schedule (1-based); past the last step means done.
    next_position: Mapped[int] = mapped_column(default=1)
    attempts: Mapped[int] = mapped_column(default=0)
    attempt_budget: Mapped[int] = mapped_column(default=6)
    started_at: Mapped[datetime]
    paused_until: Mapped[datetime | None]
    pause_reason: Mapped[str | None] = mapped_column(String(16))
    ended_at: Mapped[datetime | None]
    exit_reason: Mapped[str | None] = mapped_column(String(16))
    # Outcomes for A/B reports, stamped once.
    contacted_at: Mapped[datetime | None]
    replied_at: Mapped[datetime | None]
    meeting_at: Mapped[datetime | None]
    converted_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


def task_status_is(*statuses: TaskStatus) -> ColumnElement[bool]:
    """``task.status`` equal to (one of) ``statuses``, spelled as SQL literals.

    The task table's partial indexes are keyed on status values; a prepared statement's
    generic plan only uses them when it can see the value, not a bind parameter.
    """
    values: list[ColumnElement[Any]] = [literal_column(f"'{s.value}'") for s in statuses]
    return Task.status == values[0] if len(values) == 1 else Task.status.in_(values)


class Task(Base):
    """One thing to do for one lead at a time: the work queue's row.

    Manual tasks wait in their owner's queue; automatic ones (emails, nurture sends) are run
    by the worker. ``bucket`` and ``rank`` order the queue (see ``queue.rules``); both are
    refreshed when the lead engages or the bucket's time runs out (``bucket_until``).
    """

    __tablename__ = "task"
    __table_args__ = (
        # The queue: a rep's open tasks, best first. Only manual tasks are ever open
        # (automatic ones go from scheduled to done), so the predicate is the status alone;
        # queries spell the status as a literal so generic plans can use the index.
        Index("ix_task_queue", "owner_id", "bucket", text("rank DESC"), "due_at",
              sqlite_where=text("status = 'open'"),
              postgresql_where=text("status = 'open'")),
        # The worker: scheduled tasks to open or run, by due time.
        Index("ix_task_scheduled", "due_at",
              sqlite_where=text("status = 'scheduled'"),
              postgresql_where=text("status = 'scheduled'")),
        Index("ix_task_claimed", "claimed_by_id",
              sqlite_where=text("status = 'claimed'"), postgresql_where=text("status = 'claimed'")),
        Index("ix_task_bucket_until", "bucket_until",
              sqlite_where=text("status = 'open' AND bucket_until IS NOT NULL"),
              postgresql_where=text("status = 'open' AND bucket_until IS NOT NULL")),
        Index("ix_task_lead_id_status", "lead_id", "status"),
        # A rep's tasks by due time (list mode, the workspace's counts, the catch-up plan).
        Index("ix_task_owner_id_due_at", "owner_id", "due_at"),
        Index("ix_task_best_hour", "best_hour",
              sqlite_where=text("best_hour IS NOT NULL AND status IN ('open', 'scheduled')"),
              postgresql_where=text(
                  "best_hour IS NOT NULL AND status IN ('open', 'scheduled')")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollment.id"), index=True)
    step_id: Mapped[int | None] = mapped_column(ForeignKey("cadence_step.id"))
    kind: Mapped[TaskKind] = mapped_column(String(10), default=TaskKind.STEP)
    channel: Mapped[Channel] = mapped_column(String(12))
    automatic: Mapped[bool] = mapped_column(default=False)
    status: Mapped[TaskStatus] = mapped_column(String(10), default=TaskStatus.SCHEDULED)
    due_at: Mapped[datetime]
    window_end_at: Mapped[datetime | None]
    bucket: Mapped[int] = mapped_column(default=4)
    rank: Mapped[float] = mapped_column(default=0.0)
    bucket_until: Mapped[datetime | None]
    # The local hour the lead responds at most (see queue.rules.best_hour).
    best_hour: Mapped[int | None]
    attempt_no: Mapped[int] = mapped_column(default=1)
    note: Mapped[str] = mapped_column(Text, default="")
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    claimed_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    disposition: Mapped[str | None] = mapped_column(String(20))
    skips: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
