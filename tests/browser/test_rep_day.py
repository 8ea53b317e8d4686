"""A rep's day in Debian's Chromium: six leads routed to the rep and enrolled in the 7-in-7
cadence; the rep works the queue with Next (the button and the N key), records what happened
on each call (by click and by the 1–0 shortcuts), asks for a callback at a time, skips one
lead with a reason, switches to Chinese, and ends the day with an empty queue.

Screenshots land in ``tests/browser/screenshots/`` for a human look.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from leadflow.users.models import Role, User

from .conftest import CHROMIUM

SHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "correct-horse-battery"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's Chromium at /usr/bin/chromium (make browser-deps)"),
]
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

# A Thursday, 10:00 in Shanghai: a working day and hour, whatever the wall clock says.
OFFICE_HOURS = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
TEAM = "华东销售"
# name, grade, phone, company, title
LEADS = (
    ("张伟", "A+", "+8613800138000", "北京星辰科技有限公司", "CTO"),
    ("李娜", "A", "+8613900139000", "上海云帆网络技术有限公司", "市场总监"),
    ("王芳", "A", "+8613700137000", "广州海风贸易有限公司", "采购经理"),
    ("赵强", "B", "+8613600136000", "深圳前海数据有限公司", "IT 经理"),
    ("孙丽", "B", "+8613500135000", "杭州数澜科技有限公司", "技术总监"),
    ("周杰", "C", "+8613400134000", "南京知行教育科技有限公司", "总经理"),
)


@pytest.fixture
def office_clock() -> Iterator[datetime]:
    """The app's clock (the server runs in this process) from ``OFFICE_HOURS``, ticking in
    real time, so the timeline keeps its order."""
    from leadflow import clock

    started = time.monotonic()
    clock.set_clock(lambda: OFFICE_HOURS + timedelta(seconds=time.monotonic() - started))
    yield OFFICE_HOURS
    clock.set_clock(None)


def _organisation(session: Session, make_user: Any) -> tuple[User, dict[str, int]]:
    """A sales team whose rep gets every lead; the 7-in-7 preset enrolls them on assignment;
    six scored leads routed to the rep. Returns the rep and lead ids by name."""
    from leadflow import clock
    from leadflow.cadences import service as cadences_service
    from leadflow.leads.models import Lead, LeadStatus
    from leadflow.routing import service as routing_service
    from leadflow.routing.schemas import RuleConditions, RuleIn, TeamPolicyIn
    from leadflow.scoring.models import LeadScore

    rep = make_user(Role.REP, team=TEAM, name="陈晨")
    assert rep.team_id is not None
    now = clock.now()
    routing_service.save_team_policy(session=session, team_id=rep.team_id, now=now,
                                     data=TeamPolicyIn(capacity={"A+": 10, "A": 20}))
    routing_service.create_rule(session=session, actor_id=None, now=now, data=RuleIn(
        name="全部给华东销售", conditions=RuleConditions(), team_id=rep.team_id))
    cadences_service.install_preset(session=session, key="7in7", actor_id=None, now=now,
                                    auto_enroll=True)
    session.commit()
    ids = {}
    for name, grade, phone, company, title in LEADS:
        at = clock.now()
        lead = Lead(name=name, phone=phone, company=company, title=title, tags=[],
                    custom_fields={}, created_at=at, updated_at=at, route_due_at=at,
                    status=LeadStatus.NEW, email=f"{phone[-4:]}@example.cn")
        session.add(lead)
        session.flush()
        session.add(LeadScore(lead_id=lead.id, fit=0, engagement=0, score=0, grade=grade,
                              probability=0.35, is_mql=grade in ("A+", "A"),
                              first_grade=grade, ruleset_version=0, scored_at=at))
        session.flush()
        routing_service.route_due(session=session, now=at, lead_ids=[lead.id])
        session.commit()
        ids[name] = lead.id
    session.expire_all()
    return rep, ids


def _card_lead(page: Any) -> str:
    """The name of the lead on the task card."""
    name = page.locator("#task-card .task-lead a").inner_text().strip()
    assert name in {n for n, *_ in LEADS}
    return str(name)


def test_a_rep_works_a_full_day_in_the_browser(  # type: ignore[no-untyped-def]
    app_url: str, chromium_browser: Any, make_user, session: Session, office_clock: datetime
) -> None:
    from leadflow.cadences.models import Task, TaskKind
    from leadflow.leads.models import Activity, ActivityKind, Lead, LeadStatus

    SHOTS.mkdir(exist_ok=True)
    rep, ids = _organisation(session, make_user)
    lead_names = {lead_id: name for name, lead_id in ids.items()}
    context = chromium_browser.new_context(viewport={"width": 1366, "height": 900},
                                           locale="en-US")
    page = context.new_page()
    page.goto(f"{app_url}/login")
    page.fill("input[name=email]", rep.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Leads")

    # The morning: six tasks due, the Next button waiting.
    page.click("nav.nav >> text=Work")
    expect(page).to_have_url(re.compile(r"/work$"))
    expect(page.locator("#work-ready h2")).to_have_text("6 tasks are due now.")
    page.screenshot(path=SHOTS / "30-work-ready.png", full_page=True)
    page.click("#next-button")
    card = page.locator("#task-card")
    expect(card).to_be_visible()
    seen: dict[str, str] = {}
    first = _card_lead(page)
    # Hot leads first, newest first: the two A leads came after the A+ one.
    assert first == "王芳"
    expect(page.locator("#task-reason")).to_contain_text("New A lead,")
    expect(page.locator("#task-reason")).to_contain_text("reach chance now")
    expect(page.locator("#task-action")).to_have_text("Call the lead")
    expect(page.locator("#task-phone")).to_have_attribute("href", "tel:+8613700137000")
    expect(page.locator("#task-cadence")).to_have_text("7 touches in 7 days · step 1 of 7")
    expect(page.locator("#task-attempt")).to_have_text("1 of 6")
    expect(page.locator("#task-script")).to_contain_text("Introduce yourself")
    expect(page.locator("#task-history")).to_contain_text("enrolled in")
    expect(card.locator("button[name=disposition]")).to_have_count(10)
    expect(card.locator("button[value=connected] kbd")).to_have_text("1")
    expect(card.locator("button[value=disqualified] kbd")).to_have_text("0")
    page.screenshot(path=SHOTS / "31-task-card.png", full_page=True)

    # 1. Connected, by the keyboard (1), with a note.
    page.fill("textarea[name=note]", "聊了十分钟，下周演示")
    page.locator("textarea[name=note]").blur()  # shortcuts are off while typing
    page.keyboard.press("1")
    expect(page.locator("#work-done")).to_have_text(f"Recorded “Connected” for {first}.")
    seen[first] = "connected"

    # 2. No answer, by clicking.
    second = _card_lead(page)
    assert second not in seen
    card.locator("button[value=no_answer]").click()
    expect(page.locator("#work-done")).to_have_text(f"Recorded “No answer” for {second}.")
    seen[second] = "no_answer"

    # The rep steps away and comes back: the task goes back, N brings it up again.
    third = _card_lead(page)
    assert third not in seen
    page.click("text=Put it back and take a break")
    expect(page.locator("#next-button")).to_be_visible()
    page.keyboard.press("n")
    expect(card).to_be_visible()
    assert _card_lead(page) == third

    # 3. Call back at 16:00: the time is asked for before anything is sent.
    card.locator("button[value=call_back]").click()
    callback = page.locator("input[name=callback_at]")
    expect(callback).to_be_visible()
    expect(callback).to_be_focused()
    expect(page.locator("#work-done")).to_have_count(0)  # nothing sent yet
    callback.fill("2026-11-26T16:00")
    card.locator("button[value=call_back]").click()
    expect(page.locator("#work-done")).to_have_text(f"Recorded “Call back” for {third}.")
    seen[third] = "call_back"

    # The workspace in Chinese, with a card on it.
    fourth = _card_lead(page)
    assert fourth not in seen
    page.click("a[data-lang=zh]")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page).to_have_url(re.compile(r"/work$"))
    assert _card_lead(page) == fourth  # the card in hand survives the reload
    expect(page.locator("nav.nav")).to_contain_text("工作台")
    expect(page.locator("#task-reason")).to_contain_text("为什么现在")
    expect(page.locator("#task-action")).to_have_text("给线索打电话")
    expect(card.locator("button[value=busy]")).to_contain_text("占线")
    page.screenshot(path=SHOTS / "32-task-card-zh.png", full_page=True)

    # 4. Busy (the 3 key): tried again in half an hour.
    page.keyboard.press("3")
    expect(page.locator("#work-done")).to_contain_text(fourth)
    seen[fourth] = "busy"

    # 5. Qualified.
    fifth = _card_lead(page)
    assert fifth not in seen
    card.locator("button[value=qualified]").click()
    expect(page.locator("#work-done")).to_contain_text(fifth)
    seen[fifth] = "qualified"

    # 6. Skip, which needs a reason (S opens it).
    sixth = _card_lead(page)
    assert sixth not in seen
    page.keyboard.press("s")
    reason = page.locator("#task-skip input[name=reason]")
    expect(reason).to_be_focused()
    reason.fill("客户在开会，下午再打")
    page.locator("#task-skip button[type=submit]").click()
    expect(page.locator("#work-done")).to_contain_text(sixth)
    seen[sixth] = "skipped"

    # The end of the queue: nothing due now, and when the next task is (the busy retry).
    expect(page.locator("#work-empty h2")).to_have_text("现在没有到期的任务")
    expect(page.locator("#work-empty")).to_contain_text("2026-11-26 10:3")
    page.screenshot(path=SHOTS / "33-work-empty-zh.png", full_page=True)

    # List mode: the callback, the retry and the skipped task are still on today's list.
    page.click("nav.subnav >> text=今日清单")
    expect(page.locator("h1")).to_have_text("今日任务")
    calls = page.locator("#channel-call")
    for name in (fourth, sixth, third):
        expect(calls).to_contain_text(name)
    expect(page.locator("#channel-call-afternoon")).to_contain_text(third)
    page.screenshot(path=SHOTS / "34-work-list-zh.png", full_page=True)
    context.close()

    # What the database says.
    session.rollback()
    session.expire_all()
    assert sorted(seen) == sorted(ids)
    done = {lead_names[t.lead_id]: t for t in session.scalars(
        select(Task).where(Task.disposition.is_not(None)))}
    assert {name: t.disposition for name, t in done.items()} == {
        n: d for n, d in seen.items() if d != "skipped"}
    assert done[first].note == "聊了十分钟，下周演示"
    callback_task = session.scalar(select(Task).where(Task.lead_id == ids[third],
                                                      Task.kind == TaskKind.CALLBACK))
    assert callback_task is not None
    assert callback_task.due_at == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # 16:00 local
    skipped = session.scalar(select(Activity).where(Activity.lead_id == ids[sixth],
                                                    Activity.kind == ActivityKind.TASK_SKIPPED))
    assert skipped is not None and "客户在开会，下午再打" in skipped.summary
    statuses = {name: session.get(Lead, lead_id).status  # type: ignore[union-attr]
                for name, lead_id in ids.items()}
    assert statuses[fifth] == LeadStatus.QUALIFIED
    for name in (first, second, third, fourth):
        assert statuses[name] == LeadStatus.WORKING, name
    assert statuses[sixth] == LeadStatus.ASSIGNED  # skipped: not touched yet
    session.rollback()


def test_a_manager_installs_a_preset_and_edits_its_steps(  # type: ignore[no-untyped-def]
    app_url: str, chromium_browser: Any, make_user, session: Session, office_clock: datetime
) -> None:
    from leadflow.cadences import service as cadences_service
    from leadflow.cadences.models import Cadence

    SHOTS.mkdir(exist_ok=True)
    manager = make_user(Role.MANAGER, name="陈经理")
    context = chromium_browser.new_context(viewport={"width": 1366, "height": 900},
                                           locale="en-US")
    page = context.new_page()
    page.goto(f"{app_url}/login")
    page.fill("input[name=email]", manager.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.click("nav.nav >> text=Cadences")
    expect(page.locator("h1")).to_have_text("Cadences")
    expect(page.locator("#sales-cadences .empty")).to_contain_text("install a preset")
    preset = page.locator("#preset-persistent6")
    preset.locator("input[name=name]").fill("坚持六次")
    preset.get_by_role("button", name="Install").click()
    expect(page.locator(".flash")).to_contain_text("The preset was installed.")
    rows = page.locator("#step-rows tr")
    expect(rows).to_have_count(6)

    # Add a seventh step: an SMS whose window ends before it starts.
    page.click("#add-step")
    expect(rows).to_have_count(7)
    new = rows.nth(6)
    expect(new.locator(".step-number")).to_have_text("7")
    new.locator("input[name$=day_offset]").fill("16")
    new.locator("input[name$=window_start]").fill("17:00")
    new.locator("input[name$=window_end]").fill("09:00")
    new.locator("select[name$=channel]").select_option("sms")
    new.locator("textarea[name$=body]").fill("{{ first_name }}，您好，方便通个电话吗？")
    rows.nth(1).get_by_role("button", name="Remove").click()  # drop the day-1 call
    expect(rows).to_have_count(6)
    page.get_by_role("button", name="Save").click()
    errors = page.locator("#form-errors")
    expect(errors).to_contain_text("Step 6")
    expect(errors).to_contain_text("the window must end after it starts")
    expect(page.locator("tr.row-error textarea[name$=body]")).to_have_value(
        "{{ first_name }}，您好，方便通个电话吗？")
    page.screenshot(path=SHOTS / "35-cadence-editor-error.png", full_page=True)
    page.locator("tr.row-error input[name$=window_end]").fill("18:00")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_have_text("The cadence was saved.")
    page.screenshot(path=SHOTS / "36-cadence-editor.png", full_page=True)
    context.close()

    session.rollback()
    cadence = session.scalar(select(Cadence).where(Cadence.name == "坚持六次"))
    assert cadence is not None
    steps = cadences_service.steps_of(session=session, cadence_id=cadence.id)
    assert [(s.day_offset, s.channel) for s in steps] == [
        (0, "call"), (2, "email"), (4, "call"), (9, "call"), (14, "voicemail"), (16, "sms")]
    session.rollback()
