"""Periodic cadence work, run by ``leadflow worker``:

- open manual tasks whose time has come (they join their owner's queue);
- run due automatic steps (emails, SMS, WeChat, nurture sends) into the message outbox;
- resume enrollments whose pause ran out (out of office);
- hand back claims a rep left on screen too long, and move tasks out of a bucket whose
  time ran out (a hot lead after 24 hours, an engaged one after an hour);
- spread a returning rep's backlog over the coming days.

Each job takes a session and flushes like a service; :func:`sweep` runs each in its own
transaction. Automatic steps are claimed with ``FOR UPDATE SKIP LOCKED`` so several workers
share them, and each becomes a message keyed ``task:<id>``: a step run twice (a worker
killed after sending but before committing) still makes one message.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from leadflow.cadences import rules
from leadflow.cadences.models import (
    CadenceStep,
    Enrollment,
    EnrollmentStatus,
    ExitReason,
    Experiment,
    ExperimentArm,
    Task,
    TaskStatus,
    task_status_is,
)
from leadflow.cadences.service import (
    LIVE,
    _end_live,
    _step_task,
    calendar,
    lead_facts,
    local_hour,
    resume,
)
from leadflow.db import bulk_insert, bulk_upsert, lock_for_writing, session_scope
from leadflow.leads.models import Activity, ActivityKind
from leadflow.queue import rules as queue_rules
from leadflow.queue.service import CLAIM_TTL
from leadflow.routing.models import Presence, RepAbsence, RepProfile
from leadflow.users.models import User

AUTOMATIC_BATCH = 500


@dataclass(slots=True)
class CadenceSweep:
    """What one pass did."""

    opened: int = 0
    sent: int = 0
    deferred: int = 0
    resumed: int = 0
    released: int = 0
    rebucketed: int = 0

    def as_dict(self) -> dict[str, int]:
        """Counts by job, for logs and ``--json``."""
        return asdict(self)


def release_due(*, session: Session, now: datetime, limit: int = 10_000) -> int:
    """Manual tasks whose due time came join their owner's queue."""
    ids = list(session.scalars(
        select(Task.id).where(task_status_is(TaskStatus.SCHEDULED),
                              Task.automatic.is_(False), Task.due_at <= now)
        .order_by(Task.due_at).limit(limit).with_for_update(skip_locked=True)))
    if ids:
        session.execute(update(Task).where(Task.id.in_(ids))
                        .values(status=TaskStatus.OPEN.value))
    return len(ids)


def release_stale_claims(*, session: Session, now: datetime) -> int:
    """Claims left on a rep's screen longer than the claim time go back to the queue."""
    result = session.execute(
        update(Task).where(task_status_is(TaskStatus.CLAIMED),
                           Task.claimed_at < now - CLAIM_TTL)
        .values(status=TaskStatus.OPEN.value, claimed_by_id=None, claimed_at=None))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def refresh_buckets(*, session: Session, now: datetime, limit: int = 10_000) -> int:
    """Tasks whose bucket expired (hot for 24 h, engaged for 1 h) take their plain place."""
    rows = session.execute(
        select(Task.id, Task.lead_id, Task.due_at, Task.attempt_no, Task.kind, Task.best_hour)
        .where(task_status_is(TaskStatus.OPEN), Task.bucket_until.is_not(None),
               Task.bucket_until <= now).limit(limit)).all()
    if not rows:
        return 0
    facts = lead_facts(session, list({r.lead_id for r in rows}))
    placements = []
    for r in rows:
        f = facts.get(r.lead_id)
        p = queue_rules.place(callback=False, grade=f.grade if f else None,
                              probability=f.probability if f else None,
                              touched=f.touched if f else True,
                              assigned_at=f.owned_at if f else None, due_at=r.due_at,
                              now=now, attempts=r.attempt_no - 1, best=r.best_hour,
                              local_hour=local_hour(now))
        placements.append((r.id, p))
    bulk_upsert(session, Task.__table__, {  # type: ignore[arg-type]
        "id": [i for i, _ in placements], "bucket": [int(p.bucket) for _, p in placements],
        "rank": [p.rank for _, p in placements],
        "bucket_until": [p.until for _, p in placements]}, key="id", update_only=True)
    return len(placements)


def move_best_hour_boost(*, session: Session, now: datetime) -> int:
    """Once an hour: leads whose best hour to contact has come move ahead in buckets 3–4;
    those whose hour has passed fall back. Returns the tasks changed."""
    hour = local_hour(now)
    pending = task_status_is(TaskStatus.OPEN, TaskStatus.SCHEDULED)
    worked = Task.bucket >= int(queue_rules.Bucket.NEVER_CONTACTED)
    off = session.execute(update(Task).where(
        pending, worked, Task.best_hour.is_not(None), Task.best_hour != hour,
        Task.rank >= queue_rules.BOOSTED).values(rank=Task.rank - queue_rules.BEST_HOUR_BOOST))
    on = session.execute(update(Task).where(
        pending, worked, Task.best_hour == hour,
        Task.rank < queue_rules.BOOSTED).values(rank=Task.rank + queue_rules.BEST_HOUR_BOOST))
    return int((off.rowcount or 0) + (on.rowcount or 0))  # type: ignore[attr-defined]


