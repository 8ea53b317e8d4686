"""Routing pages through the test client: rules, the capacity board and rep profiles, triage,
pools and claiming, SLA breaches, notices, presence and the lead page's ownership card."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from itertools import count

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow import clock
from leadflow.cleaning.rules import MatchThresholds
from leadflow.leads.capture import IncomingRecord, capture_retrying
from leadflow.leads.models import Lead, LeadStatus
from leadflow.routing import jobs as routing_jobs
from leadflow.routing import service as routing_service
from leadflow.routing.models import (
    LeadPool,
    Notice,
    Ownership,
    PoolKind,
    Presence,
    RepAbsence,
    RepProfile,
    RoutingRule,
)
from leadflow.routing.schemas import AbsenceIn, PoolIn, RuleConditions, RuleIn, TeamPolicyIn
from leadflow.scoring.schemas import GRADES
from leadflow.users import service as users_service
from leadflow.users.models import Role, Team, TeamKind

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_external_ids = count(1)


@pytest.fixture(autouse=True)
def _browser_accept(client: TestClient) -> None:
    """Ask for HTML like a browser does, so domain errors come back as pages."""
    client.headers["Accept"] = "text/html,*/*;q=0.8"


def csrf(client: TestClient, page: str = "/leads") -> str:
    """The session's CSRF token, as a page shows it."""
    match = CSRF_META.search(client.get(page).text)
    assert match
    return match.group(1)


