"""Reading leads as a user may see them, and the timeline of one lead."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from leadflow.campaigns.models import Campaign
from leadflow.cleaning import normalise
from leadflow.errors import NotFound
from leadflow.leads.models import Activity, Lead, LeadStatus, Touchpoint
from leadflow.scoring.models import LeadScore
from leadflow.users.models import User
from leadflow.users.rules import LeadScope, lead_scope


def visible_leads(user: User, *, include_merged: bool = False) -> Select[Lead]:
    """Leads ``user`` may see: all, their team's, or their own, by role."""
    stmt = select(Lead)
    if not include_merged:
        stmt = stmt.where(Lead.status != LeadStatus.MERGED)
    scope = lead_scope(user.role)
    if scope is LeadScope.TEAM:
        team_members = select(User.id).where(User.team_id == user.team_id)
        stmt = stmt.where(or_(Lead.team_id == user.team_id, Lead.owner_id.in_(team_members)))
    elif scope is LeadScope.OWN:
        stmt = stmt.where(Lead.owner_id == user.id)
    return stmt


@dataclass(frozen=True, slots=True)
class LeadFilter:
    """What a lead list is narrowed by."""

    q: str | None = None
    status: LeadStatus | None = None
    campaign_id: int | None = None
    source: str | None = None
    owner_id: int | None = None
    grade: str | None = None


@dataclass(frozen=True, slots=True)
class LeadPage:
    """One page of a lead list."""

    items: list[Lead]
    total: int
    page: int
    per_page: int
    scores: dict[int, LeadScore]

    @property
    def pages(self) -> int:
        """Number of pages."""
        return max(1, -(-self.total // self.per_page))


def apply_filter(stmt: Select[Lead], flt: LeadFilter) -> Select[Lead]:
    """Narrow a lead query by a list's filter."""
    if flt.status:
        stmt = stmt.where(Lead.status == flt.status)
    if flt.campaign_id:
        stmt = stmt.where(Lead.campaign_id == flt.campaign_id)
    if flt.source:
        stmt = stmt.where(Lead.source == flt.source)
    if flt.owner_id:
        stmt = stmt.where(Lead.owner_id == flt.owner_id)
    if flt.grade:
        graded = select(LeadScore.lead_id).where(LeadScore.grade == flt.grade)
        stmt = stmt.where(Lead.id.in_(graded))
    if flt.q:
        q = flt.q.strip()
        like = f"%{q}%"
        # Exact contact keys use their indexes; names and companies a substring match.
        phone = normalise.phone(q).value
        email = normalise.email(q).value
        conditions: list[ColumnElement[bool]] = [Lead.name.ilike(like), Lead.company.ilike(like)]
        if phone:
            conditions.append(Lead.phone == phone)
        if email:
            conditions.append(Lead.email == email)
        if q.isdigit():
            conditions.append(Lead.id == int(q))
        stmt = stmt.where(or_(*conditions))
    return stmt


def list_leads(
    *, session: Session, user: User, flt: LeadFilter, page: int = 1, per_page: int = 50
) -> LeadPage:
    """A page of leads visible to ``user``, newest first."""
    page = max(1, page)
    per_page = min(max(1, per_page), 500)
    stmt = apply_filter(visible_leads(user), flt)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = list(
        session.scalars(
            stmt.order_by(Lead.id.desc()).offset((page - 1) * per_page).limit(per_page)
        )
    )
    scores = {s.lead_id: s for s in session.scalars(
        select(LeadScore).where(LeadScore.lead_id.in_([lead.id for lead in items])))}
    return LeadPage(items, total, page, per_page, scores)


def get_lead(*, session: Session, user: User, lead_id: int) -> Lead:
    """One lead visible to ``user`` (merged leads too, so old links still resolve)."""
    lead = session.scalar(visible_leads(user, include_merged=True).where(Lead.id == lead_id))
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    return lead


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of a lead's timeline: a captured record or an activity."""

    at: datetime
    kind: str
    summary: str
    detail: dict[str, Any]


def timeline(*, session: Session, lead_id: int, limit: int = 200) -> list[TimelineEntry]:
    """Touchpoints and activities of a lead, newest first."""
    entries: list[TimelineEntry] = []
    rows = session.execute(
        select(Touchpoint, Campaign.name)
        .outerjoin(Campaign, Campaign.id == Touchpoint.campaign_id)
        .where(Touchpoint.lead_id == lead_id)
        .order_by(Touchpoint.received_at.desc())
        .limit(limit)
    )
    for tp, campaign_name in rows:
        detail = {k: v for k, v in tp.payload.items() if k != "raw"}
        where = f" ({campaign_name})" if campaign_name else ""
        entries.append(
            TimelineEntry(tp.received_at, "captured", f"{tp.source}/{tp.external_id}{where}",
                          detail)
        )
    for act in session.scalars(
        select(Activity)
        .where(Activity.lead_id == lead_id)
        .order_by(Activity.occurred_at.desc())
        .limit(limit)
    ):
        entries.append(TimelineEntry(act.occurred_at, act.kind, act.summary, act.detail))
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


def touchpoints(*, session: Session, lead_id: int) -> list[Touchpoint]:
    """Every captured record of a lead, for attribution."""
    return list(
        session.scalars(
            select(Touchpoint).where(Touchpoint.lead_id == lead_id).order_by(Touchpoint.id)
        )
    )
