"""The safety invariants of routing, counted from the database (CLI, tests, benchmarks).

Each count must be zero: a lead is never left without an owner or a pool, never has two
open ownerships, its owner column always agrees with its open ownership, and no rep ever
holds more leads of a grade on one day than their capacity allows.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow.leads.models import Lead
from leadflow.routing import service
from leadflow.routing.models import Ownership, RepDayLoad, RepProfile, TeamPolicy
from leadflow.users.models import User


def over_capacity(*, session: Session) -> list[dict[str, object]]:
    """Rep-days on which a grade's routed leads exceed the rep's capacity for it."""
    policies = {p.team_id: p.capacity for p in session.scalars(select(TeamPolicy))}
    profiles = {p.user_id: p.capacity for p in session.scalars(select(RepProfile))}
    teams: dict[int, int | None] = {
        uid: team for uid, team in session.execute(select(User.id, User.team_id))}
    found = []
    for user_id, day, grade, n in session.execute(
        select(RepDayLoad.user_id, RepDayLoad.day, RepDayLoad.grade, RepDayLoad.assigned)
    ):
        capacity = {**policies.get(teams.get(user_id) or 0, {}), **profiles.get(user_id, {})}
        if grade in capacity and n > capacity[grade]:
            found.append({"user_id": user_id, "day": day.isoformat(), "grade": grade,
                          "assigned": n, "capacity": capacity[grade]})
    return found


def check(*, session: Session) -> dict[str, int]:
    """Counts of every invariant violation (all zero when routing is sound)."""
    double_open = session.scalar(select(func.count()).select_from(
        select(Ownership.lead_id).where(Ownership.ended_at.is_(None))
        .group_by(Ownership.lead_id).having(func.count() > 1).subquery())) or 0
    owner_mismatch = session.scalar(
        select(func.count()).select_from(Ownership).join(Lead, Lead.id == Ownership.lead_id)
        .where(Ownership.ended_at.is_(None),
               func.coalesce(Ownership.user_id, 0) != func.coalesce(Lead.owner_id, 0))) or 0
    return {
        "unowned": service.unassigned_leads(session=session),
        "double_open": int(double_open),
        "owner_mismatch": int(owner_mismatch),
        "over_capacity": len(over_capacity(session=session)),
    }
