"""What the routing pages show: the capacity board, pools and their leads, the triage queue,
SLA breaches, notices and a lead's ownership card.

Pure reads: nothing here locks, creates or changes a row. Team policies are read without
``FOR UPDATE`` (a team without one shows the defaults) and the system pools are looked up by
kind, never created, so a page never takes a write lock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from leadflow.errors import NotFound
from leadflow.leads.models import Activity, ActivityKind, Lead, LeadStatus
from leadflow.routing import rules
from leadflow.routing import service as routing_service
from leadflow.routing.models import (
    AwayPolicy,
    LeadPool,
    Notice,
    Ownership,
    PoolKind,
    Presence,
    RepAbsence,
    RepProfile,
    SlaBreach,
    Strategy,
    TeamPolicy,
)
from leadflow.routing.schemas import RepProfileIn
from leadflow.routing.service import OwnedMatch
from leadflow.scoring.models import LeadScore
from leadflow.users.models import Role, Team, User
from leadflow.users.rules import Permission, has_permission

# Who can be handed a lead on a page: the roles routing assigns to, and team leads, who
# work leads too.
TRANSFER_ROLES = (*routing_service.TAKING_ROLES, Role.TEAM_LEAD)


def _names(session: Session, model: Any, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(model.id, model.name).where(model.id.in_(wanted)))
    return {row_id: name for row_id, name in rows}


# --- teams and the capacity board ---------------------------------------------------------


def teams(*, session: Session, team_id: int | None = None) -> list[Team]:
    """Every team by name, or only ``team_id``."""
    stmt = select(Team).order_by(Team.name)
    if team_id is not None:
        stmt = stmt.where(Team.id == team_id)
    return list(session.scalars(stmt))


def _default_policy(team_id: int, now: datetime) -> TeamPolicy:
    """The policy a team without a stored one routes by (never added to the session)."""
    return TeamPolicy(team_id=team_id, strategy=Strategy.ROUND_ROBIN, capacity={},
                      sla_minutes={}, pool_id=None, away_policy=AwayPolicy.REASSIGN_HOT,
                      virtual_pass=0.0, updated_at=now)


def team_policies(*, session: Session, team_ids: Sequence[int], now: datetime
                  ) -> dict[int, TeamPolicy]:
    """The policies of ``team_ids`` as stored, unlocked; defaults for teams without one."""
    found = {p.team_id: p for p in session.scalars(
        select(TeamPolicy).where(TeamPolicy.team_id.in_(team_ids)))}
    return {t: found.get(t) or _default_policy(t, now) for t in team_ids}


@dataclass(frozen=True, slots=True)
class RepRow:
    """One rep on the capacity board."""

    user_id: int
    name: str
    presence: Presence
    # Why the rep gets no new lead now (None: available): routing.rules.unavailable_reason.
    unavailable: str | None
    # Today's public holiday in the rep's calendar, if any.
    holiday: str | None
    today: dict[str, int]
    capacity: dict[str, int]
    open_leads: int
    max_open: int | None
    weight: float
    languages: tuple[str, ...]
    product_lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TeamBoard:
    """One team on the capacity board: its policy, its pool and its reps."""

    team: Team
    policy: TeamPolicy
    pool_name: str | None
    reps: list[RepRow]


def capacity_board(*, session: Session, now: datetime, team_id: int | None = None
                   ) -> list[TeamBoard]:
    """Each team (or only ``team_id``) with its policy and, per rep, presence, availability
    now, today's leads per grade against capacity and open leads against the maximum.

    The reps' state comes from ``routing.service.load_teams``, the view the router itself
    chooses by, so the board shows exactly what routing would see at ``now``.
    """
    team_rows = teams(session=session, team_id=team_id)
    policies = team_policies(session=session, team_ids=[t.id for t in team_rows], now=now)
    loaded = routing_service.load_teams(session=session, policies=policies, now=now)
    rep_ids = [r.user_id for team in loaded.values() for r in team.state.reps]
    profiles = {p.user_id: p for p in session.scalars(
        select(RepProfile).where(RepProfile.user_id.in_(rep_ids)))}
    # Counted here: load_teams counts open leads only where the chooser reads them.
    open_leads = {owner_id: n for owner_id, n in session.execute(
        select(Lead.owner_id, func.count())
        .where(Lead.owner_id.in_(rep_ids), Lead.status.in_(routing_service.OPEN))
        .group_by(Lead.owner_id))}
    pool_names = _names(session, LeadPool, (p.pool_id for p in policies.values()))
    boards = []
    for team in team_rows:
        state = loaded[team.id]
        reps = []
        for rep in state.state.reps:
            profile = profiles.get(rep.user_id)
            calendar = profile.holiday_calendar if profile else "CN"
            day = rules.local_day(now, state.timezones[rep.user_id])
            reps.append(RepRow(
                user_id=rep.user_id, name=rep.name,
                presence=profile.presence if profile else Presence.AVAILABLE,
                unavailable=rep.unavailable, holiday=rules.holiday_name(day, calendar),
                today=dict(rep.today), capacity=dict(rep.capacity),
                open_leads=int(open_leads.get(rep.user_id, 0)), max_open=rep.max_open,
                weight=rep.weight,
                languages=rep.languages, product_lines=rep.product_lines,
            ))
        policy = policies[team.id]
        boards.append(TeamBoard(team, policy, pool_names.get(policy.pool_id or 0), reps))
    return boards


@dataclass(frozen=True, slots=True)
class RepDetail:
    """A rep's routing profile (the stored one or the defaults) and their absences."""

    user: User
    profile: RepProfileIn
    absences: list[RepAbsence]