def post(client: TestClient, url: str, data: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    """A form POST with the CSRF token, not following the redirect."""
    return client.post(url, data={"csrf": csrf(client), **(data or {})},
                       follow_redirects=False)


def team_id(session: Session, name: str) -> int:
    found = session.scalar(select(Team.id).where(Team.name == name))
    assert found is not None
    return found


def route_to(session: Session, team: str, now: datetime, **policy: object) -> int:
    """One rule sending every lead to ``team``, whose policy is ``policy``."""
    tid = team_id(session, team)
    routing_service.create_rule(session=session, data=RuleIn(name=f"All to {team}",
                                                              team_id=tid),
                                actor_id=None, now=now)
    routing_service.save_team_policy(session=session, team_id=tid,
                                     data=TeamPolicyIn.model_validate(policy), now=now)
    session.commit()
    return tid


def capture(session: Session, now: datetime, **record: str) -> int:
    """Capture one record as the API does (scored and routed in the same transaction)."""
    incoming = IncomingRecord(external_id=f"r-{next(_external_ids)}", record=record,
                              raw=dict(record))
    result = capture_retrying(session=session, records=[incoming], source="web",
                              campaign_id=None, now=now, thresholds=MatchThresholds())
    session.commit()
    lead_id = result.results[0].lead_id
    assert lead_id is not None
    return lead_id


def fresh(session: Session, model: type, key: object):  # type: ignore[no-untyped-def]
    """A row as stored now (the app changed it in its own sessions)."""
    session.rollback()
    session.expire_all()
    return session.get(model, key)


def open_ownership(session: Session, lead_id: int) -> Ownership:
    session.rollback()
    own = session.scalar(select(Ownership).where(Ownership.lead_id == lead_id,
                                                 Ownership.ended_at.is_(None)))
    assert own is not None
    return own


# --------------------------------------------------------------------------- access


def test_routing_pages_need_a_login_and_the_right_role(client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/routing/rules", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
    login(Role.MARKETER)
    assert client.get("/routing/pools").status_code == 403
    assert client.get("/routing/sla").status_code == 403
    login(Role.REP, team="North")
    assert client.get("/routing/rules").status_code == 403
    assert client.get("/routing/triage").status_code == 403
    page = client.get("/routing/pools")
    assert page.status_code == 200
    assert 'href="/routing/pools"' in page.text and 'href="/routing/rules"' not in page.text
    assert client.post("/routing/rules", data={"csrf": csrf(client), "name": "x"},
                       follow_redirects=False).status_code == 403


# --------------------------------------------------------------------------- rules


def test_manager_adds_edits_moves_switches_and_deletes_rules(  # type: ignore[no-untyped-def]
    client: TestClient, login, make_user, session: Session, now: datetime
) -> None:
    make_user(Role.REP, team="North")
    north = team_id(session, "North")
    pool = routing_service.save_pool(session=session, data=PoolIn(name="华东公海"), now=now)
    session.commit()
    login(Role.MANAGER)
    resp = post(client, "/routing/rules", {
        "name": "Hot enterprise", "grades": ["A+", "A"], "segments": ["enterprise"],
        "min_probability": "30", "regions": "华东，华南", "target": f"team:{north}",
        "is_active": "on"})
    assert resp.status_code == 303
    assert post(client, "/routing/rules", {"name": "Rest", "target": f"pool:{pool.id}",
                                           "is_active": "on"}).status_code == 303
    session.rollback()
    hot, rest = session.scalars(select(RoutingRule).order_by(RoutingRule.position)).all()
    assert hot.conditions == {"grades": ["A+", "A"], "segments": ["enterprise"],
                              "min_probability": 0.3, "regions": ["华东", "华南"]}
    assert (hot.team_id, rest.pool_id) == (north, pool.id)
    page = client.get("/routing/rules").text
    assert "Grade A+ / A" in page and "chance to convert at least 30%" in page
    assert "Region: 华东 / 华南" in page and "Team: North" in page and "Pool: 华东公海" in page

    post(client, f"/routing/rules/{rest.id}/move", {"direction": "up"})
    session.rollback()
    assert session.scalars(select(RoutingRule.name).order_by(RoutingRule.position)).all() \
        == ["Rest", "Hot enterprise"]
    post(client, f"/routing/rules/{hot.id}/toggle")
    assert fresh(session, RoutingRule, hot.id).is_active is False
    assert fresh(session, RoutingRule, hot.id).conditions["regions"] == ["华东", "华南"]
    edit = client.get(f"/routing/rules/{hot.id}/edit").text
    assert 'value="华东, 华南"' in edit and "Edit rule “Hot enterprise”" in edit
    post(client, f"/routing/rules/{hot.id}", {"name": "Hot only", "grades": ["A+"],
                                              "target": f"team:{north}"})
    edited = fresh(session, RoutingRule, hot.id)
    assert (edited.name, edited.conditions, edited.is_active) == ("Hot only",
                                                                  {"grades": ["A+"]}, False)
    post(client, f"/routing/rules/{rest.id}/delete")
    session.rollback()
    assert session.scalars(select(RoutingRule.name)).all() == ["Hot only"]


def test_rule_form_refuses_a_rule_without_a_target(client: TestClient, login,  # type: ignore[no-untyped-def]
                                                   session: Session) -> None:
    login(Role.ADMIN)
    resp = post(client, "/routing/rules", {"name": "Nowhere"})
    assert resp.status_code == 422 and "team or to a pool" in resp.text
    resp = post(client, "/routing/rules", {"name": "Odd", "target": "team:1",
                                           "min_probability": "lots"})
    assert resp.status_code == 422
    session.rollback()
    assert session.scalar(select(func.count()).select_from(RoutingRule)) == 0


def test_team_lead_sees_the_rules_without_the_editing_forms(  # type: ignore[no-untyped-def]
    client: TestClient, login, session: Session, now: datetime
) -> None:
    login(Role.TEAM_LEAD, team="North")
    route_to(session, "North", now)
    page = client.get("/routing/rules").text
    assert "All to North" in page
    assert 'action="/routing/rules"' not in page and "/toggle" not in page
    assert client.get("/routing/rules/1/edit").status_code == 403


# --------------------------------------------------------------------------- capacity board


def test_capacity_board_shows_load_against_capacity_and_why_reps_are_unavailable(  # type: ignore[no-untyped-def]
    client: TestClient, login, make_user, session: Session, now: datetime
) -> None:
    ready = make_user(Role.REP, team="North", name="李娜")
    on_leave = make_user(Role.REP, team="North", name="王强")
    away = make_user(Role.REP, team="North", name="赵敏")
    make_user(Role.REP, team="South", name="陈晨")
    route_to(session, "North", now, capacity=dict.fromkeys(GRADES, 5))
    routing_service.add_absence(session=session, user_id=on_leave.id, data=AbsenceIn(
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=2), reason="年假"))
    routing_service.set_presence(session=session, user=away, presence=Presence.AWAY, now=now)
    session.commit()
    lead_id = capture(session, now, name="周杰", phone="13800138001")
    assert fresh(session, Lead, lead_id).owner_id == ready.id
    grade = open_ownership(session, lead_id).grade
    assert grade in GRADES

    login(Role.MANAGER)
    page = client.get("/routing/teams").text
    assert "North" in page and "South" in page and "陈晨" in page
    assert f"1 / 5 {grade}" in page
    row = page[page.index(f'id="rep-{on_leave.id}"'):]
    assert "on leave" in row[:row.index("</tr>")]
    row = page[page.index(f'id="rep-{away.id}"'):]
    assert ">away<" in row[:row.index("</tr>")]
    row = page[page.index(f'id="rep-{ready.id}"'):]
    assert "Available now" in row[:row.index("</tr>")]
    assert "public holiday" not in page

    login(Role.TEAM_LEAD, team="South")
    page = client.get("/routing/teams").text
    assert "陈晨" in page and "李娜" not in page
    assert "Edit the team&#39;s routing policy" not in page


def test_capacity_board_names_todays_public_holiday(  # type: ignore[no-untyped-def]
    client: TestClient, login, make_user, now: datetime
) -> None:
    make_user(Role.REP, team="North", name="李娜")
    clock.set_clock(lambda: datetime(2026, 10, 1, 2, 0, tzinfo=UTC))
    login(Role.MANAGER)
    page = client.get("/routing/teams").text
    assert "Today is a public holiday: National Day" in page
    assert "public holiday</span>" in page


def test_manager_saves_a_team_policy(client: TestClient, login, make_user,  # type: ignore[no-untyped-def]
                                     session: Session, now: datetime) -> None:
    make_user(Role.REP, team="North")
    north = team_id(session, "North")
    pool = routing_service.save_pool(session=session, data=PoolIn(name="North pool",
                                                                  team_id=north), now=now)
    session.commit()
    login(Role.MANAGER)
    resp = post(client, f"/routing/teams/{north}/policy", {
        "strategy": "weighted", "capacity_A+": "3", "capacity_A": "10", "sla_A+": "15",
        "pool_id": str(pool.id), "away_policy": "keep"})
    assert resp.status_code == 303
    session.rollback()
    policy = routing_service.lock_policies(session=session, team_ids=[north], now=now)[north]
    assert (policy.strategy, policy.capacity, policy.sla_minutes, policy.pool_id,
            policy.away_policy) == ("weighted", {"A+": 3, "A": 10}, {"A+": 15}, pool.id, "keep")
    session.rollback()
    page = client.get("/routing/teams").text
    assert "Weighted" in page and "A+ 15 min" in page and "North pool" in page
    assert post(client, f"/routing/teams/{north}/policy",
                {"capacity_A": "-1"}).status_code == 422


# --------------------------------------------------------------------------- rep profiles


def test_rep_profile_and_leave_are_saved_from_the_rep_page(  # type: ignore[no-untyped-def]
    client: TestClient, login, make_user, session: Session, now: datetime
) -> None:
    rep = make_user(Role.REP, team="North", name="李娜")
    login(Role.TEAM_LEAD, team="North")
    page = client.get(f"/routing/reps/{rep.id}").text
    assert 'value="09:00"' in page and 'value="18:00"' in page  # the defaults
    resp = post(client, f"/routing/reps/{rep.id}/profile", {
        "presence": "available", "capacity_A": "3", "max_open_leads": "40", "weight": "2",
        "languages": "zh, en", "product_lines": "CRM", "work_start": "08:30",
        "work_end": "17:30", "holiday_calendar": "CN"})
    assert resp.status_code == 303
    profile = fresh(session, RepProfile, rep.id)
    assert (profile.capacity, profile.max_open_leads, profile.weight, profile.languages,
            profile.work_start_minute, profile.work_end_minute) == (
        {"A": 3}, 40, 2.0, ["en", "zh"], 510, 1050)
    assert 'value="08:30"' in client.get(f"/routing/reps/{rep.id}").text

    post(client, f"/routing/reps/{rep.id}/profile", {"weight": "1", "holiday_calendar": ""})
    profile = fresh(session, RepProfile, rep.id)
    assert (profile.work_start_minute, profile.work_end_minute,
            profile.holiday_calendar) == (None, None, None)
    assert post(client, f"/routing/reps/{rep.id}/profile",
                {"work_start": "25:00", "work_end": "18:00",
                 "holiday_calendar": "CN"}).status_code == 422
    assert post(client, f"/routing/reps/{rep.id}/profile",
                {"holiday_calendar": "XX"}).status_code == 422

    resp = post(client, f"/routing/reps/{rep.id}/absences",
                {"starts_on": "2026-11-27", "ends_on": "2026-11-28", "reason": "年假"})
    assert resp.status_code == 303
    session.rollback()
    absence = session.scalar(select(RepAbsence).where(RepAbsence.user_id == rep.id))
    assert absence is not None
    # Whole local days in Shanghai (UTC+8): from midnight on the 27th to the end of the 28th.
    assert (absence.starts_at, absence.ends_at) == (
        datetime(2026, 11, 26, 16, 0, tzinfo=UTC), datetime(2026, 11, 28, 16, 0, tzinfo=UTC))
    assert "年假" in client.get(f"/routing/reps/{rep.id}").text


def test_team_leads_manage_only_their_own_reps(client: TestClient, login, make_user) -> None:  # type: ignore[no-untyped-def]
    rep = make_user(Role.REP, team="North")
    login(Role.TEAM_LEAD, team="South")
    assert client.get(f"/routing/reps/{rep.id}").status_code == 403
    assert post(client, f"/routing/reps/{rep.id}/absences",
                {"starts_on": "2026-11-27", "ends_on": "2026-11-27"}).status_code == 403


# --------------------------------------------------------------------------- the lead page


def test_owner_rejects_a_lead_into_triage_and_a_manager_reroutes_it(  # type: ignore[no-untyped-def]
    client: TestClient, login, make_user, session: Session, now: datetime
) -> None:
    rep = login(Role.REP, team="North", name="李娜")
    colleague = make_user(Role.REP, team="North", name="王强")
    route_to(session, "North", now)
    lead_id = capture(session, now, name="周杰", phone="13800138002", company="星辰科技")
    # Round-robin ties go to the lower user id: the rep logged in first.
    assert fresh(session, Lead, lead_id).owner_id == rep.id
    page = client.get(f"/leads/{lead_id}").text
    assert 'id="ownership"' in page and "Routed" in page and "rule 1 “All to North”" in page
    assert f'action="/leads/{lead_id}/reject"' in page
    assert f'action="/leads/{lead_id}/transfer"' not in page  # reps do not transfer

    assert post(client, f"/leads/{lead_id}/reject", {"reason": " "}).status_code == 422
    resp = post(client, f"/leads/{lead_id}/reject", {"reason": "学生，没有预算"})
    assert resp.status_code == 303
    lead = fresh(session, Lead, lead_id)
    triage = session.scalar(select(LeadPool).where(LeadPool.kind == PoolKind.TRIAGE))
    assert triage is not None and (lead.owner_id, lead.pool_id) == (None, triage.id)
    assert client.get(f"/leads/{lead_id}").status_code == 404  # no longer the rep's

    login(Role.MANAGER)
    page = client.get("/routing/triage").text
    row = page[page.index(f'id="lead-{lead_id}"'):]
    row = row[:row.index("</tr>")]
    assert "周杰" in row and "Rejected by 李娜" in row and "学生，没有预算" in row
    north = team_id(session, "North")
    resp = client.post(f"/leads/{lead_id}/reroute", follow_redirects=False,
                       data={"csrf": csrf(client), "team_id": str(north)},
                       headers={"Referer": "http://testserver/routing/triage"})
    assert resp.status_code == 303 and resp.headers["location"] == "/routing/triage"
    # The rep who rejected the lead does not get it back.
    assert fresh(session, Lead, lead_id).owner_id == colleague.id
    assert f'id="lead-{lead_id}"' not in client.get("/routing/triage").text


def test_owner_returns_a_lead_to_nurture_with_a_follow_up_date(  # type: ignore[no-untyped-def]
    client: TestClient, login, session: Session, now: datetime
) -> None:
    rep = login(Role.REP, team="North")
    route_to(session, "North", now)
    lead_id = capture(session, now, name="吴磊", phone="13800138003")
    assert fresh(session, Lead, lead_id).owner_id == rep.id
    resp = post(client, f"/leads/{lead_id}/return",
                {"reason": "明年再看", "follow_up_on": "2027-03-01"})
    assert resp.status_code == 303
    lead = fresh(session, Lead, lead_id)
    pool = session.get(LeadPool, lead.pool_id)
    assert pool is not None and pool.kind == PoolKind.NURTURE
    assert (lead.status, lead.follow_up_on) == (LeadStatus.NURTURING, date(2027, 3, 1))


def test_a_touch_stops_the_sla_clock_and_shows_on_the_card(  # type: ignore[no-untyped-def]
    client: TestClient, login, session: Session, now: datetime
) -> None:
    rep = login(Role.REP, team="North")
    route_to(session, "North", now, sla_minutes=dict.fromkeys(GRADES, 30))
    lead_id = capture(session, now, name="郑爽", phone="13800138004")
    own = open_ownership(session, lead_id)
    assert own.user_id == rep.id and own.sla_due_at == now + timedelta(minutes=30)
    page = client.get(f"/leads/{lead_id}").text
    assert "First touch due" in page and "2026-11-26 10:30" in page  # Shanghai time
    assert post(client, f"/leads/{lead_id}/touches", {"kind": "note"}).status_code == 422
    resp = post(client, f"/leads/{lead_id}/touches", {"kind": "call_logged",
                                                      "summary": "约了下周演示"})
    assert resp.status_code == 303
    assert open_ownership(session, lead_id).accepted_at == now
    assert fresh(session, Lead, lead_id).status == LeadStatus.WORKING
    page = client.get(f"/leads/{lead_id}").text
    assert "Touched 2026-11-26 10:00" in page and "约了下周演示" in page


def test_team_lead_transfers_within_the_team_only(  # type: ignore[no-untyped-def]
    client: TestClient, login, make_user, session: Session, now: datetime
) -> None:
    first = make_user(Role.REP, team="North", name="李娜")
    second = make_user(Role.REP, team="North", name="王强")
    outsider = make_user(Role.REP, team="South", name="陈晨")
    route_to(session, "North", now)
    lead_id = capture(session, now, name="孙丽", phone="13800138005")
    owner = fresh(session, Lead, lead_id).owner_id
    target = second if owner == first.id else first
    login(Role.TEAM_LEAD, team="North")
    page = client.get(f"/leads/{lead_id}").text
    assert f'<option value="{target.id}">' in page and f'value="{outsider.id}"' not in page
    assert post(client, f"/leads/{lead_id}/transfer",
                {"to_user_id": str(outsider.id)}).status_code == 403
    resp = post(client, f"/leads/{lead_id}/transfer", {"to_user_id": str(target.id),
                                                       "reason": "客户指定"})
    assert resp.status_code == 303
    assert fresh(session, Lead, lead_id).owner_id == target.id
    assert "客户指定" in client.get(f"/leads/{lead_id}").text


# --------------------------------------------------------------------------- pools


def test_pool_page_masks_phones_flags_owned_matches_and_claims(  # type: ignore[no-untyped-def]
    client: TestClient, login, make_user, session: Session, now: datetime
) -> None:
    holder = make_user(Role.REP, team="North", name="王强")
    north = team_id(session, "North")
    public = routing_service.save_pool(session=session, data=PoolIn(name="公海",
                                                                    claim_daily_cap=2),
                                       now=now)
    routing_service.create_rule(session=session, now=now, actor_id=None, data=RuleIn(
        name="Shops to the pool", conditions=RuleConditions(tags=["门店"]), pool_id=public.id))
    route_to(session, "North", now)
    owned_id = capture(session, now, name="刘洋", phone="13900000001", company="星辰科技有限公司")
    assert fresh(session, Lead, owned_id).owner_id == holder.id
    pooled_id = capture(session, now, name="马超", phone="13812345678", company="星辰科技",
                        tags="门店")
    assert fresh(session, Lead, pooled_id).pool_id == public.id
    make_user(Role.REP, team="South")
    team_pool = routing_service.save_pool(session=session, now=now, data=PoolIn(
        name="South pool", team_id=team_id(session, "South")))
    session.commit()

    rep = login(Role.REP, team="North", name="李娜")
    listing = client.get("/routing/pools").text
    assert "公海" in listing and "South pool" not in listing and "Triage" not in listing
    assert client.get(f"/routing/pools/{team_pool.id}").status_code == 404
    page = client.get(f"/routing/pools/{public.id}").text
    assert "马超" in page and "138****5678" in page and "86138****" not in page
    assert "13812345678" not in page and "8613812345678" not in page
    assert "You claimed 0 of 2 leads today and hold 0 of 50 claimed leads." in page
    row = page[page.index(f'id="lead-{pooled_id}"'):]
    row = row[:row.index("</tr>")]
    assert "Already owned" in row and "also owned by 王强 (North) — matched on company" in row
    assert f'href="/leads/{pooled_id}"' not in row  # reps do not open unclaimed leads

    resp = post(client, f"/leads/{pooled_id}/claim")
    assert resp.status_code == 303 and resp.headers["location"] == f"/leads/{pooled_id}"
    lead = fresh(session, Lead, pooled_id)
    assert (lead.owner_id, lead.team_id, lead.pool_id) == (rep.id, north, None)
    assert "+8613812345678" in client.get(f"/leads/{pooled_id}").text
    assert "You claimed 1 of 2 leads today" in client.get(f"/routing/pools/{public.id}").text
    assert post(client, f"/leads/{pooled_id}/claim").status_code == 409


def test_manager_creates_and_edits_a_pool(client: TestClient, login,  # type: ignore[no-untyped-def]
                                          session: Session) -> None:
    login(Role.MANAGER)
    resp = post(client, "/routing/pools", {
        "name": "华南公海", "kind": "public", "team_id": "", "claim_daily_cap": "5",
        "holding_cap": "30", "protection_days": "10", "extension_days": "5",
        "max_protection_days": "40", "warn_days": "3", "reclaim_cooldown_days": "14"})
    assert resp.status_code == 303
    session.rollback()
    pool = session.scalar(select(LeadPool).where(LeadPool.name == "华南公海"))
    assert pool is not None
    assert (pool.claim_daily_cap, pool.holding_cap, pool.protection_days,
            pool.max_protection_days, pool.reclaim_cooldown_days) == (5, 30, 10, 40, 14)
    listing = client.get("/routing/pools").text
    assert "5 a day, 30 held" in listing
    assert 'value="14"' in client.get(f"/routing/pools/{pool.id}/edit").text
    assert post(client, f"/routing/pools/{pool.id}", {
        "name": "华南公海", "kind": "nurture", "protection_days": "10",
        "max_protection_days": "5"}).status_code == 422
    post(client, f"/routing/pools/{pool.id}", {"name": "华南培育池", "kind": "nurture"})
    assert fresh(session, LeadPool, pool.id).kind == PoolKind.NURTURE
    assert fresh(session, LeadPool, pool.id).name == "华南培育池"


# --------------------------------------------------------------------------- SLA and notices


def test_sla_breaches_notices_and_the_unread_count(  # type: ignore[no-untyped-def]
    client: TestClient, login, make_user, session: Session, now: datetime
) -> None:
    rep = make_user(Role.REP, team="North", name="李娜")
    route_to(session, "North", now, sla_minutes=dict.fromkeys(GRADES, 10))
    lead_id = capture(session, now, name="黄磊", phone="13800138006")
    assert fresh(session, Lead, lead_id).owner_id == rep.id
    later = now + timedelta(minutes=15)
    lead_user = make_user(Role.TEAM_LEAD, team="North", name="组长")
    assert routing_jobs.check_sla(session=session, now=later).escalated == 1
    session.commit()

    login(Role.MANAGER)
    page = client.get("/routing/sla").text
    assert "黄磊" in page and "李娜" in page and "1 · Escalated" in page
    assert "黄磊" not in client.get("/routing/sla?level=2").text
    assert "黄磊" in client.get(f"/routing/sla?team={team_id(session, 'North')}").text

    client.cookies.clear()
    resp = client.post("/login", follow_redirects=False, data={
        "email": lead_user.email, "password": "correct-horse-battery",
        "csrf": CSRF_META.search(client.get("/login").text).group(1)})  # type: ignore[union-attr]
    assert resp.status_code == 303
    assert "黄磊" in client.get("/routing/sla").text
    badge = client.get("/notices/unread", headers={"HX-Request": "true"}).text
    assert ">1</span>" in badge
    page = client.get("/notices").text
    assert "SLA escalation" in page and "missed the first-touch SLA" in page
    assert f'href="/leads/{lead_id}"' in page
    assert post(client, "/notices/read").status_code == 303
    assert client.get("/notices/unread", headers={"HX-Request": "true"}).text.strip() == ""
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Notice)
                          .where(Notice.read_at.is_(None))) == 0

    login(Role.TEAM_LEAD, team="South")
    assert "黄磊" not in client.get("/routing/sla").text


