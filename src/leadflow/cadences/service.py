"""Cadences at work: enrolling leads, turning steps into tasks, recording dispositions,
reacting to replies, out-of-office answers and engagement.

Every enrollment has at most one pending task: the task of its current step
(``Enrollment.next_position``). Doing it schedules the next step; pausing cancels it and
resuming schedules it again from the day of return, so a pause never leaves a pile of
overdue tasks behind.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from leadflow.cadences import experiments, rules
from leadflow.cadences.models import (
    Cadence,
    CadenceStep,
    Channel,
    Enrollment,
    EnrollmentStatus,
    ExitReason,
    Experiment,
    ExperimentArm,
    Purpose,
    Task,
    TaskKind,
    TaskStatus,
)
from leadflow.cadences.presets import PRESETS_BY_KEY
from leadflow.cadences.schemas import CadenceIn, DispositionIn
from leadflow.config import get_settings
from leadflow.db import bulk_insert, lock_for_writing
from leadflow.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from leadflow.leads.models import Activity, ActivityKind, Lead, LeadStatus
from leadflow.queue import rules as queue_rules
from leadflow.routing.models import LeadPool, PoolKind
from leadflow.scoring.models import LeadScore
from leadflow.users.models import Role, User

LIVE = (EnrollmentStatus.ACTIVE.value, EnrollmentStatus.PAUSED.value)
PENDING = (TaskStatus.SCHEDULED.value, TaskStatus.OPEN.value, TaskStatus.CLAIMED.value)
_rng = random.SystemRandom()
# The kind of touch a task's channel is, for the lead's timeline and the SLA clock.
TOUCH_OF_CHANNEL = {
    Channel.CALL: ActivityKind.CALL_LOGGED, Channel.VOICEMAIL: ActivityKind.CALL_LOGGED,
    Channel.GHOST_CALL: ActivityKind.CALL_LOGGED, Channel.EMAIL: ActivityKind.EMAIL_SENT,
    Channel.SMS: ActivityKind.MESSAGE_SENT, Channel.WECHAT: ActivityKind.MESSAGE_SENT,
    Channel.SOCIAL: ActivityKind.MESSAGE_SENT,
}
MANAGING_ROLES = (Role.ADMIN, Role.MANAGER, Role.TEAM_LEAD)


def calendar() -> rules.Calendar:
    """The organisation's scheduling calendar (time zone and public holidays)."""
    return rules.Calendar(timezone=get_settings().default_timezone, holidays="CN")


# --- cadences --------------------------------------------------------------------------------


def list_cadences(*, session: Session, purpose: Purpose | None = None) -> list[Cadence]:
    """Every cadence (or nurture program), by purpose then name."""
    stmt = select(Cadence).order_by(Cadence.purpose, Cadence.priority, Cadence.name)
    if purpose is not None:
        stmt = stmt.where(Cadence.purpose == purpose)
    return list(session.scalars(stmt))


def steps_of(*, session: Session, cadence_id: int) -> list[CadenceStep]:
    """A cadence's steps in order."""
    return list(session.scalars(select(CadenceStep).where(CadenceStep.cadence_id == cadence_id)
                                .order_by(CadenceStep.position)))


def get_cadence(*, session: Session, cadence_id: int) -> Cadence:
    """One cadence, or NotFound."""
    cadence = session.get(Cadence, cadence_id)
    if cadence is None:
        raise NotFound(f"cadence {cadence_id} not found")
    return cadence


def save_cadence(*, session: Session, data: CadenceIn, actor_id: int | None, now: datetime,
                 cadence_id: int | None = None, preset: str | None = None) -> Cadence:
    """Create or replace a cadence and its steps.

    Steps are replaced as a whole; enrollments keep their position, so a lead on step 3
    continues with the new step 3.
    """
    taken = session.scalar(select(Cadence.id).where(Cadence.name == data.name))
    if taken is not None and taken != cadence_id:
        raise InvalidInput(f"a cadence named “{data.name}” exists", field="name")
    if cadence_id is None:
        cadence = Cadence(created_at=now, created_by_id=actor_id, preset=preset)
        session.add(cadence)
    else:
        cadence = get_cadence(session=session, cadence_id=cadence_id)
    cadence.name = data.name
    cadence.purpose = data.purpose
    cadence.description = data.description
    cadence.is_active = data.is_active
    cadence.auto_enroll = data.auto_enroll
    cadence.conditions = {"grades": data.grades, "team_ids": data.team_ids,
                          "product_lines": data.product_lines}
    cadence.priority = data.priority
    cadence.attempt_budget = data.attempt_budget
    cadence.exit_on = [e.value for e in data.exit_on]
    cadence.out_of_office_days = data.out_of_office_days
    cadence.pool_id = data.pool_id
    cadence.maturity = data.maturity
    cadence.topic = data.topic or None
    cadence.updated_at = now
    session.flush()
    # Pending tasks point at the old steps; detach them before the steps are replaced.
    old = [s.id for s in steps_of(session=session, cadence_id=cadence.id)]
    if old:
        session.execute(update(Task).where(Task.step_id.in_(old)).values(step_id=None))
        for old_step in session.scalars(select(CadenceStep).where(CadenceStep.id.in_(old))):
            session.delete(old_step)
        session.flush()
    for position, step in enumerate(data.steps, start=1):
        session.add(CadenceStep(cadence_id=cadence.id, position=position,
                                **step.model_dump()))
    session.flush()
    return cadence


