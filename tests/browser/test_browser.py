"""The pages in Debian's Chromium: log in, import a Chinese CSV, review a lead, switch to 中文.

Screenshots land in ``tests/browser/screenshots/`` for a human look.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from leadflow.users.models import Role

CHROMIUM = Path("/usr/bin/chromium")
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def app_url(engine: Engine) -> Iterator[str]:
    """The app served by uvicorn on a free port, on the test database."""
    import uvicorn

    from leadflow.main import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Any]:
    """Debian's Chromium, headless, with no network of its own beyond the app."""
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


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
