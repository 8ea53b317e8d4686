"""Routing services: route due leads, the one ownership-change path, pools, touches, SLAs.

Every change of a lead's owner or pool — routing, rerouting, promotion, transfer, claim,
rejection, return, recycling, SLA reroute — goes through :func:`apply_changes`, which ends
the open ownership, opens the next one, restarts the ownership clock and protection period,
and writes the timeline entry. A partial unique index allows one open ownership per lead.

Concurrency: routers claim due leads with ``FOR UPDATE SKIP LOCKED`` (so two never route the
same lead) and lock the policies of the teams they assign into, in id order, before reading
the reps' loads (so two never over-fill a rep). On SQLite writers run one at a time.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, cast, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from leadflow.cadences import service as cadences_service
from leadflow.campaigns.models import Campaign
from leadflow.cleaning import normalise
from leadflow.db import bulk_insert, bulk_upsert, lock_for_writing
from leadflow.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from leadflow.leads.models import TOUCH_KINDS, Activity, ActivityKind, Lead, LeadStatus
from leadflow.routing import rules
from leadflow.routing.models import (
    EndReason,
    LeadPool,
    Notice,
    NoticeKind,
    Ownership,
    OwnershipKind,
    PoolKind,
    Presence,
    RepAbsence,
    RepDayLoad,
    RepPass,
    RepProfile,
    RoutingRule,
    Strategy,
    TeamPolicy,
)
from leadflow.routing.rules import Protection, RepState, RouteFacts, RuleSpec, TeamState
from leadflow.routing.schemas import (
    AbsenceIn,
    PoolIn,
    RepProfileIn,
    RuleConditions,
    RuleIn,
    TeamPolicyIn,
)
from leadflow.scoring.models import LeadScore
from leadflow.scoring.schemas import Grade
from leadflow.users.models import Role, Team, TeamKind, User
from leadflow.users.rules import Permission, has_permission

# Leads a router can (re)route; qualified and closed leads keep their owner.
ROUTABLE = (LeadStatus.NEW, LeadStatus.NURTURING, LeadStatus.ASSIGNED, LeadStatus.WORKING)
# A rep's open load: leads assigned to them and not yet qualified or closed.
OPEN = (LeadStatus.ASSIGNED, LeadStatus.WORKING)
# Roles that receive leads.
TAKING_ROLES = (Role.REP, Role.PRESALES)
DEFAULT_PROTECTION = Protection(days=7, extension_days=7, max_days=30, warn_days=2)
TRIAGE_POOL = "Triage"
NURTURE_POOL = "Nurture"
PUBLIC_POOL = "Public pool"
ROUTE_CHUNK = 10_000


@dataclass(slots=True)
class Change:
    """One lead's move to a new owner or pool, as :func:`apply_changes` writes it."""

    lead_id: int
    kind: OwnershipKind
    user_id: int | None
    team_id: int | None
    pool_id: int | None
    status: LeadStatus
    activity: ActivityKind
    reason: str
    end_reason: EndReason | None = None
    grade: str | None = None
    rule_id: int | None = None
    sla_due_at: datetime | None = None
    protected_until: datetime | None = None
    route_due_at: datetime | None = None
    follow_up_on: date | None = None
    recycled: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


def apply_changes(
    *, session: Session, changes: Sequence[Change], now: datetime, actor_id: int | None,
    had_open: Iterable[int] | None = None,
) -> None:
    """Move leads to new owners or pools: the only way ownership changes.

    1. End each lead's open ownership (``had_open`` narrows this to the leads known to have
       one; the batch router knows brand-new leads have none).
    2. Open the new ownership with its reason, grade, rule and SLA deadline.
    3. Restart the clock on the lead: owner, team, pool, status, ``owned_at``, protection,
       recycle warning cleared; a recycled lead's counter goes up.
    4. Write the timeline entry.
    5. Let cadences follow (enroll, hand over or end the lead's enrollment).
    """
    if not changes:
        return
    ending = set(had_open) if had_open is not None else {c.lead_id for c in changes}
    by_reason: dict[EndReason | None, list[int]] = defaultdict(list)
    for c in changes:
        if c.lead_id in ending:
            by_reason[c.end_reason].append(c.lead_id)
    for reason, ids in by_reason.items():
        session.execute(
            update(Ownership)
            .where(Ownership.lead_id.in_(ids), Ownership.ended_at.is_(None))
            .values(ended_at=now, end_reason=reason.value if reason else None)
        )
    recycled = [c.lead_id for c in changes if c.recycled]
    if recycled:
        session.execute(update(Lead).where(Lead.id.in_(recycled))
                        .values(recycle_count=Lead.recycle_count + 1))
    if session.get_bind().dialect.name == "postgresql" and len(changes) >= _STAGED:
        _write_staged(session, changes, now, actor_id)
    else:
        _write_plain(session, changes, now, actor_id)
    # Cadences follow the lead: a new owner or nurture pool means a new enrollment.
    cadences_service.follow_ownership(
        session=session, now=now, actor_id=actor_id, had_owner=ending,
        moves=[(c.lead_id, c.user_id, c.pool_id, c.kind == OwnershipKind.TRANSFERRED)
               for c in changes])


def _write_plain(session: Session, changes: Sequence[Change], now: datetime,
                 actor_id: int | None) -> None:
    bulk_insert(session, Ownership.__table__, [  # type: ignore[arg-type]
        {"lead_id": c.lead_id, "user_id": c.user_id, "team_id": c.team_id,
         "pool_id": c.pool_id, "kind": c.kind.value, "grade": c.grade, "rule_id": c.rule_id,
         "reason": c.reason, "actor_id": actor_id, "started_at": now,
         "sla_due_at": c.sla_due_at, "accepted_at": None, "breach_level": 0,
         "ended_at": None, "end_reason": None}
        for c in changes
    ])
    bulk_upsert(session, Lead.__table__, {  # type: ignore[arg-type]
        "id": [c.lead_id for c in changes],
        "owner_id": [c.user_id for c in changes],
        "team_id": [c.team_id for c in changes],
        "pool_id": [c.pool_id for c in changes],
        "status": [c.status.value for c in changes],
        "route_due_at": [c.route_due_at for c in changes],
        "owned_at": [now if c.user_id else None for c in changes],
        "protected_until": [c.protected_until for c in changes],
        "recycle_warned_at": [None] * len(changes),
        "follow_up_on": [c.follow_up_on for c in changes],
        "updated_at": [now] * len(changes),
    }, key="id", update_only=True)
    bulk_insert(session, Activity.__table__, [  # type: ignore[arg-type]
        {"lead_id": c.lead_id, "kind": c.activity.value, "occurred_at": now,
         "actor_id": actor_id, "summary": c.reason, "detail": _detail(c)}
        for c in changes
    ])


# PostgreSQL: from this many changes on, one COPY into a staging table feeds three set-based
# statements (ownership, lead, timeline) instead of three COPYs.
_STAGED = 50
_STAGING = "routing_change"