def install_preset(*, session: Session, key: str, actor_id: int | None, now: datetime,
                   name: str | None = None, **overrides: Any) -> Cadence:
    """Create a cadence from one of the brief's presets (see ``presets.PRESETS``)."""
    preset = PRESETS_BY_KEY.get(key)
    if preset is None:
        raise NotFound(f"no preset {key!r}; presets: {sorted(PRESETS_BY_KEY)}")
    data = CadenceIn(
        name=name or preset.name, purpose=preset.purpose, description=preset.description,
        maturity=preset.maturity,
        steps=[{"day_offset": s.day, "window_start": s.window[0], "window_end": s.window[1],
                "channel": s.channel, "automatic": s.automatic, "subject": s.subject,
                "body": s.body, "script": s.script} for s in preset.steps],
        **overrides,
    )
    return save_cadence(session=session, data=data, actor_id=actor_id, now=now, preset=key)


def _spec(c: Cadence) -> rules.CadenceSpec:
    cond = c.conditions or {}
    return rules.CadenceSpec(
        id=c.id, priority=c.priority, grades=tuple(cond.get("grades") or ()),
        team_ids=tuple(cond.get("team_ids") or ()),
        product_lines=tuple(cond.get("product_lines") or ()),
        pool_id=c.pool_id, maturity=c.maturity, topic=c.topic)


@dataclass(slots=True)
class _Catalogue:
    """The active cadences and their steps, read once per batch."""

    sales: list[rules.CadenceSpec]
    nurture: list[rules.CadenceSpec]
    cadences: dict[int, Cadence]
    steps: dict[int, list[CadenceStep]]
    # Running A/B tests by cadence, with their arms.
    ab_tests: dict[int, tuple[Experiment, list[ExperimentArm]]] = field(
        default_factory=dict)


def _catalogue(session: Session) -> _Catalogue:
    active = list(session.scalars(select(Cadence).where(Cadence.is_active)))
    steps: dict[int, list[CadenceStep]] = {c.id: [] for c in active}
    if active:
        for s in session.scalars(select(CadenceStep).where(
                CadenceStep.cadence_id.in_(list(steps))).order_by(CadenceStep.position)):
            steps[s.cadence_id].append(s)
    running = experiments.running_experiments(session=session)
    return _Catalogue(
        sales=[_spec(c) for c in active if c.purpose == Purpose.SALES and c.auto_enroll],
        nurture=[_spec(c) for c in active if c.purpose == Purpose.NURTURE],
        cadences={c.id: c for c in active}, steps=steps, ab_tests=running)


# --- enrolling -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """What enrolling and queue placement read about a lead."""

    lead_id: int
    owner_id: int | None
    team_id: int | None
    pool_id: int | None
    product_line: str | None
    grade: str | None
    probability: float | None
    touched: bool
    owned_at: datetime | None
    best_hour: int | None = None


# What says a lead is reachable at an hour: it engaged then, or answered the phone.
_RESPONSIVE = (ActivityKind.EMAIL_OPENED.value, ActivityKind.EMAIL_CLICKED.value,
               ActivityKind.WEB_VISIT.value, ActivityKind.CONTENT_READ.value,
               ActivityKind.REPLIED.value, ActivityKind.MEETING_BOOKED.value)


def lead_facts(session: Session, lead_ids: Sequence[int]) -> dict[int, LeadFacts]:
    """Facts for many leads in two queries (the second finds each one's best hour)."""
    if not lead_ids:
        return {}
    rows = session.execute(
        select(Lead.id, Lead.owner_id, Lead.team_id, Lead.pool_id, Lead.product_interest,
               LeadScore.grade, LeadScore.probability, Lead.first_touch_at, Lead.owned_at)
        .outerjoin(LeadScore, LeadScore.lead_id == Lead.id).where(Lead.id.in_(lead_ids)))
    hours = _best_hours(session, lead_ids)
    return {r[0]: LeadFacts(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] is not None, r[8],
                            hours.get(r[0])) for r in rows}


