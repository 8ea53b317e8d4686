"""The rep workspace, list mode, the cadence editor and the lead page's cadence card through
the test client."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow.cadences import service as cadences_service
from leadflow.cadences.models import (
    Cadence,
    CadenceStep,
    Enrollment,
    EnrollmentStatus,
    Task,
    TaskStatus,
)
from leadflow.leads.models import Activity, ActivityKind, Lead, LeadStatus
from leadflow.routing import service as routing_service
from leadflow.routing.models import Strategy
from leadflow.routing.schemas import RuleConditions, RuleIn, TeamPolicyIn
from leadflow.scoring.models import LeadScore
from leadflow.users.models import Role, User

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
HX = {"HX-Request": "true"}
TEAM = "华东销售"


@pytest.fixture(autouse=True)
def _browser_accept(client: TestClient) -> None:
    """Ask for HTML like a browser does, so domain errors come back as pages."""
    client.headers["Accept"] = "text/html,*/*;q=0.8"


def csrf(client: TestClient, page: str = "/leads") -> str:
    resp = client.get(page)
    assert resp.status_code == 200, resp.text
    match = CSRF_META.search(resp.text)
    assert match
    return match.group(1)


@dataclass
class Org:
    rep: User
    cadence: Cadence


def _org(session: Session, now: datetime, rep: User) -> Org:
    """The rep's team takes every lead; hot leads enroll in 7 in 7, the rest in Persistent 6."""
    assert rep.team_id is not None
    routing_service.save_team_policy(session=session, team_id=rep.team_id, now=now,
                                     data=TeamPolicyIn(strategy=Strategy.ROUND_ROBIN))
    routing_service.create_rule(session=session, actor_id=None, now=now, data=RuleIn(
        name="All to sales", conditions=RuleConditions(), team_id=rep.team_id))
    hot = cadences_service.install_preset(session=session, key="7in7", actor_id=None, now=now,
                                          auto_enroll=True, grades=["A+", "A"], priority=10)
    cadences_service.install_preset(session=session, key="persistent6", actor_id=None,
                                    now=now, auto_enroll=True, priority=20)
    session.commit()
    return Org(rep, hot)


def _lead(session: Session, now: datetime, name: str, grade: str, **fields: Any) -> Lead:
    """A lead of ``grade`` routed to the team's rep (and so enrolled)."""
    lead = Lead(name=name, created_at=now, updated_at=now, tags=[], custom_fields={},
                route_due_at=now, status=LeadStatus.NEW, **fields)
    session.add(lead)
    session.flush()
    session.add(LeadScore(lead_id=lead.id, fit=0, engagement=0, score=0, grade=grade,
                          probability=0.4, is_mql=grade in ("A+", "A"), first_grade=grade,
                          ruleset_version=0, scored_at=now))
    session.flush()
    routing_service.route_due(session=session, now=now, lead_ids=[lead.id])
    session.commit()
    return lead


def _fresh(session: Session) -> Session:
    session.rollback()  # a new transaction: SQLite readers otherwise keep their snapshot
    session.expire_all()
    return session


def _task_of(session: Session, lead_id: int) -> Task:
    task = _fresh(session).scalar(select(Task).where(
        Task.lead_id == lead_id, Task.automatic.is_(False),
        Task.status.in_((TaskStatus.OPEN.value, TaskStatus.CLAIMED.value))))
    assert task is not None
    return task


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize(("role", "work", "cadences"), [
    (Role.REP, 200, 200), (Role.TEAM_LEAD, 200, 200), (Role.MANAGER, 403, 200),
    (Role.MARKETER, 403, 200), (Role.ANALYST, 403, 403), (Role.ADMIN, 200, 200),
])
def test_pages_open_by_role(client: TestClient, login: Any, now: datetime, role: Role,
                            work: int, cadences: int) -> None:
    login(role, team=TEAM if role in (Role.REP, Role.TEAM_LEAD) else None)
    for path in ("/work", "/work/list"):
        assert client.get(path).status_code == work, path
    for path in ("/cadences", "/nurture"):
        assert client.get(path).status_code == cadences, path
    editor = client.get("/cadences/new")
    assert editor.status_code == (200 if role in (Role.MANAGER, Role.MARKETER, Role.ADMIN)
                                  else 403)