def _detail(c: Change) -> dict[str, Any]:
    return {k: v for k, v in (("owner_id", c.user_id), ("team_id", c.team_id),
                              ("pool_id", c.pool_id), ("rule_id", c.rule_id))
            if v is not None} | c.detail


def _write_staged(session: Session, changes: Sequence[Change], now: datetime,
                  actor_id: int | None) -> None:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (lead_id int, user_id int, "
            "team_id int, pool_id int, kind text, grade text, rule_id int, reason text, "
            "sla_due_at timestamptz, status text, activity text, route_due_at timestamptz, "
            "protected_until timestamptz, follow_up_on date, detail jsonb) "
            "ON COMMIT DROP")
        cur.execute(f"TRUNCATE {_STAGING}")
        with cur.copy(f"COPY {_STAGING} FROM STDIN") as copy:
            for c in changes:
                copy.write_row((
                    c.lead_id, c.user_id, c.team_id, c.pool_id, c.kind.value, c.grade,
                    c.rule_id, c.reason, c.sla_due_at, c.status.value, c.activity.value,
                    c.route_due_at, c.protected_until, c.follow_up_on,
                    json.dumps(c.detail, ensure_ascii=False) if c.detail else "{}"))
        params = {"now": now, "actor": actor_id}
        cur.execute(
            "INSERT INTO ownership (lead_id, user_id, team_id, pool_id, kind, grade, rule_id, "
            "reason, actor_id, started_at, sla_due_at, breach_level) "
            "SELECT lead_id, user_id, team_id, pool_id, kind, grade, rule_id, reason, "
            f"%(actor)s, %(now)s, sla_due_at, 0 FROM {_STAGING}", params)
        cur.execute(
            "UPDATE lead SET owner_id = c.user_id, team_id = c.team_id, pool_id = c.pool_id, "
            "status = c.status, route_due_at = c.route_due_at, "
            "owned_at = CASE WHEN c.user_id IS NULL THEN NULL ELSE %(now)s END, "
            "protected_until = c.protected_until, recycle_warned_at = NULL, "
            f"follow_up_on = c.follow_up_on, updated_at = %(now)s FROM {_STAGING} c "
            "WHERE lead.id = c.lead_id", params)
        cur.execute(
            "INSERT INTO activity (lead_id, kind, occurred_at, actor_id, summary, detail) "
            "SELECT lead_id, activity, %(now)s, %(actor)s, reason, jsonb_strip_nulls("
            "jsonb_build_object('owner_id', user_id, 'team_id', team_id, 'pool_id', pool_id, "
            f"'rule_id', rule_id)) || detail FROM {_STAGING}", params)


# --- rules, pools, policies ---------------------------------------------------------------


def rule_spec(row: RoutingRule) -> RuleSpec:
    """The decision's view of a stored rule."""
    cond = RuleConditions.model_validate(row.conditions or {})
    return RuleSpec(
        id=row.id, name=row.name, team_id=row.team_id, pool_id=row.pool_id,
        grades=tuple(cond.grades), min_probability=cond.min_probability,
        segments=tuple(cond.segments), product_lines=tuple(cond.product_lines),
        regions=tuple(cond.regions), channels=tuple(cond.channels),
        languages=tuple(cond.languages), tags=tuple(cond.tags),
    )


def active_rules(*, session: Session) -> list[RuleSpec]:
    """The routing table in force, in order."""
    rows = session.scalars(
        select(RoutingRule).where(RoutingRule.is_active)
        .order_by(RoutingRule.position, RoutingRule.id)
    )
    return [rule_spec(r) for r in rows]


def system_pool(*, session: Session, kind: PoolKind, now: datetime) -> LeadPool:
    """The organisation-wide pool of ``kind`` (triage, nurture, public), created on first use."""
    name = {PoolKind.TRIAGE: TRIAGE_POOL, PoolKind.NURTURE: NURTURE_POOL,
            PoolKind.PUBLIC: PUBLIC_POOL}[kind]
    pool = session.scalar(select(LeadPool).where(LeadPool.name == name))
    if pool is None:
        # Insert-or-ignore: two routers may need the pool at the same moment.
        _insert_ignore(session, LeadPool.__table__, [{
            "name": name, "kind": kind.value, "claim_daily_cap": 10, "holding_cap": 50,
            "protection_days": 7, "extension_days": 7, "max_protection_days": 30,
            "warn_days": 2, "reclaim_cooldown_days": 7, "created_at": now}])
        pool = session.scalars(select(LeadPool).where(LeadPool.name == name)).one()
    return pool


def team_pool(*, session: Session, team_id: int | None) -> LeadPool | None:
    """The pool a team's policy names (where its overflow and recycled leads go), if any."""
    policy = session.get(TeamPolicy, team_id) if team_id else None
    return session.get(LeadPool, policy.pool_id) if policy and policy.pool_id else None


def protection_of(pool: LeadPool | None) -> Protection:
    """The protection policy a pool sets for the leads its team owns."""
    if pool is None:
        return DEFAULT_PROTECTION
    return Protection(pool.protection_days, pool.extension_days, pool.max_protection_days,
                      pool.warn_days)