def _best_hours(session: Session, lead_ids: Sequence[int]) -> dict[int, int]:
    """Each lead's best local hour to contact, from its responses (see queue.rules)."""
    zone = ZoneInfo(calendar().timezone)
    connected = and_(Activity.kind == ActivityKind.CALL_LOGGED.value,
                     Activity.detail["disposition"].as_string() == "connected")
    by_lead: dict[int, list[int]] = defaultdict(list)
    for lead_id, at in session.execute(
            select(Activity.lead_id, Activity.occurred_at).where(
                Activity.lead_id.in_(lead_ids),
                or_(Activity.kind.in_(_RESPONSIVE), connected))):
        by_lead[lead_id].append(at.astimezone(zone).hour)
    found = {lead: queue_rules.best_hour(h) for lead, h in by_lead.items()}
    return {lead: hour for lead, hour in found.items() if hour is not None}


def local_hour(now: datetime) -> int:
    """The hour of ``now`` on the organisation's clock."""
    return now.astimezone(ZoneInfo(calendar().timezone)).hour


@dataclass(frozen=True, slots=True)
class _Start:
    lead_id: int
    cadence_id: int
    owner_id: int | None
    experiment_id: int | None = None
    arm_id: int | None = None


def follow_ownership(*, session: Session, moves: Sequence[tuple[int, int | None, int | None,
                                                               bool]],
                     now: datetime, actor_id: int | None = None,
                     had_owner: Iterable[int] | None = None) -> int:
    """Keep cadences in step with ownership; called by routing for every ownership change.

    ``moves`` holds (lead_id, new owner, new pool, is_transfer). A transfer keeps the
    enrollment and hands its tasks to the new owner. Any other change ends the live
    enrollment and cancels its tasks; then a lead given to a rep enrolls in the first
    matching automatic sales cadence, and a lead put in a nurture pool in the fitting
    nurture program. Set-based: the batch router calls this with thousands of moves.
    ``had_owner`` narrows the ending to the leads that had an owner or pool (a brand-new
    lead has no enrollment to end). Returns the number of new enrollments.
    """
    if not moves:
        return 0
    transfers = [(lead, owner) for lead, owner, _pool, is_transfer in moves
                 if is_transfer and owner is not None]
    by_owner: dict[int, list[int]] = defaultdict(list)
    for moved_id, new_owner in transfers:
        by_owner[new_owner].append(moved_id)
    for new_owner, moved in by_owner.items():
        session.execute(update(Task).where(Task.lead_id.in_(moved), Task.status.in_(PENDING))
                        .values(owner_id=new_owner, status=_unclaimed(), claimed_by_id=None))
        session.execute(update(Enrollment).where(Enrollment.lead_id.in_(moved),
                                                 Enrollment.status.in_(LIVE))
                        .values(owner_id=new_owner, updated_at=now))
    restart = [m for m in moves if not (m[3] and m[1] is not None)]
    if not restart:
        return 0
    ids = [m[0] for m in restart]
    ending = ids if had_owner is None else sorted(set(ids) & set(had_owner))
    if ending:
        _end_live(session, ending, ExitReason.OWNER_CHANGED, now)
    catalogue = _catalogue(session)
    if not catalogue.sales and not catalogue.nurture:
        return 0
    facts = lead_facts(session, ids)
    nurture_pools = _nurture_pool_ids(session, {m[2] for m in restart if m[2] is not None})
    starts: list[_Start] = []
    for lead_id, owner, pool, _t in restart:
        f = facts.get(lead_id)
        if f is None:
            continue
        enroll_facts = rules.EnrollFacts(f.grade, f.team_id, f.product_line, pool)
        if owner is not None:
            spec = rules.choose_cadence(catalogue.sales, enroll_facts)
        elif pool in nurture_pools:
            spec = rules.choose_program(catalogue.nurture, enroll_facts)
        else:
            spec = None
        if spec is not None:
            starts.append(_start_for(catalogue, lead_id, spec.id, owner))
    return start_enrollments(session=session, starts=starts, facts=facts,
                             catalogue=catalogue, now=now, actor_id=actor_id)


def _unclaimed() -> Any:
    """Claimed tasks of a transferred lead go back to the queue of their new owner."""
    return case((Task.status == TaskStatus.CLAIMED.value, TaskStatus.OPEN.value),
                else_=Task.status)


