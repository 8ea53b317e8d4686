"""The demo organisation's cadences and nurture programs, and a realistic queue for today.

The brief's presets are installed before the last weeks are routed, so every lead given to
a rep enrolls in a cadence and every lead returned to nurture joins a program. Afterwards each
rep's backlog is spread by the catch-up planner (a day's work today, the rest on the coming
working days) and one worker pass opens due tasks and puts due automatic emails in the outbox.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from leadflow.cadences import jobs as cadence_jobs
from leadflow.cadences import service as cadences_service
from leadflow.cadences.models import Enrollment, Task, TaskKind, TaskStatus
from leadflow.cadences.service import LIVE
from leadflow.db import session_scope
from leadflow.leads.models import Lead
from leadflow.users.models import Role, User

# (preset, overrides): automatic enrollment by grade, most specific first.
CADENCES: tuple[tuple[str, dict[str, object]], ...] = (
    ("7in7", {"auto_enroll": True, "grades": ["A+", "A"], "priority": 10}),
    ("9in18", {"auto_enroll": True, "grades": ["B"], "priority": 20}),
    ("persistent6", {"auto_enroll": True, "priority": 30}),
    ("18in35", {}),
    ("nurture_warm", {}),
    ("nurture_cold", {}),
)
REP_DAY = 40


def configure(*, now: datetime) -> int:
    """Install the presets; returns how many cadences there are."""
    with session_scope() as session:
        for key, overrides in CADENCES:
            cadences_service.install_preset(session=session, key=key, actor_id=None, now=now,
                                            **overrides)  # type: ignore[arg-type]
        return len(CADENCES)


def _first_touches_done(now: datetime) -> int:
    """The first calls the demo's reps made (see demo.routing) complete their cadence's first
    step, alternately connected and not answered; each cadence moves on from that call, so
    later steps fall due over the past days and today, whatever the hour of the demo."""
    with session_scope() as session:
        rows = session.execute(
            select(Task.id, Task.enrollment_id, Lead.first_touch_at)
            .join(Lead, Lead.id == Task.lead_id)
            .where(Task.status.in_((TaskStatus.OPEN.value, TaskStatus.SCHEDULED.value)),
                   Task.automatic.is_(False), Task.kind == TaskKind.STEP.value,
                   Lead.first_touch_at.is_not(None), Task.created_at <= Lead.first_touch_at)
        ).all()
        if not rows:
            return 0
        session.execute(update(Task), [
            {"id": task_id, "status": TaskStatus.DONE.value, "done_at": touched,
             "disposition": "connected" if task_id % 2 else "no_answer"}
            for task_id, _e, touched in rows])
        ids = [e for _t, e, _at in rows if e is not None]
        touched_at = {e: at for _t, e, at in rows if e is not None and at is not None}
        session.execute(update(Enrollment).where(Enrollment.id.in_(ids))
                        .values(attempts=Enrollment.attempts + 1))
        enrollments = list(session.scalars(select(Enrollment).where(
            Enrollment.id.in_(ids), Enrollment.status.in_(LIVE))))
        cadence_jobs.advance_many(session, enrollments, now, done_at=touched_at)
        return len(rows)


def plan_today(*, now: datetime) -> dict[str, int]:
    """Complete the first touches, spread every rep's backlog, then run one cadence pass."""
    worked = _first_touches_done(now)
    moved = 0
    with session_scope() as session:
        reps = list(session.scalars(select(User.id).where(
            User.role.in_((Role.REP, Role.PRESALES)), User.is_active)))
    for rep_id in reps:
        with session_scope() as session:
            plan = cadence_jobs.plan_catch_up(session=session, user_id=rep_id, now=now,
                                              per_day=REP_DAY)
            moved += sum(len(v) for v in plan.later.values())
    swept = cadence_jobs.sweep(now=now)
    return {"first_steps_done": worked, "spread": moved, "opened": swept.opened,
            "emails_queued": swept.sent}