def _insert(session: Session, table: Any) -> Any:
    """An INSERT that takes the engine's ``ON CONFLICT`` clauses."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _insert_ignore(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(_insert(session, table).on_conflict_do_nothing(), rows)


def lock_policies(*, session: Session, team_ids: Iterable[int], now: datetime
                  ) -> dict[int, TeamPolicy]:
    """The policies of ``team_ids``, created with defaults if missing, locked in id order.

    Holding these locks is what makes reading and then raising the reps' loads safe.
    """
    ids = sorted(set(team_ids))
    if not ids:
        return {}

    def locked() -> dict[int, TeamPolicy]:
        rows = session.scalars(
            select(TeamPolicy).where(TeamPolicy.team_id.in_(ids)).order_by(TeamPolicy.team_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all()
        return {p.team_id: p for p in rows}

    policies = locked()
    if len(policies) == len(ids):  # the usual case: one round trip on the webhook path
        return policies
    _insert_ignore(session, TeamPolicy.__table__, [
        {"team_id": t, "strategy": "round_robin", "capacity": {}, "sla_minutes": {},
         "away_policy": "reassign_hot", "virtual_pass": 0.0, "updated_at": now}
        for t in ids if t not in policies
    ])
    return locked()


# --- team state ---------------------------------------------------------------------------


@dataclass(slots=True)
class LoadedTeam:
    """A team's state for one routing run: the chooser's view plus what writing needs."""

    state: TeamState
    policy: TeamPolicy
    pool: LeadPool | None
    timezones: dict[int, str]
    start_pass: dict[int, tuple[float, int]]


def load_teams(
    *, session: Session, policies: dict[int, TeamPolicy], now: datetime
) -> dict[int, LoadedTeam]:
    """Reps of the teams with availability, today's loads, open loads and fairness passes.

    Five queries whatever the number of teams: reps with profiles and passes, absences now,
    today's per-grade loads, open-lead counts, pools.
    """
    team_ids = list(policies)
    reps = session.execute(
        select(User.id, User.name, User.team_id, User.timezone, RepProfile, RepPass.pass_value,
               RepPass.assigned)
        .outerjoin(RepProfile, RepProfile.user_id == User.id)
        .outerjoin(RepPass, and_(RepPass.user_id == User.id, RepPass.team_id == User.team_id))
        .where(User.team_id.in_(team_ids), User.is_active, User.role.in_(TAKING_ROLES))
        .order_by(User.id)
    ).all()
    user_ids = [r.id for r in reps]
    absences: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for uid, start, end in session.execute(
        select(RepAbsence.user_id, RepAbsence.starts_at, RepAbsence.ends_at)
        .where(RepAbsence.user_id.in_(user_ids), RepAbsence.starts_at <= now,
               RepAbsence.ends_at > now)
    ):
        absences[uid].append((start, end))
    days = {r.id: rules.local_day(now, r.timezone) for r in reps}
    today: dict[int, Counter[str]] = defaultdict(Counter)
    for uid, day, grade, n in session.execute(
        select(RepDayLoad.user_id, RepDayLoad.day, RepDayLoad.grade, RepDayLoad.assigned)
        .where(RepDayLoad.user_id.in_(user_ids), RepDayLoad.day.in_(set(days.values())))
    ):
        if days.get(uid) == day:
            today[uid][grade] = n
    # Open loads are only read by least-loaded teams and reps with an open-lead limit;
    # counting them costs a scan of the reps' leads, so only for those.
    counted = [r.id for r in reps
               if policies[r.team_id].strategy == Strategy.LEAST_LOADED
               or (r.RepProfile is not None and r.RepProfile.max_open_leads is not None)]
    open_counts = dict(session.execute(
        select(Lead.owner_id, func.count())
        .where(Lead.owner_id.in_(counted), Lead.status.in_(OPEN)).group_by(Lead.owner_id)
    ).all()) if counted else {}
    pool_ids = {p.pool_id for p in policies.values() if p.pool_id}
    pools = {p.id: p for p in session.scalars(select(LeadPool).where(LeadPool.id.in_(pool_ids)))}
    teams = {
        t: LoadedTeam(TeamState(t, p.strategy, [], p.virtual_pass), p, pools.get(p.pool_id or 0),
                      {}, {})
        for t, p in policies.items()
    }
    for r in reps:
        team = teams[r.team_id]
        profile: RepProfile | None = r.RepProfile
        hours = rules.WorkingTime(r.timezone) if profile is None else rules.WorkingTime(
            r.timezone, profile.work_start_minute, profile.work_end_minute,
            profile.holiday_calendar)
        presence = profile.presence if profile else Presence.AVAILABLE
        first_pass = float(r[5]) if r[5] is not None else team.policy.virtual_pass
        team.state.reps.append(RepState(
            user_id=r.id, name=r.name,
            weight=profile.weight if profile else 1.0,
            capacity={**team.policy.capacity, **(profile.capacity if profile else {})},
            today=today[r.id], open_leads=int(open_counts.get(r.id, 0)),
            max_open=profile.max_open_leads if profile else None,
            languages=tuple(profile.languages) if profile else (),
            product_lines=tuple(profile.product_lines) if profile else (),
            unavailable=rules.unavailable_reason(presence, hours, absences[r.id], now),
            pass_value=first_pass, assigned=r.assigned or 0,
        ))
        team.timezones[r.id] = r.timezone
        team.start_pass[r.id] = (first_pass, r.assigned or 0)
    return teams


def save_team_state(*, session: Session, teams: Iterable[LoadedTeam], now: datetime,
                    booked: Counter[tuple[int, date, str]]) -> None:
    """Write what the chooser changed: passes, virtual times, per-day loads."""
    passes = []
    for team in teams:
        team.policy.virtual_pass = team.state.virtual_pass
        for rep in team.state.reps:
            if (rep.pass_value, rep.assigned) != team.start_pass[rep.user_id]:
                passes.append({"team_id": team.state.team_id, "user_id": rep.user_id,
                               "pass_value": rep.pass_value, "assigned": rep.assigned,
                               "last_assigned_at": now})
    if passes:
        stmt = _insert(session, RepPass.__table__)
        session.execute(stmt.on_conflict_do_update(
            index_elements=["team_id", "user_id"],
            set_={"pass_value": stmt.excluded.pass_value, "assigned": stmt.excluded.assigned,
                  "last_assigned_at": stmt.excluded.last_assigned_at},
        ), passes)
    if booked:
        stmt = _insert(session, RepDayLoad.__table__)
        session.execute(stmt.on_conflict_do_update(
            index_elements=["user_id", "day", "grade"],
            set_={"assigned": RepDayLoad.__table__.c.assigned + stmt.excluded.assigned},
        ), [{"user_id": u, "day": d, "grade": g, "assigned": n}
            for (u, d, g), n in booked.items()])
    session.flush()


# --- routing ------------------------------------------------------------------------------


@dataclass(slots=True)
class RouteSummary:
    """What a routing run did."""

    leads: int = 0
    assigned: int = 0
    kept: int = 0
    pooled: int = 0
    skipped: int = 0
    by_team: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, other: RouteSummary) -> None:
        """Fold another run's counts into this one."""
        self.leads += other.leads
        self.assigned += other.assigned
        self.kept += other.kept
        self.pooled += other.pooled
        self.skipped += other.skipped
        self.by_team.update(other.by_team)
        self.seconds += other.seconds

    def as_dict(self) -> dict[str, Any]:
        """The summary as the CLI's JSON."""
        return {"leads": self.leads, "assigned": self.assigned, "kept": self.kept,
                "pooled": self.pooled, "skipped": self.skipped,
                "by_team": {str(k): v for k, v in self.by_team.items()},
                "seconds": round(self.seconds, 3)}


# Tags come as JSON text, parsed only when there are any: most leads have none, and the
# driver's per-row JSON decoding was a tenth of a batch's time.
_due_lead = select(
    Lead.id, Lead.status, Lead.owner_id, Lead.team_id, Lead.pool_id, Lead.headcount,
    Lead.product_interest, Lead.region, Lead.province, Lead.language,
    cast(Lead.tags, String).label("tags"),
    Lead.created_at, LeadScore.grade, LeadScore.probability, Campaign.channel,
    Campaign.product_line,
).outerjoin(LeadScore, LeadScore.lead_id == Lead.id).outerjoin(
    Campaign, Campaign.id == Lead.campaign_id)


def _claim_due(session: Session, now: datetime, lead_ids: Sequence[int] | None,
               limit: int) -> list[Any]:
    stmt = _due_lead.where(Lead.route_due_at <= now)
    if lead_ids is not None:
        stmt = stmt.where(Lead.id.in_(lead_ids))
    stmt = stmt.order_by(Lead.route_due_at, Lead.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=Lead, skip_locked=True)
    else:
        lock_for_writing(session)
    return list(session.execute(stmt).all())