def _nurture_pool_ids(session: Session, pool_ids: set[int]) -> set[int]:
    if not pool_ids:
        return set()
    return set(session.scalars(select(LeadPool.id).where(
        LeadPool.id.in_(pool_ids), LeadPool.kind == PoolKind.NURTURE.value)))


def _start_for(catalogue: _Catalogue, lead_id: int, cadence_id: int,
               owner: int | None) -> _Start:
    tested = catalogue.ab_tests.get(cadence_id)
    if tested is None:
        return _Start(lead_id, cadence_id, owner)
    choice = experiments.draw_arm(*tested, _rng)
    return _Start(lead_id, choice.cadence_id, owner, choice.experiment_id, choice.arm_id)


def _end_live(session: Session, lead_ids: Sequence[int], reason: ExitReason, now: datetime,
              status: EnrollmentStatus = EnrollmentStatus.EXITED) -> None:
    """End the leads' live enrollments and cancel their pending tasks."""
    session.execute(update(Enrollment).where(Enrollment.lead_id.in_(lead_ids),
                                             Enrollment.status.in_(LIVE))
                    .values(status=status.value, exit_reason=reason.value, ended_at=now,
                            updated_at=now))
    session.execute(update(Task).where(Task.lead_id.in_(lead_ids), Task.status.in_(PENDING))
                    .values(status=TaskStatus.CANCELLED.value, done_at=now))


def start_enrollments(*, session: Session, starts: Sequence[_Start],
                      facts: dict[int, LeadFacts], catalogue: _Catalogue, now: datetime,
                      actor_id: int | None) -> int:
    """Insert enrollments and the task of each one's first step."""
    starts = [s for s in starts if catalogue.steps.get(s.cadence_id)]
    if not starts:
        return 0
    rows = [{"lead_id": s.lead_id, "cadence_id": s.cadence_id, "owner_id": s.owner_id,
             "experiment_id": s.experiment_id, "arm_id": s.arm_id,
             "status": EnrollmentStatus.ACTIVE.value, "next_position": 1, "attempts": 0,
             "attempt_budget": catalogue.cadences[s.cadence_id].attempt_budget,
             "started_at": now, "updated_at": now} for s in starts]
    ids = session.execute(insert(Enrollment).returning(Enrollment.id, Enrollment.lead_id,
                                                       sort_by_parameter_order=True),
                          rows).all()
    tasks = []
    cal = calendar()
    for (enrollment_id, _lead), s in zip(ids, starts, strict=True):
        step = catalogue.steps[s.cadence_id][0]
        tasks.append(_step_task(step, enrollment_id, s.lead_id, s.owner_id, facts.get(s.lead_id),
                                now, 0, catalogue.cadences[s.cadence_id].attempt_budget,
                                0, now, cal, at_once=not step.automatic))
    bulk_insert(session, Task.__table__, tasks)  # type: ignore[arg-type]
    names = {c.id: c.name for c in catalogue.cadences.values()}
    bulk_insert(session, Activity.__table__, [  # type: ignore[arg-type]
        {"lead_id": s.lead_id, "kind": ActivityKind.ENROLLED.value, "occurred_at": now,
         "actor_id": actor_id, "summary": f"enrolled in “{names.get(s.cadence_id, '?')}”"
         + (f" (variant {s.arm_id})" if s.arm_id else ""),
         "detail": {"cadence_id": s.cadence_id, "arm_id": s.arm_id}}
        for s in starts])
    return len(starts)


def _step_task(step: CadenceStep, enrollment_id: int, lead_id: int, owner_id: int | None,
               facts: LeadFacts | None, previous_at: datetime, previous_offset: int,
               budget: int, attempts: int, now: datetime, cal: rules.Calendar,
               at_once: bool = False) -> dict[str, Any]:
    """The task row of ``step``, due by the cadence's timing."""
    due, window_end = rules.step_due(
        previous_at, previous_offset,
        rules.StepTiming(step.day_offset, step.window_start, step.window_end), cal,
        at_once=at_once)
    return _task_row(lead_id=lead_id, owner_id=owner_id, enrollment_id=enrollment_id,
                     step_id=step.id, kind=TaskKind.STEP, channel=step.channel,
                     automatic=step.automatic, due_at=due, window_end_at=window_end,
                     facts=facts, attempts=attempts, budget=budget, now=now)