def test_logged_out_users_go_to_the_login_page(client: TestClient) -> None:
    for path in ("/work", "/work/list", "/cadences"):
        resp = client.get(path, follow_redirects=False)
        assert resp.status_code == 303
        assert resp.headers["location"] == f"/login?next={path}"


def test_nav_links_follow_permissions(client: TestClient, login: Any) -> None:
    login(Role.REP, team=TEAM)
    nav = re.search(r'<nav class="nav".*?</nav>', client.get("/leads").text, re.S)
    assert nav is not None
    assert 'href="/work"' in nav[0] and 'href="/outbox"' in nav[0]
    assert 'href="/cadences"' not in nav[0]
    client.post("/logout", data={"csrf": csrf(client)})
    login(Role.MARKETER)
    nav = re.search(r'<nav class="nav".*?</nav>', client.get("/leads").text, re.S)
    assert nav is not None
    assert 'href="/cadences"' in nav[0] and 'href="/outbox"' in nav[0]
    assert 'href="/work"' not in nav[0]


# --------------------------------------------------------------------------- queue mode


def test_next_shows_the_card_and_a_disposition_moves_the_queue_on(
        client: TestClient, login: Any, session: Session, now: datetime) -> None:
    rep = login(Role.REP, team=TEAM, name="李娜")
    _org(session, now, rep)
    first = _lead(session, now - timedelta(minutes=2), "张伟", "A", phone="+8613800138000",
                  company="星辰科技", title="CTO", email="zw@example.com")
    second = _lead(session, now - timedelta(minutes=1), "王芳", "A")
    token = csrf(client, "/work")
    ready = client.get("/work").text
    assert "2 tasks are due now." in ready and 'id="next-button"' in ready

    card = client.post("/work/next", headers={**HX, "X-CSRF-Token": token})
    assert card.status_code == 200
    assert "<html" not in card.text  # a fragment for #workspace
    # Newest hot lead first: 王芳 came a minute later.
    assert 'id="task-card"' in card.text and "王芳" in card.text
    assert "New A lead, " in card.text and "reach chance now" in card.text
    assert "7 touches in 7 days · step 1 of 7" in card.text
    assert "1 of 6" in card.text
    assert 'data-key="1"' in card.text and "<kbd>0</kbd>" in card.text
    task = _task_of(session, second.id)
    assert task.status == TaskStatus.CLAIMED
    # The card stays in hand: the page shows it again, Next returns it again.
    assert "王芳" in client.get("/work").text
    again = client.post("/work/next", headers={**HX, "X-CSRF-Token": token})
    assert f'data-task-id="{task.id}"' in again.text

    done = client.post(f"/work/tasks/{task.id}/disposition", headers=HX,
                       data={"csrf": token, "disposition": "no_answer", "note": "关机"})
    assert done.status_code == 200
    assert "Recorded “No answer” for 王芳." in done.text
    assert "张伟" in done.text  # the queue moved on
    assert 'href="tel:+8613800138000"' in done.text and "zw@example.com" in done.text
    assert "Introduce yourself" in done.text  # the step's talking points
    recorded = _fresh(session).get(Task, task.id)
    assert recorded is not None
    assert recorded.status == TaskStatus.DONE and recorded.disposition == "no_answer"
    assert recorded.note == "关机"
    assert _task_of(session, first.id).status == TaskStatus.CLAIMED