def _facts(row: Any) -> RouteFacts:
    tags = json.loads(row.tags) if row.tags and row.tags != "[]" else ()
    return RouteFacts(
        lead_id=row.id, grade=row.grade, probability=row.probability,
        segment=rules.segment_of(row.headcount),
        product_line=row.product_interest or row.product_line,
        region=row.region or row.province, channel=row.channel, language=row.language,
        tags=tuple(tags), owner_id=row.owner_id, team_id=row.team_id, arrived_at=row.created_at,
    )


def _exclusions(session: Session, lead_ids: list[int]) -> dict[int, frozenset[int]]:
    """Reps who rejected a lead, missed its SLA or were away: not given it again."""
    out: dict[int, set[int]] = defaultdict(set)
    for lead_id, user_id in session.execute(
        select(Ownership.lead_id, Ownership.user_id).where(
            Ownership.lead_id.in_(lead_ids), Ownership.user_id.is_not(None),
            Ownership.end_reason.in_([EndReason.REJECTED, EndReason.SLA_REROUTED,
                                      EndReason.AWAY]))
    ):
        if user_id is not None:
            out[lead_id].add(user_id)
    return {k: frozenset(v) for k, v in out.items()}


def route_due(
    *, session: Session, now: datetime, lead_ids: Sequence[int] | None = None,
    limit: int = ROUTE_CHUNK, actor_id: int | None = None,
) -> RouteSummary:
    """Route the leads due for routing (all due ones, or those of ``lead_ids``), one chunk.

    1. Claim up to ``limit`` due leads, oldest first, skipping leads another router holds.
    2. Leads that are no longer routable (qualified, closed, merged) just drop out.
    3. The first matching rule names a team or a pool; no match sends the lead to triage.
    4. Lock the target teams' policies (id order), load their reps, and choose a rep per
       lead in arrival order (``routing.rules.choose_rep``): a lead already owned in the
       target team stays; nobody eligible parks the lead in the team's pool (or triage),
       where reps may claim it; a hot (A+/A) one is tried again after ``RETRY_AFTER``.
    5. Write every move through :func:`apply_changes`, then the passes and daily loads.
    """
    started = time.perf_counter()
    summary = RouteSummary()
    if lead_ids is not None and not lead_ids:
        return summary
    rows = _claim_due(session, now, lead_ids, limit)
    if not rows:
        return summary
    summary.leads = len(rows)
    routable = [r for r in rows if r.status in ROUTABLE]
    done_ids = [r.id for r in rows if r.status not in ROUTABLE]
    summary.skipped = len(done_ids)
    specs = active_rules(session=session)
    all_facts = [_facts(r) for r in routable]
    matches = dict(zip([r.id for r in routable], rules.match_rules(specs, all_facts),
                       strict=True))
    team_ids = {m.rule.team_id for m in matches.values() if m.rule and m.rule.team_id}
    policies = lock_policies(session=session, team_ids=team_ids, now=now)
    teams = load_teams(session=session, policies=policies, now=now)
    excluded = _exclusions(session, [r.id for r in routable if r.owner_id or r.pool_id])
    pool_cache: dict[int, LeadPool] = {}
    changes: list[Change] = []
    kept: list[int] = []
    booked: Counter[tuple[int, date, str]] = Counter()
    retry_at = now + rules.RETRY_AFTER
    waiting: list[int] = []
    for row, facts in zip(routable, all_facts, strict=True):
        match = matches[row.id]
        rule = match.rule
        if rule is None or rule.team_id is None:
            if row.owner_id is not None:
                # Routing again (on crossing the MQL line) never takes a lead from its rep
                # into a pool: only a team can claim it.
                kept.append(row.id)
                summary.kept += 1
                continue
            pool = _pool(session, rule.pool_id if rule else None, pool_cache, now)
            if row.pool_id == pool.id and row.owner_id is None:
                done_ids.append(row.id)
                continue
            changes.append(_to_pool(row, pool, match.reason, rule))
            summary.pooled += 1
            continue
        team = teams[rule.team_id]
        if row.owner_id is not None and any(r.user_id == row.owner_id for r in team.state.reps):
            kept.append(row.id)
            summary.kept += 1
            continue
        choice = rules.choose_rep(team.state, facts, excluded=excluded.get(row.id, frozenset()))
        if choice.user_id is None:
            # Hot leads keep being retried (speed to lead); the rest stay in the pool,
            # where reps claim them.
            retry = retry_at if facts.grade in rules.HOT_GRADES else None
            pool = team.pool or _pool(session, None, pool_cache, now)
            if row.pool_id == pool.id and row.owner_id is None:
                (waiting if retry else done_ids).append(row.id)
            else:
                change = _to_pool(row, pool, f"{match.reason}; {choice.reason}", rule)
                change.route_due_at = retry
                changes.append(change)
            summary.pooled += 1
            continue
        promoted = row.owner_id is not None or row.status == LeadStatus.NURTURING
        changes.append(_assignment(
            row, team, choice.user_id, f"{match.reason} → {choice.reason}", now, booked,
            kind=OwnershipKind.PROMOTED if promoted else (
                OwnershipKind.REROUTED if row.pool_id else OwnershipKind.ROUTED),
            end_reason=EndReason.PROMOTED if promoted else EndReason.REROUTED,
            rule_id=rule.id,
        ))
        summary.assigned += 1
        summary.by_team[rule.team_id] += 1
    had_open = [r.id for r in routable if r.owner_id is not None or r.pool_id is not None]
    apply_changes(session=session, changes=changes, now=now, actor_id=actor_id,
                  had_open=had_open)
    if kept or done_ids:
        bulk_upsert(session, Lead.__table__, {  # type: ignore[arg-type]
            "id": kept + done_ids, "route_due_at": [None] * (len(kept) + len(done_ids))},
            key="id", update_only=True)
    if waiting:
        bulk_upsert(session, Lead.__table__, {  # type: ignore[arg-type]
            "id": waiting, "route_due_at": [retry_at] * len(waiting)},
            key="id", update_only=True)
    save_team_state(session=session, teams=teams.values(), now=now, booked=booked)
    summary.seconds = time.perf_counter() - started
    return summary


def _assignment(
    row: Any, team: LoadedTeam, user_id: int, reason: str, now: datetime,
    booked: Counter[tuple[int, date, str]], *, kind: OwnershipKind, end_reason: EndReason,
    rule_id: int | None = None,
) -> Change:
    """A lead given to a rep the chooser picked: the day's load is booked, the SLA deadline
    and protection follow the team's policy and pool."""
    grade = row.grade
    if grade is not None:
        booked[(user_id, rules.local_day(now, team.timezones[user_id]), grade)] += 1
    return Change(
        lead_id=row.id, kind=kind, user_id=user_id, team_id=team.state.team_id, pool_id=None,
        status=LeadStatus.ASSIGNED, activity=ActivityKind.ASSIGNED, reason=reason,
        end_reason=end_reason, grade=grade, rule_id=rule_id,
        sla_due_at=rules.sla_due_at(row.created_at, now,
                                    team.policy.sla_minutes.get(grade or "")),
        protected_until=rules.protected_until(now, protection_of(team.pool)),
    )


