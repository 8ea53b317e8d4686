"""The demo organisation's routing: pools, team policies, rep profiles, the routing table,
and the last weeks of leads routed day by day through the real router.

Open leads (new or being worked) are routed at midday of each of the last ``DAYS`` days, so
the capacity board, the pools, SLA breaches and recycling have realistic content: weekends
and holidays route nothing, overflow lands in the pools, most reps touch most of their new
leads within the day, and a final pass of the periodic checks escalates and recycles what
was left. Leads that closed before (converted, disqualified) stay with no owner: history
from before leadflow.
"""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from leadflow.db import bulk_insert, session_scope
from leadflow.leads.models import Activity, ActivityKind, Lead, LeadStatus
from leadflow.routing import jobs as routing_jobs
from leadflow.routing import service as routing_service
from leadflow.routing.models import Ownership, PoolKind, Presence, Strategy
from leadflow.routing.schemas import (
    AbsenceIn,
    PoolIn,
    RepProfileIn,
    RuleConditions,
    RuleIn,
    TeamPolicyIn,
)
from leadflow.users.models import Role, Team, TeamKind, User

DAYS = 21
_TZ = ZoneInfo("Asia/Shanghai")
TOUCHED_SHARE = 0.85


def configure(*, teams: dict[str, int], now: datetime, rng: random.Random) -> None:
    """Pools, policies, rep profiles (one rep away, one on leave) and the routing table."""
    with session_scope() as session:
        sales_pool = routing_service.save_pool(session=session, now=now, data=PoolIn(
            name="销售公海", kind=PoolKind.PUBLIC, claim_daily_cap=10, holding_cap=40,
            protection_days=7, extension_days=7, max_protection_days=30, warn_days=2,
            reclaim_cooldown_days=7))
        kinds = dict(session.execute(select(Team.id, Team.kind)).all())
        presales_id = next(t for t, k in kinds.items() if k == TeamKind.PRESALES)
        presales_pool = routing_service.save_pool(session=session, now=now, data=PoolIn(
            name="售前公海", kind=PoolKind.PUBLIC, team_id=presales_id, claim_daily_cap=30,
            holding_cap=120, protection_days=5, extension_days=5, max_protection_days=20,
            warn_days=1, reclaim_cooldown_days=3))
        routing_service.system_pool(session=session, kind=PoolKind.NURTURE, now=now)
        routing_service.system_pool(session=session, kind=PoolKind.TRIAGE, now=now)
        strategies = [Strategy.ROUND_ROBIN, Strategy.LEAST_LOADED, Strategy.WEIGHTED]
        for i, (team_id, kind) in enumerate(sorted(kinds.items())):
            if kind == TeamKind.OPS:
                continue
            presales = kind == TeamKind.PRESALES
            routing_service.save_team_policy(
                session=session, team_id=team_id, now=now, data=TeamPolicyIn(
                    strategy=Strategy.LEAST_LOADED if presales else strategies[i % 3],
                    capacity={"B": 40, "C": 60, "D": 60} if presales
                    else {"A+": 5, "A": 15, "B": 20},
                    sla_minutes={"B": 240, "C": 1440} if presales
                    else {"A+": 5, "A": 30, "B": 240},
                    pool_id=presales_pool.id if presales else sales_pool.id))
        reps = session.execute(select(User.id, User.locale).where(
            User.role.in_([Role.REP, Role.PRESALES]), User.is_active).order_by(User.id)).all()
        for user_id, locale in reps:
            routing_service.save_rep_profile(
                session=session, user_id=user_id, now=now, data=RepProfileIn(
                    weight=rng.choice([1.0, 1.0, 1.5, 2.0]),
                    languages=["zh", "en"] if locale == "en" else ["zh"]))
        away = session.get(User, reps[1][0])
        assert away is not None
        routing_service.set_presence(session=session, user=away, presence=Presence.AWAY,
                                     now=now)
        on_leave = reps[4][0]
        routing_service.add_absence(session=session, user_id=on_leave, data=AbsenceIn(
            starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=4), reason="年假"))
        _rules(session, teams, presales_id, now)