def test_call_back_needs_a_time_and_skip_needs_a_reason(
        client: TestClient, login: Any, session: Session, now: datetime) -> None:
    rep = login(Role.REP, team=TEAM)
    _org(session, now, rep)
    lead = _lead(session, now, "赵强", "B")
    token = csrf(client, "/work")
    client.post("/work/next", headers={**HX, "X-CSRF-Token": token})
    task = _task_of(session, lead.id)

    refused = client.post(f"/work/tasks/{task.id}/disposition", headers=HX,
                          data={"csrf": token, "disposition": "call_back", "note": "开会中"})
    assert refused.status_code == 422
    assert "Say when to call back." in refused.text
    assert "开会中" in refused.text  # what the rep typed is kept
    no_reason = client.post(f"/work/tasks/{task.id}/skip", headers=HX,
                            data={"csrf": token, "reason": "  "})
    assert no_reason.status_code == 422
    assert "Say why you skip this task" in no_reason.text
    assert _task_of(session, lead.id).status == TaskStatus.CLAIMED

    later = (now + timedelta(hours=3)).astimezone(rep_zone()).strftime("%Y-%m-%dT%H:%M")
    ok = client.post(f"/work/tasks/{task.id}/disposition", headers=HX,
                     data={"csrf": token, "disposition": "call_back", "callback_at": later})
    assert ok.status_code == 200 and "Recorded “Call back” for 赵强." in ok.text
    callback = _fresh(session).scalar(select(Task).where(Task.lead_id == lead.id,
                                                         Task.kind == "callback"))
    assert callback is not None and callback.due_at == now + timedelta(hours=3)
    assert "Nothing due now" in ok.text
    assert "Your next task is due at" in ok.text


def rep_zone() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


