"""Periodic routing work: route every due lead, SLA checks, recycling, away reps.

The checks take a session and flush like services (tests drive them on a frozen clock);
:func:`sweep` runs each in its own transaction, claiming rows with ``SKIP LOCKED``.

Each chunk runs in its own transaction, so a crash loses at most the chunk in flight, which
is still due (its ``route_due_at`` is only cleared by the commit that routes it): re-running
resumes without loss or duplicates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from leadflow.db import lock_for_writing, session_scope
from leadflow.leads.models import Activity, ActivityKind, Lead, LeadStatus
from leadflow.routing import rules, service
from leadflow.routing.models import (
    EndReason,
    LeadPool,
    NoticeKind,
    Ownership,
    OwnershipKind,
    PoolKind,
    Presence,
    RepAbsence,
    RepProfile,
    SlaBreach,
    TeamPolicy,
)
from leadflow.routing.service import (
    DEFAULT_PROTECTION,
    ROUTABLE,
    Change,
    RouteSummary,
    apply_changes,
    notify,
    protection_of,
    system_pool,
    team_leads,
    team_pool,
)
from leadflow.scoring.models import LeadScore
from leadflow.users.models import User


def due_count(*, now: datetime) -> int:
    """Leads due for routing at ``now``."""
    with session_scope() as session:
        return session.scalar(
            select(func.count()).select_from(Lead).where(Lead.route_due_at <= now)) or 0


def route_all_due(
    *, now: datetime, chunk: int = service.ROUTE_CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> RouteSummary:
    """Route every lead due at ``now``, chunk by chunk; ``progress(done, total)`` after each
    chunk."""
    total = RouteSummary()
    expected = due_count(now=now) if progress else 0
    while True:
        with session_scope() as session:
            summary = service.route_due(session=session, now=now, limit=chunk)
        total.add(summary)
        if progress is not None:
            progress(total.leads, max(expected, total.leads))
        if summary.leads == 0:
            return total


def sweep(*, now: datetime) -> SweepSummary:
    """One pass of every periodic routing check, each in its own transaction, then route what
    they made due."""
    total = SweepSummary()
    steps: tuple[Callable[..., SweepSummary], ...] = (check_sla, recycle, reassign_away)
    for step in steps:
        with session_scope() as session:
            done = step(session=session, now=now)
        total.escalated += done.escalated
        total.sla_rerouted += done.sla_rerouted
        total.warned += done.warned
        total.recycled += done.recycled
        total.away_rerouted += done.away_rerouted
    total.routed = route_all_due(now=now)
    return total


# --- sweeps: SLA, recycling, away ---------------------------------------------------------


@dataclass(slots=True)
class SweepSummary:
    """What one pass of the periodic checks did."""

    escalated: int = 0
    sla_rerouted: int = 0
    warned: int = 0
    recycled: int = 0
    away_rerouted: int = 0
    routed: RouteSummary = field(default_factory=RouteSummary)

    def as_dict(self) -> dict[str, Any]:
        """The summary as the CLI's JSON."""
        return {"escalated": self.escalated, "sla_rerouted": self.sla_rerouted,
                "warned": self.warned, "recycled": self.recycled,
                "away_rerouted": self.away_rerouted, "routed": self.routed.as_dict()}


def _team_pool(session: Session, team_id: int | None, now: datetime) -> LeadPool:
    return (team_pool(session=session, team_id=team_id)
            or system_pool(session=session, kind=PoolKind.PUBLIC, now=now))


def check_sla(*, session: Session, now: datetime, limit: int = 1000) -> SweepSummary:
    """Escalate untouched leads past their SLA to the team lead; reroute at the second breach.

    Rerouted leads wait in their team's pool with ``route_due_at`` now (never ownerless) and
    the router will not give them back to the rep who missed the SLA.
    """
    summary = SweepSummary()
    stmt = (select(Ownership, TeamPolicy.sla_minutes, User.name)
            .join(TeamPolicy, TeamPolicy.team_id == Ownership.team_id)
            .join(User, User.id == Ownership.user_id)
            .where(Ownership.ended_at.is_(None), Ownership.accepted_at.is_(None),
                   Ownership.sla_due_at <= now, Ownership.breach_level < 2)
            .order_by(Ownership.sla_due_at).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=Ownership, skip_locked=True)
    else:
        lock_for_writing(session)
    reroute: list[Change] = []
    for own, sla_minutes, rep_name in session.execute(stmt).all():
        minutes = sla_minutes.get(own.grade or "") or 60
        assert own.sla_due_at is not None
        level = rules.sla_level(own.sla_due_at, minutes, now)
        if level <= own.breach_level:
            continue
        late = (now - own.sla_due_at).total_seconds() / 60
        session.add(SlaBreach(ownership_id=own.id, lead_id=own.lead_id, user_id=own.user_id,
                              team_id=own.team_id, level=level, grade=own.grade,
                              minutes_late=round(late, 1), breached_at=now))
        session.add(Activity(
            lead_id=own.lead_id, kind=ActivityKind.SLA_BREACHED, occurred_at=now,
            summary=f"SLA breach {level}: {rep_name} has not touched the {own.grade} lead "
                    f"{late:.0f} min after the deadline",
            detail={"level": level, "user_id": own.user_id, "minutes_late": round(late, 1)}))
        own.breach_level = level
        if level == 1:
            notify(session, team_leads(session=session, team_id=own.team_id), own.lead_id,
                    NoticeKind.SLA_ESCALATION,
                    f"{rep_name} missed the first-touch SLA on lead {own.lead_id} "
                    f"({own.grade}, {late:.0f} min late)", now, level=1)
            summary.escalated += 1
            continue
        pool = _team_pool(session, own.team_id, now)
        reroute.append(Change(
            lead_id=own.lead_id, kind=OwnershipKind.POOLED, user_id=None,
            team_id=own.team_id, pool_id=pool.id, status=LeadStatus.NEW,
            activity=ActivityKind.POOLED,
            reason=f"second SLA breach by {rep_name}: rerouting", grade=own.grade,
            end_reason=EndReason.SLA_REROUTED, route_due_at=now))
        summary.sla_rerouted += 1
    session.flush()
    apply_changes(session=session, changes=reroute, now=now, actor_id=None)
    return summary


