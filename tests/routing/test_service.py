"""Routing on a real database: rules to teams, reps within capacity, pools, claims, SLAs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow.cleaning.rules import MatchThresholds
from leadflow.errors import Conflict, PermissionDenied
from leadflow.leads.capture import IncomingRecord, capture_retrying
from leadflow.leads.models import Activity, ActivityKind, Lead, LeadStatus
from leadflow.routing import invariants, jobs, rules, service
from leadflow.routing.models import (
    LeadPool,
    Notice,
    Ownership,
    OwnershipKind,
    PoolKind,
    Presence,
    SlaBreach,
    Strategy,
)
from leadflow.routing.schemas import (
    AbsenceIn,
    PoolIn,
    RepProfileIn,
    RuleConditions,
    RuleIn,
    TeamPolicyIn,
)
from leadflow.scoring.models import LeadScore
from leadflow.users import service as users_service
from leadflow.users.models import Role, Segment, Team, TeamKind, User


@dataclass
class Org:
    sales: Team
    presales: Team
    reps: list[User]
    presales_reps: list[User]
    lead: User
    pool: LeadPool


def _user(session: Session, name: str, role: Role, team: Team, now: datetime) -> User:
    return users_service.create_user(session=session, email=f"{name}@example.com", name=name,
                                     role=role, password="correct-horse-battery",
                                     team_id=team.id, now=now)


@pytest.fixture
def org(session: Session, now: datetime) -> Org:
    sales = users_service.create_team(session=session, name="Sales", kind=TeamKind.SALES, now=now)
    presales = users_service.create_team(session=session, name="Presales",
                                         kind=TeamKind.PRESALES, now=now)
    reps = [_user(session, f"rep{i}", Role.REP, sales, now) for i in range(1, 4)]
    presales_reps = [_user(session, f"pre{i}", Role.PRESALES, presales, now) for i in (1, 2)]
    lead = _user(session, "lead", Role.TEAM_LEAD, sales, now)
    pool = service.save_pool(session=session, now=now, data=PoolIn(
        name="Sales 公海", team_id=sales.id, claim_daily_cap=2, holding_cap=3,
        protection_days=7, extension_days=7, max_protection_days=20, warn_days=2,
        reclaim_cooldown_days=7))
    service.save_team_policy(session=session, team_id=sales.id, now=now, data=TeamPolicyIn(
        strategy=Strategy.ROUND_ROBIN, capacity={"A+": 5, "A": 2}, sla_minutes={"A+": 5, "A": 30},
        pool_id=pool.id))
    service.save_team_policy(session=session, team_id=presales.id, now=now,
                             data=TeamPolicyIn(strategy=Strategy.LEAST_LOADED))
    service.create_rule(session=session, actor_id=None, now=now, data=RuleIn(
        name="Hot to sales", conditions=RuleConditions(grades=["A+", "A"]), team_id=sales.id))
    service.create_rule(session=session, actor_id=None, now=now, data=RuleIn(
        name="The rest to presales", conditions=RuleConditions(grades=["B", "C", "D"]),
        team_id=presales.id))
    session.commit()
    return Org(sales, presales, reps, presales_reps, lead, pool)


def make_lead(session: Session, now: datetime, grade: str | None, **fields: Any) -> Lead:
    lead = Lead(created_at=fields.pop("created_at", now), updated_at=now, tags=[],
                custom_fields={}, route_due_at=now, status=LeadStatus.NEW, **fields)
    session.add(lead)
    session.flush()
    if grade:
        session.add(LeadScore(lead_id=lead.id, fit=0, engagement=0, score=0, grade=grade,
                              is_mql=grade in ("A+", "A"), first_grade=grade,
                              ruleset_version=0, scored_at=now))
    session.flush()
    return lead


def routed(session: Session, now: datetime, grade: str) -> tuple[Lead, User]:
    """A new lead of ``grade``, routed, with the rep it went to."""
    lead = make_lead(session, now, grade)
    service.route_due(session=session, now=now)
    session.refresh(lead)
    owner = session.get(User, lead.owner_id)
    assert owner is not None
    return lead, owner


def count(session: Session, model: type, *where: Any) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def sound(session: Session) -> None:
    session.flush()
    assert invariants.check(session=session) == {
        "unowned": 0, "double_open": 0, "owner_mismatch": 0, "over_capacity": 0}


def test_hot_leads_go_to_sales_in_rotation_the_rest_to_presales_with_reasons(
    session: Session, now: datetime, org: Org
) -> None:
    hot = [make_lead(session, now, "A") for _ in range(3)] + [make_lead(session, now, "A+")]
    cold = [make_lead(session, now, g) for g in ("C", "D", "B")]
    summary = service.route_due(session=session, now=now)
    assert summary.assigned == 7 and summary.pooled == 0
    for lead in hot:
        session.refresh(lead)
        assert lead.team_id == org.sales.id and lead.owner_id in {r.id for r in org.reps}
        assert lead.status == LeadStatus.ASSIGNED and lead.route_due_at is None
        assert lead.owned_at == now and lead.protected_until == now + timedelta(days=7)
    assert Counter(lead.owner_id for lead in hot) == Counter({r.id: 1 for r in org.reps}) + \
        Counter({org.reps[0].id: 1})
    for lead in cold:
        session.refresh(lead)
        assert lead.team_id == org.presales.id
    note = session.scalar(select(Activity.summary).where(
        Activity.lead_id == hot[0].id, Activity.kind == ActivityKind.ASSIGNED))
    assert note is not None and "Hot to sales" in note and "round-robin of 3 eligible" in note
    sla = session.scalar(select(Ownership.sla_due_at).where(Ownership.lead_id == hot[3].id))
    assert sla == now + timedelta(minutes=5)
    sound(session)


def test_full_capacity_parks_leads_in_the_team_pool_and_retries(
    session: Session, now: datetime, org: Org
) -> None:
    leads = [make_lead(session, now, "A") for _ in range(8)]  # capacity 3 reps × 2 A a day
    summary = service.route_due(session=session, now=now)
    assert summary.assigned == 6 and summary.pooled == 2
    parked = [lead for lead in leads if (session.refresh(lead) or lead.owner_id is None)]
    assert len(parked) == 2
    assert all(p.pool_id == org.pool.id and p.route_due_at is not None for p in parked)
    reason = session.scalar(select(Activity.summary).where(
        Activity.lead_id == parked[0].id, Activity.kind == ActivityKind.POOLED))
    assert reason is not None and "3 A capacity full" in reason
    sound(session)
    # Retrying the same day changes nothing and writes no new ownership.
    later = now + timedelta(minutes=20)
    assert service.route_due(session=session, now=later).assigned == 0
    assert count(session, Ownership, Ownership.lead_id == parked[0].id) == 1
    # The next working day there is room again.
    next_day = now + timedelta(days=1)
    assert service.route_due(session=session, now=next_day).assigned == 2
    sound(session)


def test_unavailable_reps_are_skipped_and_no_rule_means_triage(
    session: Session, now: datetime, org: Org
) -> None:
    service.set_presence(session=session, user=org.reps[0], presence=Presence.AWAY, now=now)
    service.add_absence(session=session, user_id=org.reps[1].id, data=AbsenceIn(
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=2), reason="年假"))
    lead = make_lead(session, now, "A")
    nowhere = make_lead(session, now, None)
    service.route_due(session=session, now=now)
    session.refresh(lead)
    session.refresh(nowhere)
    assert lead.owner_id == org.reps[2].id
    triage = session.scalar(select(LeadPool).where(LeadPool.kind == PoolKind.TRIAGE))
    assert triage is not None and nowhere.pool_id == triage.id and nowhere.owner_id is None
    sound(session)


def test_skills_and_open_lead_limits(session: Session, now: datetime, org: Org) -> None:
    service.save_rep_profile(session=session, user_id=org.reps[0].id, now=now,
                             data=RepProfileIn(languages=["en"]))
    service.save_rep_profile(session=session, user_id=org.reps[1].id, now=now,
                             data=RepProfileIn(max_open_leads=0))
    leads = [make_lead(session, now, "A", language="zh") for _ in range(2)]
    service.route_due(session=session, now=now)
    for lead in leads:
        session.refresh(lead)
        assert lead.owner_id == org.reps[2].id


def test_capture_routes_in_the_request(session: Session, now: datetime, org: Org) -> None:
    result = capture_retrying(
        session=session, records=[IncomingRecord(
            external_id="w1", record={"name": "张伟", "phone": "13812345678"}, raw={})],
        source="web", campaign_id=None, now=now, thresholds=MatchThresholds(),
    )
    lead = session.get(Lead, result.results[0].lead_id)
    assert lead is not None and lead.route_due_at is None
    assert lead.owner_id is not None or lead.pool_id is not None
    assert count(session, Ownership, Ownership.lead_id == lead.id) == 1
    sound(session)


def test_reject_goes_to_triage_and_reroute_skips_the_rejecting_rep(
    session: Session, now: datetime, org: Org
) -> None:
    lead, owner = routed(session, now, "A")
    with pytest.raises(PermissionDenied):
        service.reject_lead(session=session, lead_id=lead.id, user=org.reps[2], reason="x",
                            now=now)
    service.reject_lead(session=session, lead_id=lead.id, user=owner, reason="做教育的，不对口",
                        now=now)
    session.refresh(lead)
    triage = service.system_pool(session=session, kind=PoolKind.TRIAGE, now=now)
    assert lead.owner_id is None and lead.pool_id == triage.id
    assert count(session, Notice, Notice.user_id == org.lead.id, Notice.lead_id == lead.id) == 1
    service.reroute_lead(session=session, lead_id=lead.id, actor=org.lead, now=now)
    session.refresh(lead)
    assert lead.owner_id not in (None, owner.id) and lead.pool_id is None
    kinds = list(session.scalars(select(Activity.kind).where(Activity.lead_id == lead.id)
                                 .order_by(Activity.id)))
    assert kinds == [ActivityKind.ASSIGNED, ActivityKind.REJECTED, ActivityKind.ASSIGNED]
    sound(session)


def test_return_sends_the_lead_to_nurture_with_a_date(
    session: Session, now: datetime, org: Org
) -> None:
    lead, owner = routed(session, now, "B")
    service.return_lead(session=session, lead_id=lead.id, user=owner, reason="明年预算",
                        follow_up_on=date(2027, 3, 1), now=now)
    session.refresh(lead)
    nurture = service.system_pool(session=session, kind=PoolKind.NURTURE, now=now)
    assert lead.pool_id == nurture.id and lead.status == LeadStatus.NURTURING
    assert lead.follow_up_on == date(2027, 3, 1) and lead.owner_id is None
    sound(session)


def test_mql_crossing_promotes_a_presales_lead_to_sales(
    session: Session, now: datetime, org: Org
) -> None:
    lead = make_lead(session, now, "C")
    service.route_due(session=session, now=now)
    session.refresh(lead)
    assert lead.team_id == org.presales.id
    score = session.get(LeadScore, lead.id)
    assert score is not None
    score.grade = "A"
    lead.route_due_at = now + timedelta(minutes=1)
    session.flush()
    service.route_due(session=session, now=now + timedelta(minutes=1))
    session.refresh(lead)
    assert lead.team_id == org.sales.id
    kinds = list(session.scalars(select(Ownership.kind).where(Ownership.lead_id == lead.id)
                                 .order_by(Ownership.id)))
    assert kinds == [OwnershipKind.ROUTED, OwnershipKind.PROMOTED]
    sound(session)


def test_claims_respect_caps_cooldown_and_team(
    session: Session, now: datetime, org: Org
) -> None:
    rep = org.reps[0]
    leads = [make_lead(session, now, "C", phone=f"+86138000000{i:02d}") for i in range(5)]
    for lead in leads:
        lead.route_due_at = None
        lead.pool_id = org.pool.id
        lead.team_id = org.sales.id
    session.flush()
    for lead in leads[:2]:
        claimed = service.claim_lead(session=session, lead_id=lead.id, user=rep, now=now)
        assert claimed.owner_id == rep.id and claimed.pool_id is None
    with pytest.raises(Conflict, match="daily claim limit"):
        service.claim_lead(session=session, lead_id=leads[2].id, user=rep, now=now)
    with pytest.raises(Conflict, match="not in a pool"):
        service.claim_lead(session=session, lead_id=leads[0].id, user=org.reps[1], now=now)
    with pytest.raises(PermissionDenied):
        service.claim_lead(session=session, lead_id=leads[3].id, user=org.presales_reps[0],
                           now=now)
    # Protection lapses, the lead is recycled, and its last owner must wait out the cooldown.
    later = now + timedelta(days=8)
    summary = jobs.recycle(session=session, now=later)
    assert summary.recycled == 2
    session.refresh(leads[0])
    assert leads[0].pool_id == org.pool.id and leads[0].recycle_count == 1
    with pytest.raises(Conflict, match="less than 7 days"):
        service.claim_lead(session=session, lead_id=leads[0].id, user=rep, now=later)
    other = service.claim_lead(session=session, lead_id=leads[0].id, user=org.reps[1], now=later)
    assert other.owner_id == org.reps[1].id and other.owned_at == later
    sound(session)


def test_touch_accepts_the_lead_and_extends_protection_up_to_the_maximum(
    session: Session, now: datetime, org: Org
) -> None:
    lead, owner = routed(session, now, "A")
    service.record_touch(session=session, lead_id=lead.id, user=owner,
                         kind=ActivityKind.CALL_LOGGED, summary="聊了10分钟", now=now)
    session.refresh(lead)
    own = session.scalar(select(Ownership).where(Ownership.lead_id == lead.id))
    assert own is not None and own.accepted_at == now
    assert lead.status == LeadStatus.WORKING and lead.first_touch_at == now
    for day in (6, 12, 18, 24):
        service.record_touch(session=session, lead_id=lead.id, user=owner,
                             kind=ActivityKind.MESSAGE_SENT, summary="",
                             now=now + timedelta(days=day))
    session.refresh(lead)
    assert lead.protected_until == now + timedelta(days=20)  # the pool's hard maximum


def test_recycle_warns_first_and_every_ownership_path_restarts_the_clock(
    session: Session, now: datetime, org: Org
) -> None:
    lead = make_lead(session, now, "A")
    service.route_due(session=session, now=now)
    session.refresh(lead)
    first_owner = lead.owner_id
    warn_time = now + timedelta(days=5, hours=1)
    assert jobs.recycle(session=session, now=warn_time).warned == 1
    assert jobs.recycle(session=session, now=warn_time).warned == 0  # once
    assert count(session, Notice, Notice.user_id == first_owner) == 1
    # A transfer is an ownership change too: the protection restarts from the transfer.
    target = next(r for r in org.reps if r.id != first_owner)
    service.transfer_leads(session=session, lead_ids=[lead.id], to_user_id=target.id,
                           actor=org.lead, reason="rebalance", now=warn_time)
    session.refresh(lead)
    assert lead.owner_id == target.id and lead.owned_at == warn_time
    assert lead.protected_until == warn_time + timedelta(days=7)
    assert lead.recycle_warned_at is None
    assert jobs.recycle(session=session, now=now + timedelta(days=8)).recycled == 0
    sound(session)


def test_sla_escalates_then_reroutes_to_someone_else(
    session: Session, now: datetime, org: Org
) -> None:
    lead = make_lead(session, now, "A+")
    service.route_due(session=session, now=now)
    session.refresh(lead)
    first = lead.owner_id
    assert jobs.check_sla(session=session, now=now + timedelta(minutes=4)).escalated == 0
    assert jobs.check_sla(session=session, now=now + timedelta(minutes=6)).escalated == 1
    assert count(session, Notice, Notice.user_id == org.lead.id) == 1
    assert jobs.check_sla(session=session, now=now + timedelta(minutes=7)).escalated == 0
    later = now + timedelta(minutes=11)
    assert jobs.check_sla(session=session, now=later).sla_rerouted == 1
    session.refresh(lead)
    assert lead.owner_id is None and lead.pool_id == org.pool.id  # never ownerless
    service.route_due(session=session, now=later)
    session.refresh(lead)
    assert lead.owner_id not in (None, first)
    assert count(session, SlaBreach, SlaBreach.lead_id == lead.id) == 2
    sound(session)


def test_away_rep_loses_untouched_hot_leads_only(
    session: Session, now: datetime, org: Org
) -> None:
    leads = [make_lead(session, now, "A") for _ in range(4)]
    service.route_due(session=session, now=now)
    session.expire_all()
    rep = org.reps[0]
    touched, untouched = [lead for lead in leads if lead.owner_id == rep.id]  # rotation 1,2,3,1
    service.record_touch(session=session, lead_id=touched.id, user=rep,
                         kind=ActivityKind.CALL_LOGGED, summary="", now=now)
    service.set_presence(session=session, user=rep, presence=Presence.AWAY, now=now)
    assert jobs.reassign_away(session=session, now=now).away_rerouted == 1
    service.route_due(session=session, now=now)
    session.expire_all()
    assert touched.owner_id == rep.id
    assert untouched.owner_id not in (None, rep.id)
    sound(session)


def test_ownership_conflicts_name_the_other_owner(
    session: Session, now: datetime, org: Org
) -> None:
    lead = make_lead(session, now, "A", phone="+8613812345678", company="上海云图科技有限公司",
                     company_key="云图科技")
    service.route_due(session=session, now=now)
    found = service.ownership_conflicts(session=session, phone="138 1234 5678")
    assert [(m.lead_id, m.matched_on) for m in found] == [(lead.id, "phone")]
    assert found[0].owner_name.startswith("rep")
    assert service.ownership_conflicts(session=session, phone="138 1234 5678",
                                       exclude_lead_id=lead.id) == []


def test_weights_follow_conversion_within_bounds(
    session: Session, now: datetime, org: Org
) -> None:
    leads = [make_lead(session, now, "A") for _ in range(6)]
    service.save_team_policy(session=session, team_id=org.sales.id, now=now,
                             data=TeamPolicyIn(strategy=Strategy.WEIGHTED))
    service.route_due(session=session, now=now)
    session.expire_all()
    best = org.reps[0]
    for lead in leads:
        if lead.owner_id == best.id:
            lead.status = LeadStatus.CONVERTED
    session.flush()
    weights = service.weights_from_performance(session=session, team_id=org.sales.id,
                                               now=now + timedelta(days=1))
    assert set(weights) == {r.id for r in org.reps}
    assert weights[best.id] > 1 > weights[org.reps[1].id] >= 0.5
    assert weights[best.id] <= 2


def test_routing_again_never_pulls_an_owned_lead_into_a_pool(
    session: Session, now: datetime, org: Org
) -> None:
    lead = make_lead(session, now, "A")
    service.route_due(session=session, now=now)
    session.refresh(lead)
    owner = lead.owner_id
    assert owner is not None
    # A rule now sends A leads to a pool ahead of the team, and the lead is due again.
    service.create_rule(session=session, actor_id=None, now=now, data=RuleIn(
        name="A to the pool", conditions=RuleConditions(grades=["A"]), pool_id=org.pool.id))
    service.reorder_rules(session=session, now=now, rule_ids=[
        r.id for r in sorted(service.list_rules(session=session), key=lambda r: -r.id)])
    lead.route_due_at = now
    session.flush()
    summary = service.route_due(session=session, now=now)
    assert summary.kept == 1
    session.refresh(lead)
    assert lead.owner_id == owner and lead.pool_id is None and lead.route_due_at is None
    fresh = make_lead(session, now, "A")
    service.route_due(session=session, now=now)
    session.refresh(fresh)
    assert fresh.pool_id == org.pool.id and fresh.owner_id is None
    sound(session)


def test_default_table_follows_the_brief_for_the_teams(session: Session, now: datetime) -> None:
    presales = users_service.create_team(session=session, name="售前", kind=TeamKind.PRESALES,
                                         now=now)
    smb = users_service.create_team(session=session, name="电销", kind=TeamKind.SALES, now=now)
    big = users_service.create_team(session=session, name="大客户", kind=TeamKind.SALES, now=now,
                                    segment=Segment.ENTERPRISE, product_line="CRM")
    made = service.create_default_rules(session=session, actor_id=None, now=now)
    specs = service.active_rules(session=session)
    assert [s.team_id for s in specs] == [presales.id, big.id, smb.id, presales.id]
    assert specs[0].channels == ("gift",) and specs[-1].grades == ("B", "C", "D")

    def target(**kw: Any) -> int | None:
        base: dict[str, Any] = dict(lead_id=1, grade="A", probability=None, segment=None,
                                    product_line=None, region=None, channel=None, language=None)
        match = rules.match_rule(specs, rules.RouteFacts(**{**base, **kw}))
        return match.rule.team_id if match.rule else None

    assert target(segment=Segment.ENTERPRISE, product_line="CRM") == big.id
    assert target(segment=Segment.SMB) == smb.id
    assert target(grade="C") == presales.id
    assert target(grade="A", channel="gift") == presales.id
    assert len(made) == 4
    with pytest.raises(Conflict, match="not empty"):
        service.create_default_rules(session=session, actor_id=None, now=now)