def test_skip_with_a_reason_is_logged_and_the_page_works_without_htmx(
        client: TestClient, login: Any, session: Session, now: datetime) -> None:
    rep = login(Role.REP, team=TEAM)
    _org(session, now, rep)
    lead = _lead(session, now, "孙丽", "A")
    token = csrf(client, "/work")
    resp = client.post("/work/next", data={"csrf": token}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/work"
    task = _task_of(session, lead.id)
    resp = client.post(f"/work/tasks/{task.id}/skip",
                       data={"csrf": token, "reason": "客户在出差"}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/work?empty=1"
    assert "Nothing due now" in client.get("/work?empty=1").text
    skipped = _fresh(session).scalar(select(Activity).where(
        Activity.lead_id == lead.id, Activity.kind == ActivityKind.TASK_SKIPPED))
    assert skipped is not None and "客户在出差" in skipped.summary


def test_someone_elses_task_is_not_found(client: TestClient, login: Any, make_user: Any,
                                         session: Session, now: datetime) -> None:
    other = make_user(Role.REP, team=TEAM)
    _org(session, now, other)
    lead = _lead(session, now, "吴磊", "A")
    login(Role.REP, team="Other team")
    token = csrf(client, "/work")
    task = _task_of(session, lead.id)
    assert client.get(f"/work/tasks/{task.id}").status_code == 404
    resp = client.post(f"/work/tasks/{task.id}/disposition",
                       data={"csrf": token, "disposition": "connected"})
    assert resp.status_code == 404


def test_catch_up_is_offered_for_a_big_backlog(client: TestClient, login: Any,
                                               session: Session, now: datetime) -> None:
    rep = login(Role.REP, team=TEAM)
    _org(session, now, rep)
    for i in range(45):
        _lead(session, now - timedelta(days=3), f"积压{i}", "C")
    page = client.get("/work").text
    assert "45 tasks are due now." in page and "Plan my catch-up" in page
    resp = client.post("/work/catch-up", data={"csrf": csrf(client, "/work")})
    assert resp.status_code == 200
    assert "Your catch-up plan is ready" in resp.text
    due = _fresh(session).scalar(select(func.count()).select_from(Task).where(
        Task.owner_id == rep.id, Task.automatic.is_(False), Task.due_at <= now,
        Task.status.in_(("open", "scheduled"))))
    assert due == 40  # a day's work (the default capacity) stays for today


# --------------------------------------------------------------------------- list mode


def test_list_mode_groups_today_and_works_one_task(client: TestClient, login: Any,
                                                   session: Session, now: datetime) -> None:
    rep = login(Role.REP, team=TEAM)
    _org(session, now, rep)
    lead = _lead(session, now, "刘洋", "A")
    page = client.get("/work/list")
    assert page.status_code == 200
    assert 'id="channel-call"' in page.text and 'id="channel-call-morning"' in page.text
    task = _task_of(session, lead.id)
    assert f'href="/work/tasks/{task.id}"' in page.text
    assert f'href="/leads/{lead.id}"' in page.text

    card = client.get(f"/work/tasks/{task.id}")
    assert card.status_code == 200 and "刘洋" in card.text
    assert 'name="mode" value="list"' in card.text
    resp = client.post(f"/work/tasks/{task.id}/disposition", follow_redirects=False,
                       data={"csrf": csrf(client, "/work/list"), "mode": "list",
                             "disposition": "qualified"})
    assert resp.status_code == 303 and resp.headers["location"] == "/work/list"
    stored = _fresh(session).get(Lead, lead.id)
    assert stored is not None and stored.status == LeadStatus.QUALIFIED
    assert "Nothing left for today." in client.get("/work/list").text


# --------------------------------------------------------------------------- cadences


def test_cadence_editor_installs_a_preset_saves_and_keeps_input_on_errors(
        client: TestClient, login: Any, session: Session, now: datetime) -> None:
    login(Role.MANAGER)
    token = csrf(client, "/cadences")
    assert "Install a preset" in client.get("/cadences").text
    resp = client.post("/cadences/presets/9in18", data={"csrf": token, "name": "温线索 9/18"},
                       follow_redirects=False)
    assert resp.status_code == 303
    cadence_id = int(resp.headers["location"].rsplit("/", 1)[1])
    editor = client.get(f"/cadences/{cadence_id}").text
    assert 'value="温线索 9/18"' in editor
    assert len(re.findall(r'data-index="\d+"', editor)) == 9

    form = {"csrf": token, "name": "温线索 9/18 v2", "purpose": "sales", "is_active": "on",
            "auto_enroll": "on", "grades": ["B", "C"], "product_lines": "CRM，ERP",
            "priority": "30", "attempt_budget": "8", "out_of_office_days": "5",
            "exit_on": ["replied", "meeting_booked"],
            "steps-0-day_offset": "0", "steps-0-window_start": "09:00",
            "steps-0-window_end": "12:00", "steps-0-channel": "call",
            "steps-0-script": "问预算",
            "steps-3-day_offset": "2", "steps-3-window_start": "18:00",
            "steps-3-window_end": "10:00", "steps-3-channel": "sms",
            "steps-3-automatic": "on", "steps-3-body": "您好 {{ first_name }}"}
    bad = client.post(f"/cadences/{cadence_id}", data=form)
    assert bad.status_code == 422
    assert "Step 2" in bad.text and "the window must end after it starts" in bad.text
    assert 'value="温线索 9/18 v2"' in bad.text and "问预算" in bad.text  # input kept
    assert 'value="18:00"' in bad.text and 'class="step-row row-error"' in bad.text
    stored = _fresh(session).get(Cadence, cadence_id)
    assert stored is not None and stored.name == "温线索 9/18"

    form["steps-3-window_start"] = "10:00"
    form["steps-3-window_end"] = "18:00"
    ok = client.post(f"/cadences/{cadence_id}", data=form, follow_redirects=False)
    assert ok.status_code == 303
    stored = _fresh(session).get(Cadence, cadence_id)
    assert stored is not None
    assert (stored.name, stored.priority, stored.attempt_budget) == ("温线索 9/18 v2", 30, 8)
    assert stored.conditions["grades"] == ["B", "C"]
    assert stored.conditions["product_lines"] == ["CRM", "ERP"]
    assert stored.exit_on == ["replied", "meeting_booked"]
    steps = cadences_service.steps_of(session=session, cadence_id=cadence_id)
    assert [(s.channel, s.window_start, s.automatic) for s in steps] == [
        ("call", 540, False), ("sms", 600, True)]


def test_new_nurture_program_and_a_duplicate_name(client: TestClient, login: Any,
                                                  session: Session, now: datetime) -> None:
    login(Role.MARKETER)
    token = csrf(client, "/nurture")
    blank = client.get("/cadences/new?purpose=nurture").text
    assert 'option value="nurture" selected' in blank
    form = {"csrf": token, "name": "CRM 培育", "purpose": "nurture", "is_active": "on",
            "maturity": "warm", "topic": "CRM", "steps-0-day_offset": "0",
            "steps-0-window_start": "10:00", "steps-0-window_end": "17:00",
            "steps-0-channel": "email", "steps-0-subject": "CRM 选型指南"}
    not_automatic = client.post("/cadences", data=form)
    assert not_automatic.status_code == 422
    assert "every step is automatic" in not_automatic.text
    form["steps-0-automatic"] = "on"
    assert client.post("/cadences", data=form, follow_redirects=False).status_code == 303
    duplicate = client.post("/cadences", data=form)
    assert duplicate.status_code == 422
    assert "A cadence with this name exists already." in duplicate.text
    listed = client.get("/nurture").text
    assert "CRM 培育" in listed and "topic CRM" in listed


def test_reps_read_cadences_without_editing(client: TestClient, login: Any,
                                            session: Session, now: datetime) -> None:
    rep = login(Role.REP, team=TEAM)
    org = _org(session, now, rep)
    page = client.get("/cadences").text
    assert "7 touches in 7 days" in page and "Install a preset" not in page
    editor = client.get(f"/cadences/{org.cadence.id}").text
    assert '<fieldset class="plain" disabled>' in editor
    token = csrf(client, "/cadences")
    assert client.post(f"/cadences/{org.cadence.id}",
                       data={"csrf": token, "name": "x"}).status_code == 403
    assert client.post("/cadences/presets/7in7", data={"csrf": token}).status_code == 403


# --------------------------------------------------------------------------- the lead page


def test_lead_page_cadence_card_stops_and_enrolls(client: TestClient, login: Any,
                                                  session: Session, now: datetime) -> None:
    rep = login(Role.REP, team=TEAM)
    org = _org(session, now, rep)
    lead = _lead(session, now, "周杰", "A")
    page = client.get(f"/leads/{lead.id}").text
    card = re.search(r'<section class="card" id="cadence">.*?</section>', page, re.S)
    assert card is not None
    assert "7 touches in 7 days" in card[0] and "step 1 of 7" in card[0]
    assert "Stop the cadence" in card[0] and "Work this" in card[0]
    token = csrf(client, f"/leads/{lead.id}")
    client.post(f"/leads/{lead.id}/enrollment/stop", data={"csrf": token})
    assert cadences_service.live_enrollment(session=_fresh(session), lead_id=lead.id) is None
    assert "Not in a cadence." in client.get(f"/leads/{lead.id}").text

    resp = client.post(f"/leads/{lead.id}/enrollment",
                       data={"csrf": token, "cadence_id": str(org.cadence.id)},
                       follow_redirects=False)
    assert resp.status_code == 303
    live = cadences_service.live_enrollment(session=_fresh(session), lead_id=lead.id)
    assert live is not None and live.cadence_id == org.cadence.id
    ended = session.scalar(select(func.count()).select_from(Enrollment).where(
        Enrollment.lead_id == lead.id, Enrollment.status == EnrollmentStatus.EXITED))
    assert ended == 1
    assert session.scalar(select(func.count()).select_from(CadenceStep)) == 13