def _task_row(*, lead_id: int, owner_id: int | None, enrollment_id: int | None,
              step_id: int | None, kind: TaskKind | str, channel: Channel | str, automatic: bool,
              due_at: datetime, facts: LeadFacts | None, attempts: int, budget: int,
              now: datetime, window_end_at: datetime | None = None, engaged: bool = False,
              note: str = "") -> dict[str, Any]:
    placement = queue_rules.place(
        callback=str(kind) == TaskKind.CALLBACK, grade=facts.grade if facts else None,
        probability=facts.probability if facts else None,
        touched=facts.touched if facts else False,
        assigned_at=facts.owned_at if facts else None, due_at=due_at, now=now,
        attempts=attempts, budget=budget, engaged=engaged,
        best=facts.best_hour if facts else None, local_hour=local_hour(now))
    # Manual tasks due now go straight into the queue; the rest wait for the worker.
    status = TaskStatus.OPEN if not automatic and due_at <= now else TaskStatus.SCHEDULED
    return {"lead_id": lead_id, "owner_id": owner_id, "enrollment_id": enrollment_id,
            "step_id": step_id, "kind": str(kind), "channel": str(channel),
            "automatic": automatic, "status": status.value, "due_at": due_at,
            "window_end_at": window_end_at, "bucket": int(placement.bucket),
            "rank": placement.rank, "bucket_until": placement.until,
            "best_hour": facts.best_hour if facts else None,
            "attempt_no": attempts + 1, "note": note, "claimed_by_id": None,
            "claimed_at": None, "done_at": None, "disposition": None, "skips": 0,
            "created_at": now}


def enroll(*, session: Session, lead_id: int, cadence_id: int, user: User,
           now: datetime) -> Enrollment:
    """Put a lead in a cadence by hand (its owner, or a lead's manager)."""
    lock_for_writing(session)
    lead = session.get(Lead, lead_id)
    if lead is None or lead.status == LeadStatus.MERGED:
        raise NotFound(f"lead {lead_id} not found")
    if lead.owner_id != user.id and user.role not in MANAGING_ROLES:
        raise PermissionDenied("enroll your own leads")
    cadence = get_cadence(session=session, cadence_id=cadence_id)
    if not cadence.is_active:
        raise InvalidInput("this cadence is switched off", field="cadence_id")
    _end_live(session, [lead_id], ExitReason.MANUAL, now)
    catalogue = _catalogue(session)
    start = _start_for(catalogue, lead_id, cadence_id, lead.owner_id)
    start_enrollments(session=session, starts=[start], facts=lead_facts(session, [lead_id]),
                      catalogue=catalogue, now=now, actor_id=user.id)
    enrollment = live_enrollment(session=session, lead_id=lead_id)
    assert enrollment is not None
    return enrollment


def live_enrollment(*, session: Session, lead_id: int) -> Enrollment | None:
    """The lead's active or paused enrollment, if any."""
    return session.scalar(select(Enrollment).where(Enrollment.lead_id == lead_id,
                                                   Enrollment.status.in_(LIVE)))


def end_enrollment(*, session: Session, lead_id: int, reason: ExitReason, now: datetime,
                   actor_id: int | None, note: str = "") -> bool:
    """End the lead's live enrollment with ``reason``; False when it had none."""
    enrollment = live_enrollment(session=session, lead_id=lead_id)
    if enrollment is None:
        return False
    status = (EnrollmentStatus.COMPLETED if reason == ExitReason.COMPLETED
              else EnrollmentStatus.EXITED)
    _end_live(session, [lead_id], reason, now, status)
    session.add(Activity(lead_id=lead_id, kind=ActivityKind.CADENCE_ENDED, occurred_at=now,
                         actor_id=actor_id, summary=f"cadence ended: {reason.value}"
                         + (f" ({note})" if note else ""),
                         detail={"enrollment_id": enrollment.id, "reason": reason.value}))
    return True


# --- doing tasks -------------------------------------------------------------------------------


def _lock_task(session: Session, task_id: int) -> Task:
    lock_for_writing(session)
    task = session.scalar(select(Task).where(Task.id == task_id).with_for_update()
                          .execution_options(populate_existing=True))
    if task is None:
        raise NotFound(f"task {task_id} not found")
    return task


def _check_worker(task: Task, user: User) -> None:
    if task.owner_id != user.id and task.claimed_by_id != user.id:
        raise PermissionDenied("this task is someone else's")
    if task.status not in (TaskStatus.OPEN, TaskStatus.CLAIMED, TaskStatus.SCHEDULED):
        raise DomainError(f"this task is already {task.status}")


@dataclass(frozen=True, slots=True)
class DispositionResult:
    """What recording a disposition did."""

    task_id: int
    why: str
    next_task_id: int | None
    exit_reason: str | None