def rep_detail(*, session: Session, user_id: int, now: datetime) -> RepDetail:
    """What the rep page edits: the profile, and absences that have not ended."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    stored = session.get(RepProfile, user_id)
    profile = RepProfileIn.model_validate(stored, from_attributes=True) if stored \
        else RepProfileIn()
    absences = list(session.scalars(
        select(RepAbsence).where(RepAbsence.user_id == user_id, RepAbsence.ends_at > now)
        .order_by(RepAbsence.starts_at)))
    return RepDetail(user, profile, absences)


def presence_of(*, session: Session, user_id: int) -> Presence:
    """A rep's presence switch (available until they first change it)."""
    presence = session.scalar(select(RepProfile.presence).where(RepProfile.user_id == user_id))
    return Presence(presence) if presence else Presence.AVAILABLE


# --- pools --------------------------------------------------------------------------------


def visible_pools(user: User) -> Select[LeadPool]:
    """Pools ``user`` may see: routing managers all; others their team's and org-wide
    pools; the triage pool only to those who reroute from it."""
    stmt = select(LeadPool)
    if has_permission(user.role, Permission.ROUTING_MANAGE):
        return stmt
    stmt = stmt.where(or_(LeadPool.team_id.is_(None), LeadPool.team_id == user.team_id))
    if not has_permission(user.role, Permission.ROUTING_TEAM):
        stmt = stmt.where(LeadPool.kind != PoolKind.TRIAGE)
    return stmt


@dataclass(frozen=True, slots=True)
class PoolRow:
    """A pool on the pool list: its policy, its team and how many leads wait in it."""

    pool: LeadPool
    team_name: str | None
    leads: int


def pool_rows(*, session: Session, user: User) -> list[PoolRow]:
    """The pools ``user`` may see, by name, with their unowned-lead counts."""
    pools = list(session.scalars(visible_pools(user).order_by(LeadPool.name)))
    counts = {pool_id: n for pool_id, n in session.execute(
        select(Lead.pool_id, func.count())
        .where(Lead.pool_id.in_([p.id for p in pools]), Lead.owner_id.is_(None))
        .group_by(Lead.pool_id))}
    team_names = _names(session, Team, (p.team_id for p in pools))
    return [PoolRow(p, team_names.get(p.team_id or 0), int(counts.get(p.id, 0)))
            for p in pools]