def _owned_rows(session: Session, where: Any, limit: int) -> list[Any]:
    stmt = (select(Lead.id, Lead.owner_id, Lead.team_id, Lead.protected_until, User.name,
                   LeadScore.grade)
            .join(User, User.id == Lead.owner_id)
            .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
            .where(Lead.owner_id.is_not(None), Lead.status.in_(ROUTABLE), where)
            .order_by(Lead.protected_until).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=Lead, skip_locked=True)
    else:
        lock_for_writing(session)
    return list(session.execute(stmt).all())


def recycle(*, session: Session, now: datetime, limit: int = 5000) -> SweepSummary:
    """Warn owners before their leads' protection ends; recycle the leads whose protection
    ended without a follow-up into their team's pool (公海), counting each recycle."""
    summary = SweepSummary()
    warn_window = timedelta(days=max(
        [DEFAULT_PROTECTION.warn_days, *session.scalars(select(LeadPool.warn_days))]))
    candidates = _owned_rows(session, and_(Lead.protected_until <= now + warn_window,
                                           Lead.recycle_warned_at.is_(None)
                                           | (Lead.protected_until <= now)), limit)
    changes: list[Change] = []
    warned: list[int] = []
    pools: dict[int | None, LeadPool] = {}
    for row in candidates:
        if row.team_id not in pools:
            pools[row.team_id] = _team_pool(session, row.team_id, now)
        pool = pools[row.team_id]
        assert row.protected_until is not None
        if row.protected_until <= now:
            changes.append(Change(
                lead_id=row.id, kind=OwnershipKind.POOLED, user_id=None, team_id=row.team_id,
                pool_id=pool.id, status=LeadStatus.NEW, activity=ActivityKind.RECYCLED,
                reason=f"no follow-up by {row.name} within the protection period → "
                       f"“{pool.name}”", end_reason=EndReason.RECYCLED, grade=row.grade,
                recycled=True))
        elif rules.warn_at(row.protected_until, protection_of(pool)) <= now:
            warned.append(row.id)
            session.add(Activity(
                lead_id=row.id, kind=ActivityKind.RECYCLE_WARNED, occurred_at=now,
                summary=f"goes back to “{pool.name}” on {row.protected_until:%Y-%m-%d %H:%M} "
                        "UTC without a follow-up"))
            notify(session, [row.owner_id], row.id, NoticeKind.RECYCLE_WARNING,
                    f"Lead {row.id} goes back to “{pool.name}” on "
                    f"{row.protected_until:%Y-%m-%d} unless you follow up", now)
    if warned:
        session.execute(update(Lead).where(Lead.id.in_(warned)).values(recycle_warned_at=now))
    apply_changes(session=session, changes=changes, now=now, actor_id=None)
    summary.recycled = len(changes)
    summary.warned = len(warned)
    return summary


def reassign_away(*, session: Session, now: datetime, limit: int = 1000) -> SweepSummary:
    """Hot leads not yet touched by a rep who is away or on leave go back through routing,
    where the team's policy says so."""
    summary = SweepSummary()
    away_users = select(RepProfile.user_id).where(RepProfile.presence != Presence.AVAILABLE)
    on_leave = select(RepAbsence.user_id).where(RepAbsence.starts_at <= now,
                                                RepAbsence.ends_at > now)
    rows = session.execute(
        select(Ownership.lead_id, Ownership.team_id, Ownership.grade, User.name)
        .join(User, User.id == Ownership.user_id)
        .join(TeamPolicy, TeamPolicy.team_id == Ownership.team_id)
        .where(Ownership.ended_at.is_(None), Ownership.accepted_at.is_(None),
               Ownership.grade.in_(rules.HOT_GRADES),
               TeamPolicy.away_policy == "reassign_hot",
               or_(Ownership.user_id.in_(away_users), Ownership.user_id.in_(on_leave)))
        .limit(limit)
    ).all()
    if not rows:
        return summary
    lock_for_writing(session)
    changes = []
    for lead_id, team_id, grade, name in rows:
        pool = _team_pool(session, team_id, now)
        changes.append(Change(
            lead_id=lead_id, kind=OwnershipKind.POOLED, user_id=None, team_id=team_id,
            pool_id=pool.id, status=LeadStatus.NEW, activity=ActivityKind.POOLED,
            reason=f"{name} is away: the {grade} lead goes to a colleague", grade=grade,
            end_reason=EndReason.AWAY, route_due_at=now))
    apply_changes(session=session, changes=changes, now=now, actor_id=None)
    summary.away_rerouted = len(changes)
    return summary