def _pool(session: Session, pool_id: int | None, cache: dict[int, LeadPool],
          now: datetime) -> LeadPool:
    key = pool_id or 0
    if key not in cache:
        pool = session.get(LeadPool, pool_id) if pool_id else None
        cache[key] = pool or system_pool(session=session, kind=PoolKind.TRIAGE, now=now)
    return cache[key]


def _to_pool(row: Any, pool: LeadPool, reason: str, rule: RuleSpec | None) -> Change:
    nurture = pool.kind == PoolKind.NURTURE
    return Change(
        lead_id=row.id, kind=OwnershipKind.POOLED, user_id=None, team_id=pool.team_id,
        pool_id=pool.id, status=LeadStatus.NURTURING if nurture else LeadStatus.NEW,
        activity=ActivityKind.POOLED, reason=f"{reason} → pool “{pool.name}”",
        end_reason=EndReason.REROUTED, grade=row.grade, rule_id=rule.id if rule else None,
    )


# --- one lead: reject, return, transfer, claim, touch -------------------------------------


def _lock_lead(session: Session, lead_id: int) -> Lead:
    lock_for_writing(session)
    lead = session.scalar(
        select(Lead).where(Lead.id == lead_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    if lead is None or lead.status == LeadStatus.MERGED:
        raise NotFound(f"lead {lead_id} not found")
    return lead


def _grade(session: Session, lead_id: int) -> str | None:
    return session.scalar(select(LeadScore.grade).where(LeadScore.lead_id == lead_id))


def notify(session: Session, user_ids: Iterable[int], lead_id: int | None, kind: NoticeKind,
           text: str, now: datetime, **detail: Any) -> None:
    """Leave ``text`` in the notices of each of ``user_ids`` (once per user)."""
    for uid in set(user_ids):
        session.add(Notice(user_id=uid, lead_id=lead_id, kind=kind, text=text, detail=detail,
                           created_at=now))


def team_leads(*, session: Session, team_id: int | None) -> list[int]:
    """The team leads of ``team_id`` (managers when the team has none)."""
    ids: list[int] = []
    if team_id is not None:
        ids = list(session.scalars(select(User.id).where(
            User.team_id == team_id, User.role == Role.TEAM_LEAD, User.is_active)))
    return ids or list(session.scalars(select(User.id).where(
        User.role == Role.MANAGER, User.is_active)))


def reject_lead(*, session: Session, lead_id: int, user: User, reason: str,
                now: datetime) -> Lead:
    """The owner rejects a mismatched lead: it goes to the triage queue with the reason."""
    lead = _lock_lead(session, lead_id)
    if lead.owner_id != user.id:
        raise PermissionDenied("only the lead's owner can reject it")
    if not reason.strip():
        raise InvalidInput("say why the lead does not fit", field="reason")
    triage = system_pool(session=session, kind=PoolKind.TRIAGE, now=now)
    apply_changes(session=session, now=now, actor_id=user.id, changes=[Change(
        lead_id=lead.id, kind=OwnershipKind.POOLED, user_id=None, team_id=lead.team_id,
        pool_id=triage.id, status=LeadStatus.NEW, activity=ActivityKind.REJECTED,
        reason=f"rejected by {user.name}: {reason.strip()}", end_reason=EndReason.REJECTED,
        grade=_grade(session, lead.id), detail={"why": reason.strip()},
    )])
    notify(session, team_leads(session=session, team_id=lead.team_id), lead.id,
            NoticeKind.TRIAGE, f"{user.name} rejected lead {lead.id}: {reason.strip()}", now)
    session.flush()
    return lead


def return_lead(*, session: Session, lead_id: int, user: User, reason: str,
                follow_up_on: date | None, now: datetime) -> Lead:
    """The owner returns an immature lead to the nurture pool with a reason and a date."""
    lead = _lock_lead(session, lead_id)
    if lead.owner_id != user.id:
        raise PermissionDenied("only the lead's owner can return it")
    if not reason.strip():
        raise InvalidInput("say why the lead is not ready", field="reason")
    if follow_up_on is not None and follow_up_on < now.date():
        raise InvalidInput("the follow-up date is in the past", field="follow_up_on")
    nurture = system_pool(session=session, kind=PoolKind.NURTURE, now=now)
    apply_changes(session=session, now=now, actor_id=user.id, changes=[Change(
        lead_id=lead.id, kind=OwnershipKind.POOLED, user_id=None, team_id=lead.team_id,
        pool_id=nurture.id, status=LeadStatus.NURTURING, activity=ActivityKind.RETURNED,
        reason=f"returned by {user.name}: {reason.strip()}"
               + (f" (follow up {follow_up_on.isoformat()})" if follow_up_on else ""),
        end_reason=EndReason.RETURNED, grade=_grade(session, lead.id),
        follow_up_on=follow_up_on, detail={"why": reason.strip()},
    )])
    session.flush()
    return lead


def transfer_leads(*, session: Session, lead_ids: Sequence[int], to_user_id: int,
                   actor: User, reason: str, now: datetime) -> int:
    """Give leads to a named rep (manual or bulk transfer); the clock restarts for each."""
    target = session.get(User, to_user_id)
    if target is None or not target.is_active:
        raise NotFound(f"user {to_user_id} not found")
    lock_for_writing(session)
    policies = lock_policies(session=session, team_ids=[target.team_id] if target.team_id
                             else [], now=now)
    rows = session.execute(
        _due_lead.where(Lead.id.in_(lead_ids), Lead.status.in_(ROUTABLE))
        .order_by(Lead.id).with_for_update(of=Lead)
    ).all()
    policy = policies.get(target.team_id or 0)
    pool = team_pool(session=session, team_id=target.team_id)
    why = reason.strip() or "manual transfer"
    changes = [Change(
        lead_id=r.id, kind=OwnershipKind.TRANSFERRED, user_id=target.id,
        team_id=target.team_id, pool_id=None, status=LeadStatus.ASSIGNED,
        activity=ActivityKind.TRANSFERRED,
        reason=f"transferred to {target.name} by {actor.name}: {why}",
        end_reason=EndReason.TRANSFERRED, grade=r.grade,
        sla_due_at=rules.sla_due_at(r.created_at, now, policy.sla_minutes.get(r.grade or "")
                                    if policy else None),
        protected_until=rules.protected_until(now, protection_of(pool)),
    ) for r in rows if r.owner_id != target.id]
    apply_changes(session=session, changes=changes, now=now, actor_id=actor.id)
    return len(changes)


def reroute_lead(*, session: Session, lead_id: int, actor: User, now: datetime,
                 team_id: int | None = None) -> RouteSummary:
    """A lead manager sends a lead (from triage) through the rules again, or into a team."""
    lead = _lock_lead(session, lead_id)
    if lead.status not in ROUTABLE:
        raise Conflict(f"lead {lead_id} is {lead.status}; only open leads are rerouted")
    if team_id is None:
        lead.route_due_at = now
        session.flush()
        return route_due(session=session, now=now, lead_ids=[lead_id], actor_id=actor.id)
    policies = lock_policies(session=session, team_ids=[team_id], now=now)
    teams = load_teams(session=session, policies=policies, now=now)
    row = session.execute(_due_lead.where(Lead.id == lead_id)).one()
    facts = _facts(row)
    team = teams[team_id]
    choice = rules.choose_rep(team.state, facts,
                              excluded=_exclusions(session, [lead_id]).get(lead_id, frozenset()))
    summary = RouteSummary(leads=1)
    if choice.user_id is None:
        raise Conflict(f"nobody in the team can take the lead now: {choice.reason}")
    booked: Counter[tuple[int, date, str]] = Counter()
    apply_changes(session=session, now=now, actor_id=actor.id, changes=[_assignment(
        row, team, choice.user_id, f"rerouted by {actor.name} → {choice.reason}", now, booked,
        kind=OwnershipKind.REROUTED, end_reason=EndReason.REROUTED,
    )])
    save_team_state(session=session, teams=teams.values(), now=now, booked=booked)
    summary.assigned = 1
    summary.by_team[team_id] += 1
    return summary


@dataclass(frozen=True, slots=True)
class ClaimLimits:
    """A rep's standing against a pool's claim rules."""

    claimed_today: int
    daily_cap: int
    holding: int
    holding_cap: int


def claim_limits(*, session: Session, user: User, pool: LeadPool, now: datetime) -> ClaimLimits:
    """How many leads the rep claimed today (local day) and holds from claims."""
    day_start = datetime.combine(rules.local_day(now, user.timezone), datetime.min.time(),
                                 tzinfo=rules.WorkingTime(user.timezone).local(now).tzinfo)
    claimed = session.scalar(select(func.count()).select_from(Ownership).where(
        Ownership.user_id == user.id, Ownership.kind == OwnershipKind.CLAIMED,
        Ownership.started_at >= day_start)) or 0
    holding = session.scalar(select(func.count()).select_from(Ownership).where(
        Ownership.user_id == user.id, Ownership.kind == OwnershipKind.CLAIMED,
        Ownership.ended_at.is_(None))) or 0
    return ClaimLimits(claimed, pool.claim_daily_cap, holding, pool.holding_cap)


def claim_lead(*, session: Session, lead_id: int, user: User, now: datetime) -> Lead:
    """A rep takes a lead from a public or nurture pool, within the pool's caps.

    The rep's profile row is locked first, so two claims by one rep cannot both slip under
    a cap; the lead row is locked next, so two reps cannot claim one lead.
    """
    if user.role not in (*TAKING_ROLES, Role.TEAM_LEAD):
        raise PermissionDenied("only reps claim leads from a pool")
    lock_for_writing(session)
    ensure_profile(session=session, user_id=user.id, now=now)
    session.execute(select(RepProfile.user_id).where(RepProfile.user_id == user.id)
                    .with_for_update())
    lead = _lock_lead(session, lead_id)
    pool = session.get(LeadPool, lead.pool_id) if lead.pool_id else None
    if pool is None or lead.owner_id is not None:
        raise Conflict("the lead is not in a pool any more; someone may have claimed it")
    if pool.kind == PoolKind.TRIAGE:
        raise PermissionDenied("triage leads are rerouted by a lead manager, not claimed")
    if pool.team_id is not None and pool.team_id != user.team_id:
        raise PermissionDenied("this pool belongs to another team")
    limits = claim_limits(session=session, user=user, pool=pool, now=now)
    if limits.claimed_today >= limits.daily_cap:
        raise Conflict(f"daily claim limit reached ({limits.daily_cap})")
    if limits.holding >= limits.holding_cap:
        raise Conflict(f"you already hold {limits.holding} claimed leads "
                       f"(limit {limits.holding_cap})")
    lost_at = session.scalar(select(func.max(Ownership.ended_at)).where(
        Ownership.lead_id == lead.id, Ownership.user_id == user.id,
        Ownership.end_reason == EndReason.RECYCLED))
    if not rules.may_reclaim(lost_at, pool.reclaim_cooldown_days, now):
        raise Conflict(f"you lost this lead to the pool less than "
                       f"{pool.reclaim_cooldown_days} days ago")
    apply_changes(session=session, now=now, actor_id=user.id, changes=[Change(
        lead_id=lead.id, kind=OwnershipKind.CLAIMED, user_id=user.id, team_id=user.team_id,
        pool_id=None, status=LeadStatus.ASSIGNED, activity=ActivityKind.CLAIMED,
        reason=f"claimed from “{pool.name}” by {user.name}", end_reason=EndReason.CLAIMED,
        grade=_grade(session, lead.id),
        protected_until=rules.protected_until(now, protection_of(pool)),
    )])
    session.flush()
    session.refresh(lead)
    return lead


def record_touch(*, session: Session, lead_id: int, user: User, kind: ActivityKind,
                 summary: str, now: datetime) -> Activity:
    """A rep's real touch (call, email, message, meeting): accepts the lead on the first one,
    stops the speed-to-lead clock and extends the protection period."""
    if kind not in TOUCH_KINDS:
        raise InvalidInput(f"not a touch: {kind}; one of {sorted(TOUCH_KINDS)}", field="kind")
    lead = _lock_lead(session, lead_id)
    if lead.owner_id != user.id:
        raise PermissionDenied("log touches on your own leads")
    activity = Activity(lead_id=lead.id, kind=kind, occurred_at=now, actor_id=user.id,
                        summary=summary.strip())
    session.add(activity)
    lead.first_touch_at = lead.first_touch_at or now
    lead.last_touch_at = now
    if lead.status == LeadStatus.ASSIGNED:
        lead.status = LeadStatus.WORKING
    session.execute(update(Ownership).where(
        Ownership.lead_id == lead.id, Ownership.ended_at.is_(None),
        Ownership.accepted_at.is_(None)).values(accepted_at=now))
    if lead.owned_at is not None:
        pool = team_pool(session=session, team_id=lead.team_id)
        lead.protected_until = rules.extended_protection(
            lead.protected_until, lead.owned_at, now, protection_of(pool))
        lead.recycle_warned_at = None
    lead.updated_at = now
    session.flush()
    return activity


# --- 撞单: is this person or company already someone's? ------------------------------------


@dataclass(frozen=True, slots=True)
class OwnedMatch:
    """A lead someone already owns that matches what a rep is about to claim or add."""

    lead_id: int
    owner_name: str
    team_name: str | None
    matched_on: str


def ownership_conflicts(*, session: Session, phone: str | None = None,
                        email: str | None = None, company: str | None = None,
                        exclude_lead_id: int | None = None, limit: int = 20
                        ) -> list[OwnedMatch]:
    """Owned leads with the same phone, email or company (normalised as capture does)."""
    keys = [
        ("phone", Lead.phone, normalise.phone(phone).value),
        ("email", Lead.email, normalise.email(email).value),
        ("company", Lead.company_key, normalise.company_key(company)),
    ]
    found: list[OwnedMatch] = []
    seen: set[int] = set()
    for label, column, value in keys:
        if not value:
            continue
        stmt = (select(Lead.id, User.name, Team.name)
                .join(User, User.id == Lead.owner_id).outerjoin(Team, Team.id == User.team_id)
                .where(column == value, Lead.owner_id.is_not(None),
                       Lead.status != LeadStatus.MERGED).limit(limit))
        if exclude_lead_id is not None:
            stmt = stmt.where(Lead.id != exclude_lead_id)
        for lead_id, owner, team in session.execute(stmt):
            if lead_id not in seen:
                seen.add(lead_id)
                found.append(OwnedMatch(lead_id, owner, team, label))
    return found


# --- reps and notices -----------------------------------------------------------------


def set_presence(*, session: Session, user: User, presence: Presence, now: datetime) -> None:
    """A rep switches to available, away or offline."""
    profile = ensure_profile(session=session, user_id=user.id, now=now)
    profile.presence = presence
    profile.updated_at = now
    session.flush()


def ensure_profile(*, session: Session, user_id: int, now: datetime) -> RepProfile:
    """The rep's routing profile, created with defaults on first use (insert-or-ignore:
    two requests of one rep may both find none)."""
    profile = session.get(RepProfile, user_id)
    if profile is None:
        hours = rules.WorkingTime()
        _insert_ignore(session, RepProfile.__table__, [{
            "user_id": user_id, "presence": Presence.AVAILABLE.value, "capacity": {},
            "weight": 1.0, "languages": [], "product_lines": [],
            "work_start_minute": hours.start_minute, "work_end_minute": hours.end_minute,
            "holiday_calendar": hours.calendar, "updated_at": now}])
        profile = session.get(RepProfile, user_id)
        assert profile is not None
    return profile


def mark_notices_read(*, session: Session, user: User, now: datetime) -> int:
    """Mark all of ``user``'s notices read."""
    result = session.execute(update(Notice).where(Notice.user_id == user.id,
                                                  Notice.read_at.is_(None))
                             .values(read_at=now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def unassigned_leads(*, session: Session) -> int:
    """Routed leads with neither an owner nor a pool (must be zero: the safety invariant)."""
    return session.scalar(select(func.count()).select_from(Lead).where(
        Lead.owner_id.is_(None), Lead.pool_id.is_(None), Lead.status.in_(ROUTABLE),
        Lead.route_due_at.is_(None),
        Lead.id.in_(select(Ownership.lead_id)))) or 0


# --- configuration: rules, policies, profiles, pools --------------------------------------


def _check_target(session: Session, team_id: int | None, pool_id: int | None) -> None:
    if (team_id is None) == (pool_id is None):
        raise InvalidInput("a rule sends leads to a team or to a pool (exactly one)",
                           field="team_id")
    if team_id is not None and session.get(Team, team_id) is None:
        raise InvalidInput(f"team {team_id} does not exist", field="team_id")
    if pool_id is not None and session.get(LeadPool, pool_id) is None:
        raise InvalidInput(f"pool {pool_id} does not exist", field="pool_id")


def list_rules(*, session: Session) -> list[RoutingRule]:
    """Every routing rule (active or not) in order."""
    return list(session.scalars(select(RoutingRule)
                                .order_by(RoutingRule.position, RoutingRule.id)))


def create_rule(*, session: Session, data: RuleIn, actor_id: int | None,
                now: datetime) -> RoutingRule:
    """Add a rule at the end of the table."""
    _check_target(session, data.team_id, data.pool_id)
    last = session.scalar(select(func.max(RoutingRule.position))) or 0
    rule = RoutingRule(position=last + 1, name=data.name,
                       conditions=data.conditions.model_dump(mode="json", exclude_defaults=True),
                       team_id=data.team_id, pool_id=data.pool_id, is_active=data.is_active,
                       updated_by_id=actor_id, updated_at=now)
    session.add(rule)
    session.flush()
    return rule


def update_rule(*, session: Session, rule_id: int, data: RuleIn, actor_id: int | None,
                now: datetime) -> RoutingRule:
    """Replace a rule's name, conditions, target and switch (its position stays)."""
    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound(f"routing rule {rule_id} not found")
    _check_target(session, data.team_id, data.pool_id)
    rule.name = data.name
    rule.conditions = data.conditions.model_dump(mode="json", exclude_defaults=True)
    rule.team_id, rule.pool_id, rule.is_active = data.team_id, data.pool_id, data.is_active
    rule.updated_by_id, rule.updated_at = actor_id, now
    session.flush()
    return rule


def delete_rule(*, session: Session, rule_id: int) -> None:
    """Remove a rule; past ownerships keep their reason text but lose the link."""
    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound(f"routing rule {rule_id} not found")
    session.execute(update(Ownership).where(Ownership.rule_id == rule_id).values(rule_id=None))
    session.delete(rule)
    session.flush()


def reorder_rules(*, session: Session, rule_ids: Sequence[int], now: datetime) -> None:
    """Put the rules in the given order (every rule id exactly once)."""
    rules_by_id = {r.id: r for r in list_rules(session=session)}
    if sorted(rule_ids) != sorted(rules_by_id):
        raise InvalidInput("name every routing rule exactly once", field="rule_ids")
    for position, rule_id in enumerate(rule_ids, start=1):
        rules_by_id[rule_id].position = position
        rules_by_id[rule_id].updated_at = now
    session.flush()


def move_rule(*, session: Session, rule_id: int, offset: int, now: datetime) -> None:
    """Move a rule up (-1) or down (+1) the table."""
    ids = [r.id for r in list_rules(session=session)]
    if rule_id not in ids:
        raise NotFound(f"routing rule {rule_id} not found")
    i = ids.index(rule_id)
    j = min(max(i + offset, 0), len(ids) - 1)
    ids.insert(j, ids.pop(i))
    reorder_rules(session=session, rule_ids=ids, now=now)


def save_team_policy(*, session: Session, team_id: int, data: TeamPolicyIn,
                     now: datetime) -> TeamPolicy:
    """Set how a team routes (strategy, capacities, SLA targets, pool, away policy)."""
    if session.get(Team, team_id) is None:
        raise NotFound(f"team {team_id} not found")
    if data.pool_id is not None and session.get(LeadPool, data.pool_id) is None:
        raise InvalidInput(f"pool {data.pool_id} does not exist", field="pool_id")
    policy = lock_policies(session=session, team_ids=[team_id], now=now)[team_id]
    policy.strategy = data.strategy
    policy.capacity = {str(k): v for k, v in data.capacity.items()}
    policy.sla_minutes = {str(k): v for k, v in data.sla_minutes.items()}
    policy.pool_id = data.pool_id
    policy.away_policy = data.away_policy
    policy.updated_at = now
    session.flush()
    return policy


def save_rep_profile(*, session: Session, user_id: int, data: RepProfileIn,
                     now: datetime) -> RepProfile:
    """Set a rep's capacity, weight, skills, hours and presence."""
    if session.get(User, user_id) is None:
        raise NotFound(f"user {user_id} not found")
    if (data.work_start_minute is None) != (data.work_end_minute is None):
        raise InvalidInput("give both ends of the working hours, or neither",
                           field="work_start_minute")
    profile = ensure_profile(session=session, user_id=user_id, now=now)
    for name, value in data.model_dump().items():
        setattr(profile, name, value)
    profile.updated_at = now
    session.flush()
    return profile


def add_absence(*, session: Session, user_id: int, data: AbsenceIn) -> RepAbsence:
    """Book leave or a holiday for a rep: routing skips them while it lasts."""
    if data.ends_at <= data.starts_at:
        raise InvalidInput("the absence ends before it starts", field="ends_at")
    if session.get(User, user_id) is None:
        raise NotFound(f"user {user_id} not found")
    absence = RepAbsence(user_id=user_id, starts_at=data.starts_at, ends_at=data.ends_at,
                         reason=data.reason)
    session.add(absence)
    session.flush()
    return absence


def save_pool(*, session: Session, data: PoolIn, now: datetime,
              pool_id: int | None = None) -> LeadPool:
    """Create a pool, or change one's claim and protection rules."""
    if data.max_protection_days < data.protection_days:
        raise InvalidInput("the maximum protection is shorter than the protection period",
                           field="max_protection_days")
    if data.team_id is not None and session.get(Team, data.team_id) is None:
        raise InvalidInput(f"team {data.team_id} does not exist", field="team_id")
    pool = session.get(LeadPool, pool_id) if pool_id else LeadPool(created_at=now)
    if pool is None:
        raise NotFound(f"pool {pool_id} not found")
    clash = session.scalar(select(LeadPool.id).where(LeadPool.name == data.name))
    if clash is not None and clash != pool.id:
        raise Conflict(f"a pool named {data.name!r} exists")
    for name, value in data.model_dump().items():
        setattr(pool, name, value)
    session.add(pool)
    session.flush()
    return pool


def require_team_scope(*, user: User, team_ids: Iterable[int | None]) -> None:
    """Managers act on any team; a team lead only on their own team's leads and reps."""
    if has_permission(user.role, Permission.ROUTING_MANAGE):
        return
    if not has_permission(user.role, Permission.ROUTING_TEAM):
        raise PermissionDenied(f"your role ({user.role}) may not route leads")
    if any(t != user.team_id for t in team_ids):
        raise PermissionDenied("team leads act on their own team only")


def ownership_of(*, session: Session, lead_id: int) -> tuple[Lead, Ownership | None]:
    """A lead and its open ownership (owner or pool, reason, SLA)."""
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    own = session.scalar(select(Ownership).where(Ownership.lead_id == lead_id,
                                                 Ownership.ended_at.is_(None)))
    return lead, own


def lead_teams(*, session: Session, lead_ids: Sequence[int]) -> set[int | None]:
    """The teams the given leads belong to (for scope checks)."""
    return set(session.scalars(select(Lead.team_id).where(Lead.id.in_(lead_ids)).distinct()))


def weights_from_performance(*, session: Session, team_id: int, now: datetime,
                             days: int = 90) -> dict[int, float]:
    """Set a team's rep weights from their conversion over the last ``days`` days.

    A rep's weight is their conversion rate of the leads they owned (smoothed towards the
    team's rate by 20 leads' worth, so a rep with little history stays near 1) divided by
    the team's rate, kept within 0.5–2. Returns the new weights by user id.
    """
    since = now - timedelta(days=days)
    rows = session.execute(
        select(Ownership.user_id, func.count(func.distinct(Ownership.lead_id)),
               func.count(func.distinct(Lead.id)).filter(
                   Lead.status == LeadStatus.CONVERTED))
        .join(Lead, Lead.id == Ownership.lead_id)
        .join(User, User.id == Ownership.user_id)
        .where(User.team_id == team_id, Ownership.started_at >= since)
        .group_by(Ownership.user_id)
    ).all()
    owned = sum(r[1] for r in rows)
    if not owned:
        return {}
    team_rate = sum(r[2] for r in rows) / owned
    weights: dict[int, float] = {}
    for user_id, leads, converted in rows:
        if user_id is None:
            continue
        rate = (converted + 20 * team_rate) / (leads + 20)
        weight = round(min(2.0, max(0.5, rate / team_rate if team_rate else 1.0)), 2)
        ensure_profile(session=session, user_id=user_id, now=now).weight = weight
        weights[user_id] = weight
    session.flush()
    return weights


def create_default_rules(*, session: Session, actor_id: int | None,
                         now: datetime) -> list[RoutingRule]:
    """The brief's routing table for the organisation's teams, on an empty table.

    1. Gift and giveaway leads (high volume, low intent) go to the pre-sales team.
    2. A+/A leads go to the sales team serving their segment and product line, most
       specific team first, then to the first sales team whatever they are.
    3. B, C and D leads go to the pre-sales team, which nurtures them.
    """
    if session.scalar(select(func.count()).select_from(RoutingRule)):
        raise Conflict("the routing table is not empty; edit it instead")
    teams = list(session.scalars(select(Team).order_by(Team.id)))
    presales = next((t for t in teams if t.kind == TeamKind.PRESALES), None)
    sales = [t for t in teams if t.kind == TeamKind.SALES]
    if presales is None or not sales:
        raise InvalidInput("the default table needs a pre-sales team and a sales team")
    hot: list[Grade] = ["A+", "A"]
    table = [RuleIn(name="Gift and giveaway leads → pre-sales", team_id=presales.id,
                    conditions=RuleConditions(channels=["gift"]))]
    specific = sorted((t for t in sales if t.segment or t.product_line),
                      key=lambda t: (t.segment is None or t.product_line is None, t.id))
    table += [RuleIn(name=f"A+/A → {t.name}", team_id=t.id, conditions=RuleConditions(
        grades=hot, segments=[t.segment] if t.segment else [],
        product_lines=[t.product_line] if t.product_line else [])) for t in specific]
    table += [
        RuleIn(name=f"Other A+/A → {sales[0].name}", team_id=sales[0].id,
               conditions=RuleConditions(grades=hot)),
        RuleIn(name="B/C/D → pre-sales", team_id=presales.id,
               conditions=RuleConditions(grades=["B", "C", "D"])),
    ]
    return [create_rule(session=session, data=rule, actor_id=actor_id, now=now)
            for rule in table]
