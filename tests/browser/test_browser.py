"""The pages in Debian's Chromium: log in, import a Chinese CSV, review a lead, switch to 中文;
score and flag a grade; route leads: rules, the capacity board, the pool (公海), triage and the
lead page's ownership card.

Screenshots land in ``tests/browser/screenshots/`` for a human look.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest
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

LEADS_CSV = (
    "姓名,手机,公司,城市\n"
    "张伟,13800138000,北京星辰科技有限公司,北京\n"
    "李娜,13900139000,上海云帆网络技术有限公司,上海\n"
    "张伟,+86 138 0013 8000,北京星辰科技有限公司,北京\n"
    "王芳,12345,广州海风贸易有限公司,广州\n"
    "赵强,13700137000,深圳前海数据有限公司,深圳\n"
)


def test_import_review_and_switch_to_chinese(  # type: ignore[no-untyped-def]
    app_url: str, chromium_browser: Any, make_user, tmp_path: Path
) -> None:
    SHOTS.mkdir(exist_ok=True)
    user = make_user(Role.MANAGER, name="陈经理")
    context = chromium_browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    page = context.new_page()

    page.goto(f"{app_url}/leads")
    expect(page).to_have_url(re.compile(r"/login\?next=/leads$"))
    page.screenshot(path=SHOTS / "01-login.png")
    page.fill("input[name=email]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Leads")

    page.click("nav.nav >> text=Import")
    csv_path = tmp_path / "展会线索.csv"
    csv_path.write_text(LEADS_CSV, encoding="utf-8-sig")
    page.set_input_files("input[name=file]", str(csv_path))
    page.fill("input[name=source]", "expo-2026")
    page.screenshot(path=SHOTS / "02-import-form.png", full_page=True)
    page.click("button:has-text('Upload and import')")
    expect(page).to_have_url(re.compile(r"/imports/\d+$"))
    expect(page.locator("#job-status")).to_have_attribute("data-status", "done", timeout=20_000)
    expect(page.locator("#count-created")).to_have_text("3")
    expect(page.locator("#count-merged")).to_have_text("1")
    expect(page.locator("#count-rejected")).to_have_text("1")
    expect(page.locator("table")).to_contain_text("12345")
    page.screenshot(path=SHOTS / "03-import-report.png", full_page=True)

    page.click("nav.nav >> text=Leads")
    rows = page.locator("#lead-table tbody tr")
    expect(rows).to_have_count(3)
    # Imported leads are graded right after the import.
    expect(page.locator("#lead-table tbody .grade")).to_have_count(3)
    page.fill("input[name=q]", "李娜")  # HTMX swaps the table and pushes the URL
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=%E6%9D%8E%E5%A8%9C"))
    page.fill("input[name=q]", "")
    expect(rows).to_have_count(3)
    page.screenshot(path=SHOTS / "04-leads.png", full_page=True)

    page.click("#lead-table >> text=张伟")
    expect(page.locator("h1")).to_contain_text("张伟")
    timeline = page.locator(".timeline")
    expect(timeline).to_contain_text("merged into this lead")
    expect(timeline).to_contain_text("Matched on")
    expect(page.locator("text=Touchpoints")).to_be_visible()
    page.screenshot(path=SHOTS / "05-lead-detail.png", full_page=True)

    page.click("a[data-lang=zh]")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h2", has_text="时间线")).to_be_visible()
    expect(page.locator("nav.nav")).to_contain_text("线索")
    expect(timeline).to_contain_text("匹配依据")
    page.screenshot(path=SHOTS / "06-lead-detail-zh.png", full_page=True)

    page.click("nav.nav >> text=线索")
    expect(page.locator("h1")).to_have_text("线索")
    expect(page.locator(".table-meta")).to_contain_text("共 3 条线索")
    page.screenshot(path=SHOTS / "07-leads-zh.png", full_page=True)
    page.set_viewport_size({"width": 420, "height": 900})
    page.screenshot(path=SHOTS / "08-leads-zh-narrow.png", full_page=True)
    context.close()


def test_scoring_pages_charts_and_grade_flag(  # type: ignore[no-untyped-def]
    app_url: str, chromium_browser: Any, make_user, session, now
) -> None:
    from leadflow.leads.models import Lead
    from leadflow.scoring import learning
    from leadflow.scoring import service as scoring_service
    from leadflow.scoring.history import planted_history
    from leadflow.scoring.schemas import ActivityIn

    SHOTS.mkdir(exist_ok=True)
    admin = make_user(Role.ADMIN, name="管理员")
    frame, _ = planted_history(3000, seed=8)
    result = learning.train(frame, target="converted", id_column="lead_id", folds=3)
    model = scoring_service.store_model(session=session, result=result, source="history.csv",
                                        target="converted", id_column="lead_id", activate=False,
                                        actor_id=admin.id, now=now)
    lead = Lead(name="刘洋", phone="+8613812345678", industry="教育", title="市场总监",
                tags=[], custom_fields={}, created_at=now, updated_at=now)
    session.add(lead)
    session.flush()
    for kind in ("community_class", "community_class", "paid_consultation"):
        scoring_service.record_activity(session=session, lead=lead, actor_id=admin.id, now=now,
                                        activity=ActivityIn(kind=kind))
    session.commit()

    context = chromium_browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    page = context.new_page()
    page.goto(f"{app_url}/login")
    page.fill("input[name=email]", admin.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")

    page.click("nav.nav >> text=Scoring")
    expect(page.locator("h1")).to_have_text("Scoring and grading")
    expect(page.locator("#grade-chart .main-svg").first).to_be_visible(timeout=10_000)
    expect(page.locator("textarea[name=yaml]")).to_contain_text("community_class")
    page.screenshot(path=SHOTS / "09-scoring.png", full_page=True)

    page.click(f"a[href='/scoring/models/{model.id}'] >> nth=0")
    expect(page.locator("#lift-chart .main-svg").first).to_be_visible(timeout=10_000)
    expect(page.locator("#calibration-chart .main-svg").first).to_be_visible()
    expect(page.locator("body")).to_contain_text("Gradient-boosted trees")
    page.screenshot(path=SHOTS / "10-model-report.png", full_page=True)

    page.goto(f"{app_url}/leads/{lead.id}")
    card = page.locator("#score")
    expect(card.locator(".grade").first).to_have_text("A+")
    expect(card).to_contain_text("Paid consultation after a community course")
    expect(card).to_contain_text("attended community classes 2×")
    page.click("#score summary")
    page.select_option("select[name=suggested_grade]", "B")
    page.fill("input[name=reason]", "社群学员, 暂无采购预算")
    page.click("button:has-text('Flag the grade')")
    expect(page.locator(".flash")).to_contain_text("flagged")
    page.screenshot(path=SHOTS / "11-lead-score.png", full_page=True)

    page.click("a[data-lang=zh]")
    expect(page.locator("#score h2")).to_have_text("评分与等级")
    expect(page.locator("#score")).to_contain_text("参加社群课程")
    page.screenshot(path=SHOTS / "12-lead-score-zh.png", full_page=True)
    page.goto(f"{app_url}/scoring/calibration")
    expect(page.locator("body")).to_contain_text("社群学员, 暂无采购预算")
    expect(page.locator("#conversion-chart .main-svg").first).to_be_visible(timeout=10_000)
    page.screenshot(path=SHOTS / "13-calibration-zh.png", full_page=True)
    context.close()


# --------------------------------------------------------------------------- routing

# A Thursday, 10:00 in Shanghai: a working day and hour for reps with the default profile
# (09:00–18:00 on Chinese working days), whatever the wall clock says.
OFFICE_HOURS = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
TEAM = "华东销售"
_external_ids = count(1)

# Leads that arrive as B or worse (the catch-all rule parks them in the pool) and turn hot on
# their activities: crossing the MQL line routes them again, now by the hot-lead rule.
ZHOU = {"name": "周杰", "phone": "13900139001", "company": "上海云帆网络技术有限公司",
        "title": "市场总监", "industry": "软件/信息技术", "headcount": "300", "province": "上海"}
SUN = {"name": "孙丽", "phone": "13900139002", "company": "杭州数澜科技有限公司",
       "title": "技术总监", "industry": "软件/信息技术", "headcount": "500", "province": "浙江",
       "product_interest": "CRM", "email": "sunli@shulan.cn"}
WU = {"name": "吴磊", "phone": "13900139003", "company": "南京知行教育科技有限公司",
      "title": "总经理", "industry": "教育", "headcount": "120", "province": "江苏"}
# Stays cold (D): it waits in the pool for a rep to claim it.
MA = {"name": "马超", "phone": "13812345678", "company": "苏州小满贸易有限公司", "title": "采购"}
TO_A_PLUS = ("community_class", "paid_consultation")  # the "paid after a class" override
TO_A = ("meeting_booked",)


@pytest.fixture
def office_clock() -> Iterator[datetime]:
    """The app's clock (the server runs in this process) from ``OFFICE_HOURS``, ticking in
    real time, so reps can take leads and the timeline keeps its order."""
    from leadflow import clock

    started = time.monotonic()
    clock.set_clock(lambda: OFFICE_HOURS + timedelta(seconds=time.monotonic() - started))
    yield OFFICE_HOURS
    clock.set_clock(None)


def _log_in(chromium_browser: Any, app_url: str, user: User) -> tuple[Any, Any]:
    """A new browser context (its own cookies) with ``user`` logged in; its page."""
    context = chromium_browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    page = context.new_page()
    page.goto(f"{app_url}/login")
    page.fill("input[name=email]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Leads")
    return context, page


def _routing_org(session: Session, make_user: Any, *, hot_rule: bool) -> dict[str, Any]:
    """A manager and two reps of one sales team (A+ 5 and A 15 leads a day each), a public
    pool and a catch-all rule into it; with ``hot_rule``, A+/A leads go to the team first."""
    from leadflow import clock
    from leadflow.routing import service as routing_service
    from leadflow.routing.schemas import PoolIn, RuleConditions, RuleIn, TeamPolicyIn

    manager = make_user(Role.MANAGER, name="陈经理")
    li = make_user(Role.REP, team=TEAM, name="李娜")  # first in round-robin ties (lower id)
    wang = make_user(Role.REP, team=TEAM, name="王强")
    now = clock.now()
    routing_service.save_team_policy(session=session, team_id=li.team_id, now=now,
                                     data=TeamPolicyIn(capacity={"A+": 5, "A": 15},
                                                       sla_minutes={"A+": 30, "A": 60}))
    pool = routing_service.save_pool(session=session, data=PoolIn(name="华东公海"), now=now)
    routing_service.create_rule(session=session, actor_id=None, now=now,
                                data=RuleIn(name="其余线索进公海", pool_id=pool.id))
    if hot_rule:
        rule = routing_service.create_rule(session=session, actor_id=None, now=now, data=RuleIn(
            name="高意向线索", conditions=RuleConditions(grades=["A+", "A"]), team_id=li.team_id))
        routing_service.move_rule(session=session, rule_id=rule.id, offset=-1, now=now)
    session.commit()
    return {"manager": manager, "li": li, "wang": wang, "team_id": li.team_id, "pool": pool}


def _arrive(session: Session, record: dict[str, str], activities: tuple[str, ...] = ()) -> int:
    """A lead captured as the API does (scored and routed at once), then its activities
    (each re-scores it; crossing the MQL line routes it again)."""
    from leadflow import clock
    from leadflow.cleaning.rules import MatchThresholds
    from leadflow.leads.capture import IncomingRecord, capture_retrying
    from leadflow.leads.models import Lead
    from leadflow.scoring import service as scoring_service
    from leadflow.scoring.schemas import ActivityIn

    incoming = IncomingRecord(external_id=f"web-{next(_external_ids)}", record=record,
                              raw=dict(record))
    result = capture_retrying(session=session, records=[incoming], source="web",
                              campaign_id=None, now=clock.now(), thresholds=MatchThresholds())
    session.commit()
    lead_id = result.results[0].lead_id
    assert lead_id is not None
    for kind in activities:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        scoring_service.record_activity(session=session, lead=lead, actor_id=None,
                                        now=clock.now(), activity=ActivityIn(kind=kind))
        session.commit()
    return lead_id


def _owner(session: Session, lead_id: int) -> int | None:
    """The lead's owner as stored now (the app changed it in its own sessions)."""
    from leadflow.leads.models import Lead

    session.rollback()
    session.expire_all()
    lead = session.get(Lead, lead_id)
    assert lead is not None
    owner = lead.owner_id
    session.rollback()  # no read transaction left open against the app's writes
    return owner