def record_disposition(*, session: Session, task_id: int, user: User, data: DispositionIn,
                       now: datetime) -> DispositionResult:
    """Record what happened on a task and move the cadence on.

    The touch goes on the timeline (accepting the lead and stopping the speed-to-lead
    clock), outcomes that say something about interest feed scoring, and the cadence
    retries, waits for a callback, ends, or schedules its next step.
    """
    from leadflow.routing import service as routing_service

    task = _lock_task(session, task_id)
    _check_worker(task, user)
    enrollment = session.get(Enrollment, task.enrollment_id) if task.enrollment_id else None
    budget = enrollment.attempt_budget if enrollment else 6
    attempts = enrollment.attempts if enrollment else 0
    outcome = rules.disposition_outcome(data.disposition, Channel(task.channel),
                                        attempts=attempts, budget=budget, now=now,
                                        callback_at=data.callback_at)
    task.status = TaskStatus.DONE
    task.done_at = now
    task.disposition = data.disposition.value
    task.note = data.note.strip()
    summary = f"{task.channel}: {outcome.why}" + (f" — {task.note}" if task.note else "")
    lead = session.get(Lead, task.lead_id)
    assert lead is not None
    kind = TOUCH_OF_CHANNEL[Channel(task.channel)]
    if lead.owner_id == user.id:
        touch = routing_service.record_touch(session=session, lead_id=lead.id, user=user,
                                             kind=kind, summary=summary, now=now)
    else:
        touch = Activity(lead_id=lead.id, kind=kind, occurred_at=now, actor_id=user.id,
                         summary=summary)
        session.add(touch)
    # The outcome stays on the touch: answered calls tell the lead's best hour to call.
    touch.detail = {"disposition": data.disposition.value, "task_id": task.id}
    if enrollment is not None:
        enrollment.attempts += 1 if outcome.counts_attempt else 0
        if outcome.contacted and enrollment.contacted_at is None:
            enrollment.contacted_at = now
        if outcome.exit == ExitReason.MEETING_BOOKED:
            enrollment.meeting_at = enrollment.meeting_at or now
        if outcome.exit == ExitReason.QUALIFIED:
            enrollment.converted_at = enrollment.converted_at or now
        enrollment.updated_at = now
    session.flush()
    if outcome.scoring_kind is not None:
        _score_event(session, lead, outcome.scoring_kind, summary, user.id, now)
    next_id = _after_disposition(session, task, enrollment, lead, outcome, user, now)
    return DispositionResult(task.id, outcome.why, next_id,
                             outcome.exit.value if outcome.exit else None)


def _score_event(session: Session, lead: Lead, kind: str, summary: str, actor_id: int | None,
                 now: datetime) -> None:
    from leadflow.scoring import service as scoring_service
    from leadflow.scoring.schemas import ActivityIn

    scoring_service.record_activity(session=session, lead=lead, now=now, actor_id=actor_id,
                                    activity=ActivityIn(kind=kind, summary=summary))


def _after_disposition(session: Session, task: Task, enrollment: Enrollment | None,
                       lead: Lead, outcome: rules.Outcome, user: User,
                       now: datetime) -> int | None:
    from leadflow.routing import service as routing_service

    facts = lead_facts(session, [lead.id]).get(lead.id)
    budget = enrollment.attempt_budget if enrollment else 6
    attempts = enrollment.attempts if enrollment else 0
    if outcome.exit is not None:
        end_enrollment(session=session, lead_id=lead.id, reason=outcome.exit, now=now,
                       actor_id=user.id)
        if outcome.exit == ExitReason.QUALIFIED:
            lead.status = LeadStatus.QUALIFIED
        elif outcome.exit == ExitReason.DISQUALIFIED:
            lead.status = LeadStatus.DISQUALIFIED
        elif outcome.exit in (ExitReason.UNREACHABLE, ExitReason.NOT_INTERESTED) \
                and lead.owner_id == user.id:
            # Not now is not never: the lead goes to nurture with a date to look again.
            routing_service.return_lead(
                session=session, lead_id=lead.id, user=user, reason=outcome.why,
                follow_up_on=(now + timedelta(days=90)).date(), now=now)
        lead.updated_at = now
        session.flush()
        return None
    if outcome.retry_at is not None or outcome.callback_at is not None:
        callback = outcome.callback_at is not None
        due = outcome.callback_at or outcome.retry_at
        assert due is not None
        row = _task_row(lead_id=lead.id, owner_id=task.owner_id, step_id=task.step_id,
                        enrollment_id=task.enrollment_id,
                        kind=TaskKind.CALLBACK if callback else task.kind,
                        channel=Channel.CALL if callback else task.channel, automatic=False,
                        due_at=due, facts=facts, attempts=attempts, budget=budget, now=now,
                        engaged=not callback, note=outcome.why)
        # A callback or retry stands in for the step: doing it moves the cadence on.
        return _insert_task(session, row)
    if enrollment is None:
        return None
    return advance(session=session, enrollment=enrollment, done_at=now, now=now, facts=facts)