def pool_names(*, session: Session) -> dict[int, str]:
    """Every pool's name by id (rule targets name pools of any team)."""
    return {pool_id: name for pool_id, name in session.execute(
        select(LeadPool.id, LeadPool.name))}


def visible_pool(*, session: Session, user: User, pool_id: int) -> LeadPool:
    """One pool ``user`` may see, else not found."""
    pool = session.scalar(visible_pools(user).where(LeadPool.id == pool_id))
    if pool is None:
        raise NotFound(f"pool {pool_id} not found")
    return pool


@dataclass(frozen=True, slots=True)
class PoolLead:
    """A lead waiting in a pool, as anyone who may claim it sees it: the phone masked."""

    lead_id: int
    name: str | None
    company: str | None
    phone_masked: str | None
    grade: str | None
    recycle_count: int
    since: datetime | None
    # Owned leads with the same phone, email or company (撞单).
    conflicts: list[OwnedMatch]


@dataclass(frozen=True, slots=True)
class PoolPage:
    """One page of a pool's leads."""

    items: list[PoolLead]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """Number of pages."""
        return max(1, -(-self.total // self.per_page))


def owned_matches(*, session: Session, keys: Sequence[Any]) -> dict[int, list[OwnedMatch]]:
    """撞单 for many leads at once: for each row of ``keys`` (``id``, ``phone``, ``email``,
    ``company_key``, already normalised as stored), the owned leads sharing one of them.

    The batched form of ``routing.service.ownership_conflicts``: one query per key kind
    for a whole page instead of three per lead.
    """
    found: dict[int, list[OwnedMatch]] = defaultdict(list)
    seen: set[tuple[int, int]] = set()
    for label, column, attr in (("phone", Lead.phone, "phone"), ("email", Lead.email, "email"),
                                ("company", Lead.company_key, "company_key")):
        wanted: dict[str, list[int]] = defaultdict(list)
        for row in keys:
            if getattr(row, attr):
                wanted[getattr(row, attr)].append(row.id)
        if not wanted:
            continue
        owned = session.execute(
            select(column, Lead.id, User.name, Team.name)
            .join(User, User.id == Lead.owner_id).outerjoin(Team, Team.id == User.team_id)
            .where(column.in_(list(wanted)), Lead.owner_id.is_not(None),
                   Lead.status != LeadStatus.MERGED)
            .order_by(Lead.id))
        for value, owned_id, owner, team in owned:
            for lead_id in wanted[str(value)]:
                if owned_id != lead_id and (lead_id, owned_id) not in seen:
                    seen.add((lead_id, owned_id))
                    found[lead_id].append(OwnedMatch(owned_id, owner, team, label))
    return found


def pool_leads(*, session: Session, pool_id: int, page: int = 1, per_page: int = 50
               ) -> PoolPage:
    """A page of the unowned leads in a pool, newest arrivals first, phones masked."""
    page = max(1, page)
    where = and_(Lead.pool_id == pool_id, Lead.owner_id.is_(None),
                 Lead.status != LeadStatus.MERGED)
    total = session.scalar(select(func.count()).select_from(Lead).where(where)) or 0
    rows = session.execute(
        select(Lead.id, Lead.name, Lead.company, Lead.phone, Lead.email, Lead.company_key,
               Lead.recycle_count, LeadScore.grade, Ownership.started_at)
        .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
        .outerjoin(Ownership, and_(Ownership.lead_id == Lead.id, Ownership.ended_at.is_(None)))
        .where(where)
        .order_by(Ownership.started_at.desc(), Lead.id.desc())
        .offset((page - 1) * per_page).limit(per_page)
    ).all()
    conflicts = owned_matches(session=session, keys=rows)
    items = [PoolLead(r.id, r.name, r.company, rules.mask_phone(r.phone), r.grade,
                      r.recycle_count, r.started_at, conflicts.get(r.id, []))
             for r in rows]
    return PoolPage(items, total, page, per_page)


# --- triage, SLA breaches, notices --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TriageRow:
    """A lead waiting for a lead manager: rejected by its owner, or matched by no rule."""

    lead_id: int
    name: str | None
    company: str | None
    grade: str | None
    team_name: str | None
    # Who rejected it (None: it came here from routing) and why, in their words or the
    # router's reason.
    rejected_by: str | None
    why: str
    since: datetime


def triage_queue(*, session: Session, team_id: int | None = None, limit: int = 200
                 ) -> list[TriageRow]:
    """Leads in triage pools, longest waiting first (only ``team_id``'s when given).

    The rejection shown is the latest one since the lead entered triage, so an old
    rejection of a lead that came back for another reason is not blamed.
    """
    stmt = (select(Lead.id, Lead.name, Lead.company, LeadScore.grade, Team.name.label("team"),
                   Ownership.reason, Ownership.started_at)
            .join(LeadPool, LeadPool.id == Lead.pool_id)
            .join(Ownership, and_(Ownership.lead_id == Lead.id, Ownership.ended_at.is_(None)))
            .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
            .outerjoin(Team, Team.id == Lead.team_id)
            .where(LeadPool.kind == PoolKind.TRIAGE, Lead.owner_id.is_(None),
                   Lead.status != LeadStatus.MERGED)
            .order_by(Ownership.started_at, Lead.id).limit(limit))
    if team_id is not None:
        stmt = stmt.where(Lead.team_id == team_id)
    rows = session.execute(stmt).all()
    rejections: dict[int, Activity] = {}
    for act in session.scalars(
        select(Activity).where(Activity.lead_id.in_([r.id for r in rows]),
                               Activity.kind == ActivityKind.REJECTED)
        .order_by(Activity.occurred_at)
    ):
        rejections[act.lead_id] = act
    actors = _names(session, User, (a.actor_id for a in rejections.values()))
    out = []
    for r in rows:
        rejected = rejections.get(r.id)
        if rejected is not None and rejected.occurred_at >= r.started_at:
            why = (rejected.detail or {}).get("why") or rejected.summary
            out.append(TriageRow(r.id, r.name, r.company, r.grade, r.team,
                                 actors.get(rejected.actor_id or 0, ""), str(why),
                                 r.started_at))
        else:
            out.append(TriageRow(r.id, r.name, r.company, r.grade, r.team, None, r.reason,
                                 r.started_at))
    return out


@dataclass(frozen=True, slots=True)
class BreachRow:
    """One SLA breach: level 1 escalated to the team lead, level 2 rerouted."""

    lead_id: int
    lead_name: str | None
    rep_name: str
    team_name: str | None
    grade: str | None
    level: int
    minutes_late: float
    breached_at: datetime


def sla_breaches(*, session: Session, team_id: int | None = None, level: int | None = None,
                 limit: int = 200) -> list[BreachRow]:
    """The latest SLA breaches, newest first, of one team and one level when given."""
    stmt = (select(SlaBreach, Lead.name, User.name, Team.name)
            .join(Lead, Lead.id == SlaBreach.lead_id)
            .join(User, User.id == SlaBreach.user_id)
            .outerjoin(Team, Team.id == SlaBreach.team_id)
            .order_by(SlaBreach.breached_at.desc(), SlaBreach.id.desc()).limit(limit))
    if team_id is not None:
        stmt = stmt.where(SlaBreach.team_id == team_id)
    if level is not None:
        stmt = stmt.where(SlaBreach.level == level)
    return [BreachRow(b.lead_id, lead_name, rep, team, b.grade, b.level, b.minutes_late,
                      b.breached_at)
            for b, lead_name, rep, team in session.execute(stmt)]


def notices(*, session: Session, user_id: int, limit: int = 200) -> list[Notice]:
    """A user's notices, newest first."""
    return list(session.scalars(select(Notice).where(Notice.user_id == user_id)
                                .order_by(Notice.created_at.desc(), Notice.id.desc())
                                .limit(limit)))


def unread_notices(*, session: Session, user_id: int) -> int:
    """How many of a user's notices are unread (one indexed count, for the nav)."""
    return session.scalar(select(func.count()).select_from(Notice).where(
        Notice.user_id == user_id, Notice.read_at.is_(None))) or 0


# --- one lead's ownership -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """Someone a lead can be transferred to."""

    id: int
    name: str
    team_name: str | None


@dataclass(frozen=True, slots=True)
class OwnershipCard:
    """Where a lead stands: owner or pool, its clocks, and who else owns the same person."""

    owner_name: str | None
    team_name: str | None
    pool: LeadPool | None
    owned_at: datetime | None
    protected_until: datetime | None
    recycle_count: int
    follow_up_on: date | None
    # The open ownership: how it began, when, and its first-touch deadline.
    kind: str | None
    reason: str | None
    since: datetime | None
    sla_due_at: datetime | None
    accepted_at: datetime | None
    # 1: the first-touch SLA was missed and escalated (2 reroutes, ending the ownership).
    breach_level: int
    conflicts: list[OwnedMatch]
    # Filled for those who may move the lead (ROUTING_TEAM): reps and teams to offer.
    transfer_to: list[Person]
    reroute_teams: list[Team]


def transfer_targets(*, session: Session, team_id: int | None = None) -> list[Person]:
    """Active people who work leads, by team and name (only ``team_id``'s when given)."""
    stmt = (select(User.id, User.name, Team.name).outerjoin(Team, Team.id == User.team_id)
            .where(User.is_active, User.role.in_(TRANSFER_ROLES))
            .order_by(Team.name, User.name))
    if team_id is not None:
        stmt = stmt.where(User.team_id == team_id)
    return [Person(i, n, t) for i, n, t in session.execute(stmt)]


def ownership_card(*, session: Session, lead: Lead, viewer: User) -> OwnershipCard:
    """A lead's ownership card as ``viewer`` sees it; a team lead is offered their own
    team's reps and team only."""
    own = session.scalar(select(Ownership).where(Ownership.lead_id == lead.id,
                                                 Ownership.ended_at.is_(None)))
    owner = session.get(User, lead.owner_id) if lead.owner_id else None
    team = session.get(Team, lead.team_id) if lead.team_id else None
    pool = session.get(LeadPool, lead.pool_id) if lead.pool_id else None
    conflicts = routing_service.ownership_conflicts(
        session=session, phone=lead.phone, email=lead.email, company=lead.company,
        exclude_lead_id=lead.id)
    people: list[Person] = []
    reroute: list[Team] = []
    if has_permission(viewer.role, Permission.ROUTING_TEAM):
        scope = None if has_permission(viewer.role, Permission.ROUTING_MANAGE) \
            else viewer.team_id or 0
        people = transfer_targets(session=session, team_id=scope)
        reroute = teams(session=session, team_id=scope)
    return OwnershipCard(
        owner_name=owner.name if owner else None, team_name=team.name if team else None,
        pool=pool, owned_at=lead.owned_at, protected_until=lead.protected_until,
        recycle_count=lead.recycle_count, follow_up_on=lead.follow_up_on,
        kind=own.kind if own else None, reason=own.reason if own else None,
        since=own.started_at if own else None, sla_due_at=own.sla_due_at if own else None,
        accepted_at=own.accepted_at if own else None,
        breach_level=own.breach_level if own else 0, conflicts=conflicts,
        transfer_to=people, reroute_teams=reroute,
    )
