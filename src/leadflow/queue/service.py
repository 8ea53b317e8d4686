"""The rep's queue: claim the single next best task (queue mode), or today's tasks grouped by
channel and half-day (list mode).

A claim is one indexed ``SELECT … ORDER BY bucket, rank DESC, due_at LIMIT 1 FOR UPDATE
SKIP LOCKED`` (PostgreSQL) and an ``UPDATE``: two reps — or two tabs of one rep — never get
the same task. Asking again before recording an outcome returns the same task, so "Next"
cannot be pressed until a lead worth calling comes up.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.orm import Session, aliased

from leadflow.cadences.models import (
    Cadence,
    CadenceStep,
    Channel,
    Enrollment,
    Experiment,
    ExperimentArm,
    Task,
    TaskStatus,
    task_status_is,
)
from leadflow.cadences.rules import dispositions_for
from leadflow.db import lock_for_writing
from leadflow.leads.models import Activity, Lead
from leadflow.queue import rules
from leadflow.scoring.models import LeadScore
from leadflow.users.models import User

# A claim not finished within this time goes back to the queue (the rep left the desk).
CLAIM_TTL = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class TaskCard:
    """Everything the rep needs to act on the next task."""

    task_id: int
    lead_id: int
    lead_name: str | None
    company: str | None
    title: str | None
    phone: str | None
    email: str | None
    wechat_id: str | None
    grade: str | None
    probability: float | None
    channel: str
    kind: str
    due_at: datetime
    bucket: int
    reason: str
    attempt: int
    attempt_budget: int
    cadence: str | None
    step: int | None
    steps: int | None
    subject: str
    body: str
    script: str
    note: str
    dispositions: tuple[str, ...]
    history: list[dict[str, Any]] = field(default_factory=list)


def held_task(*, session: Session, user: User, now: datetime) -> TaskCard | None:
    """The task the rep claimed and has not finished, if any (claims nothing)."""
    held = session.scalar(select(Task.id).where(Task.claimed_by_id == user.id,
                                                task_status_is(TaskStatus.CLAIMED))
                          .order_by(Task.claimed_at).limit(1))
    return None if held is None else task_card(session=session, task_id=held, now=now)


def next_task(*, session: Session, user: User, now: datetime) -> TaskCard | None:
    """Claim the rep's next best task (or return the one already claimed)."""
    if session.get_bind().dialect.name == "postgresql":
        task_id = session.scalar(_HELD_OR_CLAIM, {"user": user.id, "now": now})
        return None if task_id is None else task_card(session=session, task_id=task_id,
                                                      now=now)
    held = held_task(session=session, user=user, now=now)
    if held is not None:
        return held
    lock_for_writing(session)
    # One statement: pick the best open task nobody holds and claim it.
    best = (
        select(Task.id)
        .where(Task.owner_id == user.id, task_status_is(TaskStatus.OPEN), Task.due_at <= now)
        .order_by(Task.bucket, Task.rank.desc(), Task.due_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    task_id = session.scalar(
        update(Task).where(Task.id == best)
        .values(status=TaskStatus.CLAIMED.value, claimed_by_id=user.id, claimed_at=now)
        .returning(Task.id).execution_options(synchronize_session=False))
    if task_id is None:
        return None
    return task_card(session=session, task_id=task_id, now=now)


# PostgreSQL, one round trip (Next is the hottest path): the task the rep already holds,
# else the best open one nobody has locked, claimed. ``pick`` looks only when nothing is
# held, so a held task never locks another row. Same order as the queue's partial index.
_HELD_OR_CLAIM = text("""
WITH held AS (
    SELECT id FROM task WHERE claimed_by_id = :user AND status = 'claimed'
    ORDER BY claimed_at LIMIT 1
), pick AS (
    SELECT id FROM task
    WHERE owner_id = :user AND status = 'open' AND due_at <= :now
      AND NOT EXISTS (SELECT 1 FROM held)
    ORDER BY bucket, rank DESC, due_at LIMIT 1
    FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE task SET status = 'claimed', claimed_by_id = :user, claimed_at = :now
    FROM pick WHERE task.id = pick.id
    RETURNING task.id
)
SELECT id FROM held UNION ALL SELECT id FROM taken
""")


def release(*, session: Session, task_id: int, user: User) -> None:
    """Hand a claimed task back to the queue unchanged (the rep closes the card)."""
    session.execute(update(Task).where(Task.id == task_id, Task.claimed_by_id == user.id,
                                       task_status_is(TaskStatus.CLAIMED))
                    .values(status=TaskStatus.OPEN.value, claimed_by_id=None,
                            claimed_at=None))


def task_card(*, session: Session, task_id: int, now: datetime,
              history: int = 8) -> TaskCard:
    """The task with its lead, script, template and recent history."""
    # Columns, not entities: the card needs a few of the lead's forty, and Next is hot.
    every_step = aliased(CadenceStep)
    steps_in_cadence = (select(func.max(every_step.position))
                        .where(every_step.cadence_id == Enrollment.cadence_id)
                        .correlate(Enrollment).scalar_subquery())
    c = session.execute(
        select(Task.id, Task.channel, Task.kind, Task.due_at, Task.bucket, Task.rank,
               Task.note, Lead.id.label("lead_id"), Lead.name, Lead.company, Lead.title,
               Lead.phone, Lead.email, Lead.wechat_id, Lead.owned_at, LeadScore.grade,
               LeadScore.probability, CadenceStep.position, CadenceStep.subject,
               CadenceStep.body, CadenceStep.script, Enrollment.attempt_budget,
               Enrollment.attempts, Cadence.name.label("cadence"),
               steps_in_cadence.label("steps"), Experiment.id.label("tested"),
               ExperimentArm.subject.label("arm_subject"),
               ExperimentArm.body.label("arm_body"))
        .join(Lead, Lead.id == Task.lead_id)
        .outerjoin(LeadScore, LeadScore.lead_id == Task.lead_id)
        .outerjoin(CadenceStep, CadenceStep.id == Task.step_id)
        .outerjoin(Enrollment, Enrollment.id == Task.enrollment_id)
        .outerjoin(Cadence, Cadence.id == Enrollment.cadence_id)
        # A step-template A/B test shows the lead's variant of this step.
        .outerjoin(ExperimentArm, ExperimentArm.id == Enrollment.arm_id)
        .outerjoin(Experiment, and_(Experiment.id == ExperimentArm.experiment_id,
                                    Experiment.step_id == Task.step_id))
        .where(Task.id == task_id)
    ).one()
    subject = (c.arm_subject if c.tested and c.arm_subject else c.subject) or ""
    body = (c.arm_body if c.tested and c.arm_body else c.body) or ""
    recent = session.execute(
        select(Activity.kind, Activity.occurred_at, Activity.summary, Activity.channel)
        .where(Activity.lead_id == c.lead_id).order_by(Activity.occurred_at.desc(),
                                                        Activity.id.desc()).limit(history))
    budget = c.attempt_budget if c.attempt_budget is not None else 6
    attempts = c.attempts or 0
    return TaskCard(
        task_id=c.id, lead_id=c.lead_id, lead_name=c.name, company=c.company,
        title=c.title, phone=c.phone, email=c.email, wechat_id=c.wechat_id,
        grade=c.grade, probability=c.probability, channel=c.channel, kind=c.kind,
        due_at=c.due_at, bucket=c.bucket,
        reason=rules.reason(bucket=c.bucket, grade=c.grade, due_at=c.due_at,
                            assigned_at=c.owned_at, attempts=attempts, budget=budget,
                            now=now, channel=c.channel,
                            best_hour_now=c.rank >= rules.BOOSTED),
        attempt=attempts + 1, attempt_budget=budget, cadence=c.cadence,
        step=c.position, steps=c.steps, subject=subject, body=body,
        script=c.script or "", note=c.note,
        dispositions=tuple(d.value for d in dispositions_for(Channel(c.channel))),
        history=[{"kind": k, "at": at, "summary": s, "channel": ch} for k, at, s, ch in recent],
    )


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """How much is waiting: manual tasks due by now, and when the next one falls due."""

    due: int
    next_due_at: datetime | None


def summary(*, session: Session, user: User, now: datetime) -> QueueSummary:
    """The rep's due manual tasks (the catch-up plan spreads them when there are too many)
    and the due time of the first one still ahead."""
    pending = (Task.owner_id == user.id, Task.automatic.is_(False),
               Task.status.in_((TaskStatus.OPEN.value, TaskStatus.SCHEDULED.value)))
    due = session.scalar(select(func.count()).select_from(Task)
                         .where(*pending, Task.due_at <= now)) or 0
    ahead = session.scalar(select(func.min(Task.due_at)).where(*pending, Task.due_at > now))
    return QueueSummary(int(due), ahead)


@dataclass(frozen=True, slots=True)
class ListItem:
    """One row of list mode."""

    task_id: int
    lead_id: int
    lead_name: str | None
    company: str | None
    grade: str | None
    channel: str
    due_at: datetime
    status: str
    note: str


def todays_tasks(*, session: Session, user: User, now: datetime, timezone: str,
                 limit: int = 500) -> dict[str, dict[str, list[ListItem]]]:
    """List mode: the rep's tasks due by the end of today, by channel, then morning /
    afternoon (local time). Overdue tasks count as this morning's."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    end_of_day = local.replace(hour=23, minute=59, second=59).astimezone(now.tzinfo)
    rows = session.execute(
        select(Task.id, Task.lead_id, Lead.name, Lead.company, LeadScore.grade, Task.channel,
               Task.due_at, Task.status, Task.note)
        .join(Lead, Lead.id == Task.lead_id)
        .outerjoin(LeadScore, LeadScore.lead_id == Task.lead_id)
        .where(Task.owner_id == user.id, Task.automatic.is_(False),
               Task.status.in_((TaskStatus.OPEN.value, TaskStatus.SCHEDULED.value,
                                TaskStatus.CLAIMED.value)),
               Task.due_at <= end_of_day)
        .order_by(Task.bucket, Task.rank.desc(), Task.due_at).limit(limit))
    grouped: dict[str, dict[str, list[ListItem]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        item = ListItem(*r)
        due_local = item.due_at.astimezone(zone)
        half = "morning" if due_local.date() < local.date() or due_local.hour < 12 \
            else "afternoon"
        grouped[item.channel][half].append(item)
    return {ch: dict(halves) for ch, halves in grouped.items()}