def _rules(session: Session, teams: dict[str, int], presales_id: int, now: datetime) -> None:
    hot = ["A+", "A"]
    table = [
        RuleIn(name="赠品留资 → 售前培育", conditions=RuleConditions(channels=["gift"]),
               team_id=presales_id),
        *[RuleIn(name=f"{name}: 热线索", team_id=teams[name], conditions=RuleConditions(
            grades=hot, segments=[segment], product_lines=[product]))
          for name, segment, product in (
              ("大客户销售部·CRM", "enterprise", "CRM"), ("大客户销售部·BI", "enterprise", "BI"),
              ("中型客户销售部·CRM", "mid", "CRM"), ("中型客户销售部·BI", "mid", "BI"),
              ("中小企业电销二组", "smb", "BI"))],
        RuleIn(name="其余热线索 → 电销一组", conditions=RuleConditions(grades=hot),
               team_id=teams["中小企业电销一组"]),
        RuleIn(name="B/C/D → 售前转化", conditions=RuleConditions(grades=["B", "C", "D"]),
               team_id=presales_id),
    ]
    for rule in table:
        routing_service.create_rule(session=session, data=rule, actor_id=None, now=now)


def route_recent(*, now: datetime, rng: random.Random) -> dict[str, int]:
    """Route the open leads day by day over the last ``DAYS`` days, with reps' first touches,
    then run the periodic checks once at ``now``."""
    today = now.astimezone(_TZ).date()
    start = today - timedelta(days=DAYS)
    with session_scope() as session:
        # Open leads become due on arrival, older ones at the first routing day.
        first = datetime.combine(start, time(12), _TZ)
        session.execute(update(Lead).where(Lead.status.in_(
            [LeadStatus.NEW, LeadStatus.WORKING, LeadStatus.NURTURING]))
            .values(route_due_at=Lead.created_at))
        session.execute(update(Lead).where(Lead.route_due_at < first)
                        .values(route_due_at=first))
        session.execute(update(Lead).where(Lead.status.not_in(
            [LeadStatus.NEW, LeadStatus.WORKING, LeadStatus.NURTURING]))
            .values(route_due_at=None))
    assigned = 0
    for offset in range(DAYS + 1):
        day = start + timedelta(days=offset)
        for hour in (10, 15):
            moment = datetime.combine(day, time(hour), _TZ)
            if moment > now:
                break
            summary = routing_jobs.route_all_due(now=moment)
            assigned += summary.assigned
            _touch(moment, rng)
    swept = routing_jobs.sweep(now=now)
    return {"assigned": assigned, "escalated": swept.escalated,
            "sla_rerouted": swept.sla_rerouted, "recycled": swept.recycled,
            "warned": swept.warned}


def _touch(moment: datetime, rng: random.Random) -> None:
    """Reps call most of the leads they just got, minutes to hours later."""
    with session_scope() as session:
        fresh = session.execute(select(Ownership.id, Ownership.lead_id, Ownership.user_id)
                                .where(Ownership.started_at == moment,
                                       Ownership.user_id.is_not(None))).all()
        touched = [(o, lead, user, moment + timedelta(minutes=rng.expovariate(1 / 40)))
                   for o, lead, user in fresh if rng.random() < TOUCHED_SHARE]
        if not touched:
            return
        bulk_insert(session, Activity.__table__, [  # type: ignore[arg-type]
            {"lead_id": lead, "kind": ActivityKind.CALL_LOGGED.value, "occurred_at": at,
             "actor_id": user, "channel": "phone", "summary": "首次电话沟通", "detail": {}}
            for _o, lead, user, at in touched])
        session.execute(update(Ownership), [{"id": o, "accepted_at": at}
                                            for o, _lead, _user, at in touched])
        session.execute(update(Lead), [
            {"id": lead, "first_touch_at": at, "last_touch_at": at,
             "status": LeadStatus.WORKING, "protected_until": at + timedelta(days=7)}
            for _o, lead, _user, at in touched])