def resume_paused(*, session: Session, now: datetime, limit: int = 1000) -> int:
    """Enrollments paused until a date that has come (out of office) resume by themselves."""
    due = list(session.scalars(
        select(Enrollment).where(Enrollment.status == EnrollmentStatus.PAUSED.value,
                                 Enrollment.paused_until <= now)
        .limit(limit).with_for_update(skip_locked=True)))
    for enrollment in due:
        resume(session=session, enrollment=enrollment, now=now)
    return len(due)


def _away_reps(session: Session, owner_ids: set[int], now: datetime) -> set[int]:
    """Owners who are away or on leave: their automatic steps wait for them."""
    if not owner_ids:
        return set()
    away = set(session.scalars(select(RepProfile.user_id).where(
        RepProfile.user_id.in_(owner_ids), RepProfile.presence == Presence.AWAY.value)))
    away |= set(session.scalars(select(RepAbsence.user_id).where(
        RepAbsence.user_id.in_(owner_ids), RepAbsence.starts_at <= now,
        RepAbsence.ends_at > now)))
    return away


def run_automatic(*, session: Session, now: datetime, limit: int = AUTOMATIC_BATCH) -> tuple[
        int, int]:
    """Run due automatic steps: each becomes an outbox message, then the cadence moves on.

    No automatic message goes out on a holiday, a weekend or outside the step's window, nor
    in the name of a rep who is away: such steps are deferred to the next allowed moment.
    Returns (steps run, steps deferred).
    """
    from leadflow.messaging import service as messaging_service

    lock_for_writing(session)
    tasks = session.execute(
        select(Task.id, Task.lead_id, Task.enrollment_id, Task.step_id, Task.channel,
               Task.owner_id, Task.attempt_no)
        .where(task_status_is(TaskStatus.SCHEDULED), Task.automatic.is_(True),
               Task.due_at <= now)
        .order_by(Task.due_at).limit(limit).with_for_update(skip_locked=True)).all()
    if not tasks:
        return 0, 0
    cal = calendar()
    steps = {s.id: s for s in session.scalars(select(CadenceStep).where(
        CadenceStep.id.in_({t.step_id for t in tasks if t.step_id is not None})))}
    away = _away_reps(session, {t.owner_id for t in tasks if t.owner_id is not None}, now)
    deferred: dict[datetime, list[int]] = defaultdict(list)
    runnable = []
    for t in tasks:
        step = steps.get(t.step_id) if t.step_id is not None else None
        if step is None:  # its step was deleted: nothing to send
            deferred[now + timedelta(days=3650)].append(t.id)
            continue
        allowed = rules.defer_to_working_time(now, step.window_start, step.window_end, cal)
        if t.owner_id in away:
            allowed = max(allowed, now + timedelta(hours=1))
        if allowed > now:
            deferred[allowed].append(t.id)
        else:
            runnable.append(t)
    for when, ids in deferred.items():
        session.execute(update(Task).where(Task.id.in_(ids)).values(due_at=when))
    if not runnable:
        return 0, sum(len(v) for v in deferred.values())
    enrollments = {e.id: e for e in session.scalars(select(Enrollment).where(
        Enrollment.id.in_({t.enrollment_id for t in runnable if t.enrollment_id})))}
    overrides = _arm_overrides(session, enrollments.values())
    drafts = []
    for t in runnable:
        step = steps[t.step_id]
        e = enrollments.get(t.enrollment_id) if t.enrollment_id else None
        subject, body = (overrides.get((e.arm_id, step.id), (None, None))
                         if e is not None and e.arm_id is not None else (None, None))
        drafts.append(messaging_service.Outgoing(
            lead_id=t.lead_id, channel=str(step.channel), subject=subject or step.subject,
            body=body or step.body, idempotency_key=f"task:{t.id}", task_id=t.id,
            enrollment_id=t.enrollment_id, arm_id=e.arm_id if e else None,
            sender_id=t.owner_id))
    messaging_service.enqueue_many(session=session, items=drafts, now=now)
    session.execute(update(Task).where(Task.id.in_([t.id for t in runnable]))
                    .values(status=TaskStatus.DONE.value, done_at=now, disposition="sent"))
    advance_many(session, [e for e in enrollments.values() if e.status in LIVE], now)
    return len(runnable), sum(len(v) for v in deferred.values())


def _arm_overrides(session: Session, enrollments: Any) -> dict[tuple[int, int], tuple[
        str | None, str | None]]:
    """Subject and body of step-template variants, by (arm, step)."""
    arms = {e.arm_id for e in enrollments if e.arm_id is not None}
    if not arms:
        return {}
    rows = session.execute(
        select(ExperimentArm.id, Experiment.step_id, ExperimentArm.subject, ExperimentArm.body)
        .join(Experiment, Experiment.id == ExperimentArm.experiment_id)
        .where(ExperimentArm.id.in_(arms), Experiment.step_id.is_not(None)))
    return {(arm, step): (subject, body) for arm, step, subject, body in rows
            if step is not None}