def test_rep_switches_presence_from_the_notices_page(  # type: ignore[no-untyped-def]
    client: TestClient, login, session: Session
) -> None:
    rep = login(Role.REP, team="North")
    page = client.get("/notices").text
    assert 'action="/routing/presence"' in page and "No notices." in page
    resp = client.post("/routing/presence", follow_redirects=False,
                       data={"csrf": csrf(client), "presence": "away"},
                       headers={"Referer": "http://testserver/notices"})
    assert resp.status_code == 303 and resp.headers["location"] == "/notices"
    assert fresh(session, RepProfile, rep.id).presence == Presence.AWAY
    assert '<option value="away" selected>' in client.get("/notices").text
    assert post(client, "/routing/presence", {"presence": "asleep"}).status_code == 422


def test_routing_pages_speak_chinese(client: TestClient, login, make_user,  # type: ignore[no-untyped-def]
                                     session: Session, now: datetime) -> None:
    make_user(Role.REP, team="North")
    route_to(session, "North", now)
    login(Role.MANAGER)
    client.get("/lang/zh")
    assert "分配规则" in client.get("/routing/rules").text
    page = client.get("/routing/teams").text
    assert "产能" in page and "轮询" in page
    assert "公海" in client.get("/routing/pools").text


def test_manager_creates_the_default_table_on_an_empty_one(  # type: ignore[no-untyped-def]
    client: TestClient, login, session: Session, now: datetime
) -> None:
    users_service.create_team(session=session, name="售前", kind=TeamKind.PRESALES, now=now)
    users_service.create_team(session=session, name="电销", kind=TeamKind.SALES, now=now)
    session.commit()
    login(Role.MANAGER)
    assert "Create the default table" in client.get("/routing/rules").text
    assert post(client, "/routing/rules/defaults").status_code == 303
    page = client.get("/routing/rules").text
    assert "Other A+/A → 电销" in page and "B/C/D → pre-sales" in page
    assert "Create the default table" not in page