def test_manager_adds_a_rule_and_watches_capacity_in_chinese(  # type: ignore[no-untyped-def]
    app_url: str, chromium_browser: Any, make_user, session: Session, office_clock: datetime
) -> None:
    SHOTS.mkdir(exist_ok=True)
    org = _routing_org(session, make_user, hot_rule=False)
    context, page = _log_in(chromium_browser, app_url, org["manager"])

    # 1. The rule table: add "A+/A to the sales team" at the end, then move it above the
    # catch-all rule.
    page.click("nav.nav >> text=Routing")
    expect(page.locator("h1")).to_have_text("Routing rules")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("其余线索进公海")
    expect(rows.nth(0)).to_contain_text("every lead")
    expect(rows.nth(0)).to_contain_text("Pool: 华东公海")
    form = page.locator("#rule-form")
    expect(form.locator("h2")).to_have_text("New rule")
    form.locator("input[name=name]").fill("高意向线索")
    form.locator("select[name=target]").select_option(label=TEAM)
    form.locator("input[name=grades][value='A+']").check()
    form.locator("input[name=grades][value='A']").check()
    expect(form.locator("input[name=is_active]")).to_be_checked()
    form.get_by_role("button", name="Add rule").click()
    expect(page).to_have_url(re.compile(r"/routing/rules$"))
    expect(page.locator(".flash")).to_have_text("The rule was added at the end of the table.")
    expect(rows).to_have_count(2)
    hot = rows.nth(1)
    expect(hot.locator("td").nth(1)).to_have_text("高意向线索")
    expect(hot).to_contain_text("Grade A+ / A")
    expect(hot).to_contain_text(f"Team: {TEAM}")
    expect(hot).to_contain_text("On")
    hot.get_by_role("button", name="Move up").click()
    expect(rows.nth(0).locator("td").nth(1)).to_have_text("高意向线索")
    expect(rows.nth(1).locator("td").nth(1)).to_have_text("其余线索进公海")
    expect(rows.nth(0).get_by_role("button", name="Move up")).to_be_disabled()
    expect(rows.nth(0).locator("td").nth(0)).to_have_text("1")
    page.screenshot(path=SHOTS / "14-routing-rules.png", full_page=True)

    # Leads arrive and warm up: the hot ones go to the team, round-robin; the cold one
    # waits in the pool.
    zhou = _arrive(session, ZHOU, TO_A_PLUS)
    sun = _arrive(session, SUN, TO_A)
    wu = _arrive(session, WU, TO_A_PLUS)
    ma = _arrive(session, MA)
    li, wang = org["li"], org["wang"]
    assert [_owner(session, x) for x in (zhou, sun, wu, ma)] == [li.id, wang.id, li.id, None]

    # 2. The capacity board: today's leads per grade against the daily capacity.
    page.click("nav.subnav >> text=Teams and capacity")
    expect(page.locator("h1")).to_have_text("Teams and capacity")
    board = page.locator(f"#team-{org['team_id']}")
    expect(board.locator("h2")).to_have_text(TEAM)
    expect(board).to_contain_text("Round-robin")
    expect(board).to_contain_text("A+ 30 min")
    li_row, wang_row = page.locator(f"#rep-{li.id}"), page.locator(f"#rep-{wang.id}")
    expect(li_row.locator("td").nth(0)).to_have_text("李娜")
    expect(li_row.locator(".chip")).to_have_text(["2 / 5 A+", "0 / 15 A"])
    expect(wang_row.locator(".chip")).to_have_text(["0 / 5 A+", "1 / 15 A"])
    expect(li_row.locator("td").nth(4)).to_have_text("2")  # open leads
    expect(wang_row.locator("td").nth(4)).to_have_text("1")
    expect(li_row).to_contain_text("Available now")
    expect(wang_row).to_contain_text("Available now")
    page.screenshot(path=SHOTS / "15-capacity-board.png", full_page=True)

    # The same pages in Chinese.
    page.click("a[data-lang=zh]")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page).to_have_url(re.compile(r"/routing/teams$"))
    expect(page.locator("h1")).to_have_text("团队与产能")
    expect(board).to_contain_text("轮询")
    expect(board).to_contain_text("每人每日产能")
    expect(li_row).to_contain_text("当前可接单")
    expect(li_row.locator(".chip")).to_have_text(["2 / 5 A+", "0 / 15 A"])
    expect(wang_row.locator(".chip")).to_have_text(["0 / 5 A+", "1 / 15 A"])
    page.screenshot(path=SHOTS / "16-capacity-board-zh.png", full_page=True)
    page.click("nav.subnav >> text=规则")
    expect(page.locator("h1")).to_have_text("分配规则")
    expect(rows.nth(0).locator("td").nth(1)).to_have_text("高意向线索")
    expect(page.locator("#rule-form h2")).to_have_text("新建规则")
    page.screenshot(path=SHOTS / "17-routing-rules-zh.png", full_page=True)
    page.click("nav.subnav >> text=线索池")
    expect(page.locator("h1")).to_have_text("线索池")
    pool_row = page.locator("table tbody tr", has_text="华东公海")
    expect(pool_row.locator(".badge")).to_have_text("公海")  # the kind, translated
    expect(pool_row.locator("td").nth(3)).to_have_text("1")  # 马超 waits there
    page.screenshot(path=SHOTS / "18-pools-zh.png", full_page=True)
    context.close()