def _insert_task(session: Session, row: dict[str, Any]) -> int:
    return int(session.execute(insert(Task).returning(Task.id), row).scalar_one())


def advance(*, session: Session, enrollment: Enrollment, done_at: datetime, now: datetime,
            facts: LeadFacts | None = None) -> int | None:
    """Schedule the enrollment's next step after its current one was done at ``done_at``.

    Past the last step the enrollment completes. Returns the new task's id.
    """
    steps = steps_of(session=session, cadence_id=enrollment.cadence_id)
    current = next((s for s in steps if s.position == enrollment.next_position), None)
    following = next((s for s in steps if s.position > enrollment.next_position), None)
    if following is None:
        end_enrollment(session=session, lead_id=enrollment.lead_id,
                       reason=ExitReason.COMPLETED, now=now, actor_id=None)
        return None
    enrollment.next_position = following.position
    enrollment.updated_at = now
    facts = facts or lead_facts(session, [enrollment.lead_id]).get(enrollment.lead_id)
    row = _step_task(following, enrollment.id, enrollment.lead_id, enrollment.owner_id, facts,
                     done_at, current.day_offset if current else 0, enrollment.attempt_budget,
                     enrollment.attempts, now, calendar())
    return _insert_task(session, row)


def skip_task(*, session: Session, task_id: int, user: User, reason: str,
              now: datetime) -> Task:
    """Put a task back for an hour, with the reason on the lead's timeline for the team lead
    to read: reps cannot quietly cherry-pick the queue."""
    task = _lock_task(session, task_id)
    _check_worker(task, user)
    if len(reason.strip()) < 3:
        raise InvalidInput("say why you skip this task", field="reason")
    task.status = TaskStatus.SCHEDULED
    task.claimed_by_id = None
    task.claimed_at = None
    task.skips += 1
    task.due_at = now + timedelta(hours=1)
    session.add(Activity(lead_id=task.lead_id, kind=ActivityKind.TASK_SKIPPED, occurred_at=now,
                         actor_id=user.id, summary=f"{task.channel} task skipped: "
                         f"{reason.strip()}", detail={"task_id": task.id,
                                                       "skips": task.skips}))
    session.flush()
    return task


# --- signals from the lead ------------------------------------------------------------------


def on_signal(*, session: Session, lead_id: int, signal: ExitReason, now: datetime,
              until: datetime | None = None) -> None:
    """A reply, unsubscribe, bounce, meeting or out-of-office answer reached the lead's
    enrollment.

    Out of office pauses until ``until`` (or the cadence's default) and is never a reply.
    The cadence's exit conditions (the default set when none are chosen) end it. A reply
    puts a "reply received" task at the front of the owner's queue.
    """
    enrollment = live_enrollment(session=session, lead_id=lead_id)
    if signal == ExitReason.OUT_OF_OFFICE:
        if enrollment is not None:
            cadence = session.get(Cadence, enrollment.cadence_id)
            days = cadence.out_of_office_days if cadence else 7
            pause(session=session, enrollment=enrollment, reason=signal,
                  until=until or now + timedelta(days=days), now=now)
        return
    if enrollment is not None:
        stamp = {ExitReason.REPLIED: "replied_at", ExitReason.MEETING_BOOKED: "meeting_at",
                 ExitReason.QUALIFIED: "converted_at"}.get(signal)
        if stamp and getattr(enrollment, stamp) is None:
            setattr(enrollment, stamp, now)
        cadence = session.get(Cadence, enrollment.cadence_id)
        exits = set(cadence.exit_on) if cadence and cadence.exit_on else {
            e.value for e in rules.DEFAULT_EXITS}
        if signal.value in exits:
            end_enrollment(session=session, lead_id=lead_id, reason=signal, now=now,
                           actor_id=None)
    if signal == ExitReason.REPLIED:
        lead = session.get(Lead, lead_id)
        if lead is not None and lead.owner_id is not None:
            facts = lead_facts(session, [lead_id]).get(lead_id)
            _insert_task(session, _task_row(
                lead_id=lead_id, owner_id=lead.owner_id, enrollment_id=None, step_id=None,
                kind=TaskKind.MANUAL, channel=Channel.EMAIL, automatic=False, due_at=now,
                facts=facts, attempts=0, budget=6, now=now, engaged=True,
                note="reply received: answer it"))
    session.flush()