def advance_many(session: Session, enrollments: list[Enrollment], now: datetime,
                 done_at: dict[int, datetime] | None = None) -> None:
    """Schedule the next step of many enrollments whose current step was done — at ``now``,
    or at ``done_at[enrollment id]`` when given."""
    if not enrollments:
        return
    cadence_ids = {e.cadence_id for e in enrollments}
    by_cadence: dict[int, list[CadenceStep]] = defaultdict(list)
    for s in session.scalars(select(CadenceStep).where(CadenceStep.cadence_id.in_(cadence_ids))
                             .order_by(CadenceStep.position)):
        by_cadence[s.cadence_id].append(s)
    facts = lead_facts(session, [e.lead_id for e in enrollments])
    cal = calendar()
    tasks, moved, finished = [], [], []
    for e in enrollments:
        steps = by_cadence.get(e.cadence_id, [])
        current = next((s for s in steps if s.position == e.next_position), None)
        following = next((s for s in steps if s.position > e.next_position), None)
        if following is None:
            finished.append(e.lead_id)
            continue
        moved.append((e.id, following.position))
        previous = (done_at or {}).get(e.id, now)
        tasks.append(_step_task(following, e.id, e.lead_id, e.owner_id, facts.get(e.lead_id),
                                previous, current.day_offset if current else 0,
                                e.attempt_budget, e.attempts, now, cal))
    if moved:
        bulk_upsert(session, Enrollment.__table__, {  # type: ignore[arg-type]
            "id": [m[0] for m in moved], "next_position": [m[1] for m in moved],
            "updated_at": [now] * len(moved)}, key="id", update_only=True)
    bulk_insert(session, Task.__table__, tasks)  # type: ignore[arg-type]
    if finished:
        _end_live(session, finished, ExitReason.COMPLETED, now, EnrollmentStatus.COMPLETED)
        bulk_insert(session, Activity.__table__, [  # type: ignore[arg-type]
            {"lead_id": lead_id, "kind": ActivityKind.CADENCE_ENDED.value, "occurred_at": now,
             "actor_id": None, "summary": "cadence completed", "detail": {}}
            for lead_id in finished])


# --- a returning rep --------------------------------------------------------------------------


def plan_catch_up(*, session: Session, user_id: int, now: datetime,
                  per_day: int | None = None) -> rules.CatchUpPlan:
    """Spread a returning rep's overdue tasks over the coming working days.

    The best ``per_day`` stay due today; the rest are due at the start of later working days,
    in queue order. ``per_day`` defaults to the rep's daily capacity (else 40).
    """
    if per_day is None:
        capacity = session.scalar(select(RepProfile.capacity).where(
            RepProfile.user_id == user_id))
        per_day = sum(capacity.values()) if capacity else 40
    overdue = session.execute(
        select(Task.id, Task.bucket, Task.rank).where(
            Task.owner_id == user_id, Task.automatic.is_(False),
            Task.status.in_((TaskStatus.OPEN.value, TaskStatus.SCHEDULED.value)),
            Task.due_at <= now)).all()
    cal = calendar()
    plan = rules.catch_up_plan([rules.Backlog(r.id, r.bucket, r.rank) for r in overdue],
                               per_day=per_day, today=now.astimezone(
                                   ZoneInfo(cal.timezone)).date(), calendar=cal)
    for day, ids in plan.later.items():
        start = rules.defer_to_working_time(
            datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(cal.timezone)),
            9 * 60, 18 * 60, cal)
        session.execute(update(Task).where(Task.id.in_(ids))
                        .values(due_at=start, status=TaskStatus.SCHEDULED.value))
    if plan.later:
        user = session.get(User, user_id)
        lead_id = session.scalar(select(Task.lead_id).where(Task.id.in_(plan.today or [0])))
        if user is not None and lead_id is not None:
            moved = sum(len(v) for v in plan.later.values())
            session.add(Activity(lead_id=lead_id, kind=ActivityKind.NOTE, occurred_at=now,
                                 actor_id=user_id, summary=f"catch-up plan for {user.name}: "
                                 f"{len(plan.today)} today, {moved} spread over "
                                 f"{len(plan.later)} working days"))
    session.flush()
    return plan


# --- the worker's pass --------------------------------------------------------------------------


def sweep(*, now: datetime) -> CadenceSweep:
    """One pass of every cadence job, each in its own transaction."""
    done = CadenceSweep()
    with session_scope() as session:
        done.resumed = resume_paused(session=session, now=now)
    with session_scope() as session:
        done.released = release_stale_claims(session=session, now=now)
    with session_scope() as session:
        done.rebucketed = refresh_buckets(session=session, now=now)
        done.rebucketed += move_best_hour_boost(session=session, now=now)
    with session_scope() as session:
        done.opened = release_due(session=session, now=now)
    while True:
        with session_scope() as session:
            sent, deferred = run_automatic(session=session, now=now)
        done.sent += sent
        done.deferred += deferred
        if sent + deferred == 0 or sent < AUTOMATIC_BATCH // 2:
            return done