def test_rep_claims_rejects_and_touches_leads_and_a_manager_reroutes(  # type: ignore[no-untyped-def]
    app_url: str, chromium_browser: Any, make_user, session: Session, office_clock: datetime
) -> None:
    SHOTS.mkdir(exist_ok=True)
    org = _routing_org(session, make_user, hot_rule=True)
    li, wang = org["li"], org["wang"]
    zhou = _arrive(session, ZHOU, TO_A_PLUS)
    _arrive(session, SUN, TO_A)
    wu = _arrive(session, WU, TO_A_PLUS)
    ma = _arrive(session, MA)
    assert [_owner(session, x) for x in (zhou, wu, ma)] == [li.id, li.id, None]

    # 3. The rep claims the cold lead from the pool: its phone is masked until then.
    rep_context, rep = _log_in(chromium_browser, app_url, li)
    rep.click("nav.nav >> text=Pool")
    expect(rep.locator("h1")).to_have_text("Lead pools")
    rep.click("table >> text=华东公海")
    expect(rep.locator("h1")).to_contain_text("华东公海")
    expect(rep.locator("#claim-limits")).to_have_text(
        "You claimed 0 of 10 leads today and hold 0 of 50 claimed leads.")
    row = rep.locator(f"#lead-{ma}")
    expect(rep.locator("table tbody tr")).to_have_count(1)
    expect(row).to_contain_text("马超")
    # The middle four digits hidden (how the country code shows is the mask's own business).
    expect(row.locator("td.mono")).to_have_text(re.compile(r"^\S*138\*{4}5678$"))
    expect(row.locator("a")).to_have_count(0)  # reps do not open unclaimed leads
    assert "12345678" not in rep.content()  # not even hidden in the HTML
    rep.screenshot(path=SHOTS / "19-pool-masked.png", full_page=True)
    row.get_by_role("button", name="Claim").click()
    expect(rep).to_have_url(re.compile(rf"/leads/{ma}$"))
    expect(rep.locator(".flash")).to_contain_text("The lead is yours now")
    expect(rep.locator("h1")).to_contain_text("马超")
    ownership = rep.locator("#ownership")
    expect(ownership.locator("dd").nth(0)).to_have_text(f"李娜 · {TEAM}")
    expect(ownership.locator("dd").nth(1)).to_contain_text("Claimed from a pool")
    expect(rep.locator("dd.mono", has_text="+8613812345678")).to_be_visible()
    rep.screenshot(path=SHOTS / "20-claimed-lead.png", full_page=True)

    # 4. The rep rejects a routed lead that does not fit, from its ownership card.
    rep.click("nav.nav >> text=Leads")
    expect(rep.locator("#lead-table tbody tr")).to_have_count(3)
    rep.click("#lead-table >> text=吴磊")
    expect(rep.locator("h1")).to_contain_text("吴磊")
    expect(ownership.locator("dd").nth(0)).to_have_text(f"李娜 · {TEAM}")
    ownership.locator("summary", has_text="Reject").click()
    reject = ownership.locator(f"form[action='/leads/{wu}/reject']")
    reject.locator("input[name=reason]").fill("只想要免费资料，没有采购计划")
    reject.get_by_role("button", name="Reject the lead").click()
    expect(rep).to_have_url(re.compile(r"/leads$"))
    expect(rep.locator(".flash")).to_have_text("The lead went to triage with your reason.")
    expect(rep.locator("#lead-table tbody tr")).to_have_count(2)
    expect(rep.locator("#lead-table")).not_to_contain_text("吴磊")

    # A manager hears of it, finds it in triage with the reason, and sends it to the team:
    # someone other than the rep who rejected it gets it.
    manager_context, manager = _log_in(chromium_browser, app_url, org["manager"])
    expect(manager.locator("nav.nav .badge")).to_have_text("1")  # one unread notice
    manager.click("nav.nav >> text=Notices")
    expect(manager.locator("table tbody tr")).to_have_count(1)
    expect(manager.locator("table tbody tr")).to_contain_text("Lead rejected")
    expect(manager.locator("table tbody tr")).to_contain_text(
        f"李娜 rejected lead {wu}: 只想要免费资料，没有采购计划")
    manager.click("nav.nav >> text=Routing")
    manager.click("nav.subnav >> text=Triage")
    expect(manager.locator("h1")).to_have_text("Triage")
    triaged = manager.locator(f"#lead-{wu}")
    expect(triaged).to_contain_text("吴磊")
    expect(triaged).to_contain_text("Rejected by 李娜")
    expect(triaged).to_contain_text("只想要免费资料，没有采购计划")
    expect(triaged.locator(".grade")).to_have_text("A+")
    manager.screenshot(path=SHOTS / "21-triage.png", full_page=True)
    triaged.locator("select[name=team_id]").select_option(label=TEAM)
    triaged.get_by_role("button", name="Send to team").click()
    expect(manager).to_have_url(re.compile(r"/routing/triage$"))
    expect(manager.locator(".flash")).to_have_text("The lead was rerouted to a rep.")
    expect(manager.locator(f"#lead-{wu}")).to_have_count(0)
    expect(manager.locator(".empty")).to_have_text("Nothing waits in triage.")
    manager.click("nav.nav >> text=Leads")
    manager.fill("input[name=q]", "吴磊")
    expect(manager.locator("#lead-table tbody tr")).to_have_count(1)
    manager.click("#lead-table >> text=吴磊")
    card = manager.locator("#ownership")
    expect(card.locator("dd").nth(0)).to_have_text(f"王强 · {TEAM}")
    expect(card.locator("dd").nth(1)).to_contain_text("Rerouted")
    expect(card.locator("dd").nth(1)).to_contain_text("rerouted by 陈经理")
    assert _owner(session, wu) == wang.id
    manager_context.close()

    # 5. The rep calls a hot lead and logs it: the first touch stops the SLA clock.
    rep.click("#lead-table >> text=周杰")
    expect(rep.locator("h1")).to_contain_text("周杰")
    due = ownership.locator("dd").nth(4)
    expect(due).to_have_text("2026-11-26 10:30")  # A+: 30 minutes (Shanghai time)
    ownership.locator("#touch-kind").select_option(label="Call")
    ownership.locator("input[name=summary]").fill("已电话沟通，约了周五演示")
    ownership.get_by_role("button", name="Log", exact=True).click()
    expect(rep).to_have_url(re.compile(rf"/leads/{zhou}#ownership$"))
    expect(rep.locator(".flash")).to_have_text("The touch was logged.")
    expect(due).to_have_text(re.compile(r"^Touched 2026-11-26 10:\d\d$"))
    expect(rep.locator(".page-head .badge", has_text="Working")).to_be_visible()
    first = rep.locator(".timeline .timeline-item").first
    expect(first.locator(".badge")).to_have_text("Call")
    expect(first).to_contain_text("已电话沟通，约了周五演示")
    rep.evaluate("window.scrollTo(0, 0)")  # the #ownership anchor scrolled it down
    rep.screenshot(path=SHOTS / "22-touch-logged.png", full_page=True)
    rep_context.close()