def pause(*, session: Session, enrollment: Enrollment, reason: ExitReason,
          until: datetime | None, now: datetime) -> None:
    """Pause an enrollment (until a date, or until resumed); its pending task is cancelled
    and scheduled again on resumption."""
    enrollment.status = EnrollmentStatus.PAUSED
    enrollment.paused_until = until
    enrollment.pause_reason = reason.value
    enrollment.updated_at = now
    session.execute(update(Task).where(Task.enrollment_id == enrollment.id,
                                       Task.status.in_(PENDING))
                    .values(status=TaskStatus.CANCELLED.value, done_at=now))
    until_text = f" until {until.date().isoformat()}" if until else ""
    session.add(Activity(
        lead_id=enrollment.lead_id,
        kind=ActivityKind.OUT_OF_OFFICE if reason == ExitReason.OUT_OF_OFFICE
        else ActivityKind.CADENCE_PAUSED, occurred_at=now,
        summary=f"cadence paused: {reason.value.replace('_', ' ')}{until_text}",
        detail={"enrollment_id": enrollment.id, "until": until.isoformat() if until else None}))
    session.flush()


def resume(*, session: Session, enrollment: Enrollment, now: datetime) -> int | None:
    """Resume a paused enrollment: its current step is scheduled from today."""
    enrollment.status = EnrollmentStatus.ACTIVE
    enrollment.paused_until = None
    enrollment.pause_reason = None
    enrollment.updated_at = now
    step = session.scalar(select(CadenceStep).where(
        CadenceStep.cadence_id == enrollment.cadence_id,
        CadenceStep.position >= enrollment.next_position).order_by(CadenceStep.position))
    session.add(Activity(lead_id=enrollment.lead_id, kind=ActivityKind.CADENCE_RESUMED,
                         occurred_at=now, summary="cadence resumed",
                         detail={"enrollment_id": enrollment.id}))
    if step is None:
        end_enrollment(session=session, lead_id=enrollment.lead_id,
                       reason=ExitReason.COMPLETED, now=now, actor_id=None)
        return None
    enrollment.next_position = step.position
    facts = lead_facts(session, [enrollment.lead_id]).get(enrollment.lead_id)
    # Day offset gap 0: the step is due on the day of return, in its window.
    row = _step_task(step, enrollment.id, enrollment.lead_id, enrollment.owner_id, facts, now,
                     step.day_offset, enrollment.attempt_budget, enrollment.attempts, now,
                     calendar())
    return _insert_task(session, row)


def on_engagement(*, session: Session, lead_id: int, now: datetime) -> int:
    """The lead just opened, clicked or visited: its owner's tasks for it jump forward.

    Open tasks move into the "engaged" bucket for an hour; a manual step scheduled for later
    is brought forward to now. A lead with an owner and no task gets one, so the signal is
    never lost. Returns the number of tasks moved or created.
    """
    until = now + queue_rules.ENGAGED_WINDOW
    moved = session.execute(
        update(Task).where(Task.lead_id == lead_id, Task.automatic.is_(False),
                           Task.status.in_((TaskStatus.OPEN.value,
                                            TaskStatus.SCHEDULED.value)),
                           Task.bucket > int(queue_rules.Bucket.ENGAGED))
        .values(bucket=int(queue_rules.Bucket.ENGAGED), bucket_until=until,
                status=TaskStatus.OPEN.value,
                due_at=func.min(Task.due_at, now) if _sqlite(session)
                else func.least(Task.due_at, now))
    ).rowcount  # type: ignore[attr-defined]
    if moved:
        return int(moved)
    pending = session.scalar(select(func.count()).select_from(Task).where(
        Task.lead_id == lead_id, Task.automatic.is_(False), Task.status.in_(PENDING)))
    lead = session.get(Lead, lead_id)
    if pending or lead is None or lead.owner_id is None:
        return 0
    facts = lead_facts(session, [lead_id]).get(lead_id)
    _insert_task(session, _task_row(
        lead_id=lead_id, owner_id=lead.owner_id, enrollment_id=None, step_id=None,
        kind=TaskKind.MANUAL, channel=Channel.CALL, automatic=False, due_at=now, facts=facts,
        attempts=0, budget=6, now=now, engaged=True, note="the lead is engaging: call now"))
    return 1


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def open_tasks_of(*, session: Session, lead_ids: Iterable[int]) -> list[Task]:
    """Pending tasks of some leads (for the lead page)."""
    ids = list(lead_ids)
    if not ids:
        return []
    return list(session.scalars(select(Task).where(Task.lead_id.in_(ids),
                                                   Task.status.in_(PENDING))
                                .order_by(Task.due_at)))
