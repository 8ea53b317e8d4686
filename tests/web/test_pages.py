"""The HTML pages through the test client: login, scoping, CSRF, language, leads, imports."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from leadflow.cleaning.rules import MatchThresholds
from leadflow.leads.capture import IncomingRecord, capture_batch
from leadflow.leads.models import ImportJob, ImportStatus, Lead, LeadStatus
from leadflow.users.models import Role, User

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture(autouse=True)
def _browser_accept(request: pytest.FixtureRequest) -> None:
    """Ask for HTML like a browser does, so domain errors come back as pages."""
    if "client" in request.fixturenames:
        request.getfixturevalue("client").headers["Accept"] = "text/html,*/*;q=0.8"


def csrf(client: TestClient, page: str = "/leads") -> str:
    """The session's CSRF token, as a page shows it."""
    resp = client.get(page)
    assert resp.status_code == 200, resp.text
    match = CSRF_META.search(resp.text)
    assert match
    return match.group(1)


def capture(session: Session, now: datetime, *records: dict[str, str],
            source: str = "web", owner: User | None = None) -> list[int]:
    """Capture records as the API would; returns the lead id of each record."""
    incoming = [
        IncomingRecord(external_id=r.pop("external_id"), record=r, raw=dict(r), row_number=i + 2)
        for i, r in enumerate(records)
    ]
    result = capture_batch(session=session, records=incoming, source=source, campaign_id=None,
                           now=now, thresholds=MatchThresholds())
    ids = [r.lead_id for r in result.results]
    if owner is not None:
        session.execute(update(Lead).where(Lead.id.in_(ids)).values(owner_id=owner.id))
    session.commit()
    return [i for i in ids if i is not None]


def fresh_lead(session: Session, lead_id: int) -> Lead:
    """The lead as stored now (the app changed it in its own sessions)."""
    session.rollback()  # a new transaction: SQLite readers otherwise keep their snapshot
    lead = session.get(Lead, lead_id)
    assert lead is not None
    return lead


# --------------------------------------------------------------------------- login


def test_pages_redirect_to_login_with_next(client: TestClient) -> None:
    resp = client.get("/leads/7", follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login?next=/leads/7"
    assert client.get("/", follow_redirects=False).headers["location"] == "/leads"


def test_login_goes_to_next_but_never_off_site(client: TestClient, make_user) -> None:  # type: ignore[no-untyped-def]
    user = make_user(Role.MANAGER)
    token = csrf(client, "/login")
    resp = client.post("/login", data={"email": user.email, "password": "correct-horse-battery",
                                       "next": "//evil.example/x", "csrf": token},
                       follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/leads"
    assert user.name in client.get("/leads").text


def test_wrong_password_shows_the_form_again_with_401(client: TestClient, make_user) -> None:  # type: ignore[no-untyped-def]
    user = make_user(Role.REP)
    resp = client.post("/login", data={"email": user.email, "password": "nope-nope-nope",
                                       "csrf": csrf(client, "/login")})
    assert resp.status_code == 401
    assert "Wrong email or password." in resp.text
    assert 'name="email"' in resp.text and user.email in resp.text


def test_login_rotates_the_csrf_token(client: TestClient, make_user) -> None:  # type: ignore[no-untyped-def]
    user = make_user(Role.REP)
    before = csrf(client, "/login")
    client.post("/login", data={"email": user.email, "password": "correct-horse-battery",
                                "csrf": before})
    assert csrf(client) != before


def test_login_refuses_a_cross_site_post_and_a_wrong_token(  # type: ignore[no-untyped-def]
    client: TestClient, make_user
) -> None:
    user = make_user(Role.REP)
    form = {"email": user.email, "password": "correct-horse-battery"}
    resp = client.post("/login", data=form, headers={"Origin": "https://evil.example"},
                       follow_redirects=False)
    assert resp.status_code == 403
    resp = client.post("/login", data={**form, "csrf": "forged"}, follow_redirects=False)
    assert resp.status_code == 403
    assert client.get("/leads", follow_redirects=False).status_code == 303


def test_logout_needs_the_csrf_token(client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    login(Role.REP)
    assert client.post("/logout", follow_redirects=False).status_code == 403
    assert client.get("/leads").status_code == 200
    resp = client.post("/logout", data={"csrf": csrf(client)}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/login"
    assert client.get("/leads", follow_redirects=False).status_code == 303


# --------------------------------------------------------------------------- lead list


def test_rep_sees_only_own_leads(client: TestClient, login, make_user, session: Session,  # type: ignore[no-untyped-def]
                                 now: datetime) -> None:
    other = make_user(Role.REP)
    rep = login(Role.REP)
    (mine,) = capture(session, now,
                      {"external_id": "m", "name": "我的客户", "phone": "13800000001"}, owner=rep)
    (theirs,) = capture(session, now, {"external_id": "t", "name": "别人的客户",
                                       "phone": "13800000002"}, owner=other)
    page = client.get("/leads").text
    assert "我的客户" in page and "别人的客户" not in page
    assert client.get(f"/leads/{mine}").status_code == 200
    resp = client.get(f"/leads/{theirs}")
    assert resp.status_code == 404 and "别人的客户" not in resp.text


def test_lead_list_filters_and_htmx_gets_only_the_table(client: TestClient, login,  # type: ignore[no-untyped-def]
                                                        session: Session, now: datetime) -> None:
    login(Role.MANAGER)
    capture(session, now,
            {"external_id": "1", "name": "张伟", "phone": "13800138000", "company": "星辰科技"},
            {"external_id": "2", "name": "Amy Chen", "email": "amy@acme.com", "city": "Shanghai"})
    full = client.get("/leads", params={"q": "amy"})
    assert "Amy Chen" in full.text and "张伟" not in full.text and "<html" in full.text
    assert "+8613800138000" in client.get("/leads", params={"q": "138 0013 8000"}).text
    fragment = client.get("/leads", params={"q": "星辰"}, headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "张伟" in fragment.text
    assert "1 lead" in fragment.text
    # Bad filter values are ignored rather than answered with a JSON error.
    assert client.get("/leads", params={"status": "bogus", "page": "x"}).status_code == 200
    assert "Amy Chen" not in client.get("/leads", params={"status": "qualified"}).text


def test_lead_list_pages_by_fifty(client: TestClient, login, session: Session,  # type: ignore[no-untyped-def]
                                  now: datetime) -> None:
    login(Role.MANAGER)
    capture(session, now, *({"external_id": str(n), "name": f"客户{n:02d}",
                             "phone": f"139{n:08d}"} for n in range(55)))
    first = client.get("/leads").text
    assert "55 leads" in first and "Page 1 of 2" in first and first.count("<tr>") == 51
    assert 'href="/leads?page=2"' in first and "客户54" in first and "客户04" not in first
    second = client.get("/leads", params={"page": "2"}, headers={"HX-Request": "true"}).text
    assert second.count("<tr>") == 6 and "客户04" in second and "客户05" not in second
    assert 'hx-get="/leads?page=1"' in second


def test_times_are_shown_in_the_users_time_zone(client: TestClient, login, session: Session,  # type: ignore[no-untyped-def]
                                                now: datetime) -> None:
    login(Role.MANAGER)
    capture(session, now, {"external_id": "1", "name": "张伟", "phone": "13800138000"})
    # NOW is 02:00 UTC: 10:00 in Asia/Shanghai.
    assert now.strftime("%Y-%m-%d") + " 10:00" in client.get("/leads").text


# --------------------------------------------------------------------------- language


def test_language_switch_shows_chinese(client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    login(Role.MANAGER)
    assert ">Leads<" in client.get("/leads").text
    resp = client.get("/lang/zh", headers={"Referer": "http://testserver/campaigns"},
                      follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/campaigns"
    page = client.get("/leads").text
    assert '<html lang="zh-CN">' in page
    assert "线索" in page and "市场活动" in page and "退出登录" in page
    client.get("/lang/en")
    assert "线索" not in client.get("/leads").text


def test_accept_language_picks_chinese_before_login(client: TestClient) -> None:
    page = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}).text
    assert "登录" in page and "密码" in page
    page = client.get("/login", headers={"Accept-Language": "fr, en;q=0.5"}).text
    assert "Password" in page


def test_every_string_has_a_chinese_translation() -> None:
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    import leadflow
    from leadflow.web import render

    root = Path(leadflow.__file__).parent
    method_map = [("**/pages.py", "python"), ("web/render.py", "python"),
                  ("web/templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    extracted = {
        msg[2] if isinstance(msg[2], str) else msg[2][0]
        for msg in extract_from_dir(str(root), method_map, keywords=keywords)
    }
    po = render.TRANSLATIONS_DIR / "zh" / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as fh:
        catalog = read_po(fh)
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0])
        for m in catalog
        if m.id and m.string and all(m.string if isinstance(m.string, tuple) else [m.string])
        and not m.fuzzy
    }
    assert sorted(extracted - translated) == []


# --------------------------------------------------------------------------- lead detail


def test_lead_detail_shows_timeline_touchpoints_and_match_reasons(  # type: ignore[no-untyped-def]
    client: TestClient, login, session: Session, now: datetime
) -> None:
    login(Role.MANAGER)
    (lead_id,) = capture(session, now, {"external_id": "f-1", "name": "张伟",
                                        "phone": "13800138000", "company": "星辰科技",
                                        "tags": "VIP, 展会", "custom:预算": "50万"},
                         source="form")
    capture(session, now, {"external_id": "x-9", "name": "张伟", "phone": "+86 138 0013 8000",
                           "email": "zw@xingchen.cn"}, source="expo")
    page = client.get(f"/leads/{lead_id}").text
    assert "Timeline" in page and "Touchpoints" in page
    assert "form/f-1" in page and "x-9" in page and "expo" in page
    assert "Record expo/x-9 merged into this lead" in page
    assert "Matched on" in page and ">Phone<" in page and "similarity 100%" in page
    assert "zw@xingchen.cn" in page  # filled from the duplicate
    assert "VIP" in page and "预算" in page and "50万" in page
    client.get("/lang/zh")
    page = client.get(f"/leads/{lead_id}").text
    assert "时间线" in page and "触点" in page and "匹配依据" in page


def test_merge_and_undo_through_the_pages(client: TestClient, login, session: Session,  # type: ignore[no-untyped-def]
                                          now: datetime) -> None:
    login(Role.MANAGER)
    first, second = capture(
        session, now,
        {"external_id": "1", "name": "王芳", "phone": "13700000001", "company": "海风贸易"},
        {"external_id": "2", "name": "Fang Wang", "email": "fang@haifeng.cn", "city": "上海"},
    )
    token = csrf(client, f"/leads/{second}")
    assert client.post(f"/leads/{second}/merge", data={"other": str(first)},
                       follow_redirects=False).status_code == 403  # no token
    resp = client.post(f"/leads/{second}/merge", data={"other": f"#{first}", "csrf": token},
                       follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == f"/leads/{first}"
    survivor = fresh_lead(session, first)
    assert survivor.email == "fang@haifeng.cn" and survivor.city == "上海"
    assert fresh_lead(session, second).status == LeadStatus.MERGED

    page = client.get(f"/leads/{first}").text
    assert "The leads were merged." in page and "Undo merge" in page
    merge_id = re.search(rf'action="/leads/{first}/merges/(\d+)/undo"', page)
    assert merge_id
    banner = client.get(f"/leads/{second}").text
    assert f'href="/leads/{first}"' in banner and "was merged into" in banner

    resp = client.post(f"/leads/{first}/merges/{merge_id.group(1)}/undo",
                       data={"csrf": token}, follow_redirects=False)
    assert resp.status_code == 303
    assert fresh_lead(session, second).status == LeadStatus.NEW
    assert fresh_lead(session, first).email is None
    page = client.get(f"/leads/{first}").text
    assert "The merge was undone." in page and "Undo merge" not in page


def test_merge_needs_permission_and_a_lead_number(client: TestClient, login,  # type: ignore[no-untyped-def]
                                                  session: Session, now: datetime) -> None:
    rep = login(Role.REP)
    first, second = capture(session, now,
                            {"external_id": "1", "name": "甲", "phone": "13700000001"},
                            {"external_id": "2", "name": "乙", "phone": "13700000002"}, owner=rep)
    token = csrf(client)
    assert "Merge with lead" not in client.get(f"/leads/{first}").text
    resp = client.post(f"/leads/{second}/merge", data={"other": str(first), "csrf": token})
    assert resp.status_code == 403
    client.get("/lang/zh")
    client.post("/logout", data={"csrf": token})
    login(Role.MANAGER)
    resp = client.post(f"/leads/{second}/merge", data={"other": "abc", "csrf": csrf(client)})
    assert resp.status_code == 422 and "请输入要合并的线索编号" in resp.text


# --------------------------------------------------------------------------- imports

IMPORT_CSV = (
    "姓名,手机,公司,城市,备注\n"
    "张伟,13800138000,北京星辰科技有限公司,北京,老客户\n"
    "李娜,13900139000,上海云帆网络,上海,\n"
    "张伟,138 0013 8000,北京星辰科技有限公司,北京,重复\n"
    "王芳,12345,广州某公司,广州,坏号码\n"
)


def wait_for_job(session: Session, job_id: int, timeout: float = 20.0) -> ImportJob:
    """Poll the job the page started in its thread until it finishes."""
    deadline = time.monotonic() + timeout
    while True:
        session.expire_all()
        job = session.get(ImportJob, job_id)
        assert job is not None
        if job.status in (ImportStatus.DONE, ImportStatus.FAILED):
            session.rollback()  # end the read transaction before the app writes again
            return job
        session.rollback()
        if time.monotonic() > deadline:
            pytest.fail(f"import {job_id} still {job.status} after {timeout}s")
        time.sleep(0.2)


def test_import_upload_runs_to_a_report_with_rejects(client: TestClient, login,  # type: ignore[no-untyped-def]
                                                     session: Session) -> None:
    login(Role.MARKETER)
    token = csrf(client, "/imports")
    resp = client.post(
        "/imports",
        data={"source": "expo-2026", "campaign": "", "csrf": token},
        files={"file": ("展会 名单.csv", IMPORT_CSV.encode("utf-8-sig"), "text/csv")},
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    job_id = int(resp.headers["location"].rsplit("/", 1)[1])
    job = wait_for_job(session, job_id)
    assert job.status == ImportStatus.DONE, job.error
    assert (job.rows_read, job.created, job.merged, job.rejected) == (4, 2, 1, 1)
    assert Path(job.stored_path or "").name.endswith("_展会_名单.csv")

    report = client.get(f"/imports/{job_id}").text
    assert 'id="count-created">2<' in report and 'id="count-rejected">1<' in report
    assert "hx-trigger" not in report  # finished: no more polling
    assert "Rejected rows" in report and "12345" in report
    progress = client.get(f"/imports/{job_id}/progress").text
    assert "<html" not in progress and 'data-status="done"' in progress

    resp = client.get(f"/imports/{job_id}/rejects.csv")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))
    assert rows[0] == ["row_number", "field", "reason", "姓名", "手机", "公司", "城市", "备注"]
    assert rows[1][0] == "5" and rows[1][1] == "phone" and "12345" in rows[1][2]
    assert rows[1][3:] == ["王芳", "12345", "广州某公司", "广州", "坏号码"]
    assert "展会 名单.csv" in client.get("/imports").text


def test_import_progress_polls_while_running(client: TestClient, login,  # type: ignore[no-untyped-def]
                                             session: Session, now: datetime) -> None:
    user = login(Role.MANAGER)
    job = ImportJob(filename="big.csv", stored_path="/nonexistent/big.csv", source="s",
                    status=ImportStatus.RUNNING, rows_read=250, total_rows=1000,
                    created_by_id=user.id, created_at=now)
    session.add(job)
    session.commit()
    page = client.get(f"/imports/{job.id}").text
    assert f'hx-get="/imports/{job.id}/progress"' in page and 'hx-trigger="every 1s"' in page
    assert 'style="width: 25%"' in page and "250 of about 1,000 rows read" in page


def test_import_refuses_unknown_file_types_and_needs_permission(  # type: ignore[no-untyped-def]
    client: TestClient, login
) -> None:
    login(Role.MANAGER)
    token = csrf(client, "/imports")
    resp = client.post("/imports", data={"source": "x", "csrf": token},
                       files={"file": ("leads.exe", b"MZ", "application/octet-stream")})
    assert resp.status_code == 422 and "This file type cannot be imported." in resp.text
    resp = client.post("/imports", files={"file": ("a.csv", b"name\nx\n", "text/csv")})
    assert resp.status_code == 403  # no CSRF token
    client.post("/logout", data={"csrf": token})
    login(Role.REP)
    assert client.get("/imports").status_code == 403
    assert client.get("/imports/1/rejects.csv").status_code == 403


def test_failed_import_shows_the_error(client: TestClient, login, session: Session) -> None:  # type: ignore[no-untyped-def]
    login(Role.MANAGER)
    token = csrf(client, "/imports")
    resp = client.post("/imports", data={"source": "x", "csrf": token},
                       files={"file": ("broken.xlsx", b"not a workbook", "application/zip")},
                       follow_redirects=False)
    job = wait_for_job(session, int(resp.headers["location"].rsplit("/", 1)[1]))
    assert job.status == ImportStatus.FAILED
    page = client.get(f"/imports/{job.id}").text
    assert "The import failed." in page and 'data-status="failed"' in page


# --------------------------------------------------------------------------- campaigns


def test_campaign_create_and_list(client: TestClient, login, session: Session,  # type: ignore[no-untyped-def]
                                  now: datetime) -> None:
    login(Role.MARKETER)
    token = csrf(client, "/campaigns")
    form = {"name": "2026 上海用户大会", "channel": "user_conference", "cost": "12000",
            "currency": "CNY", "starts_on": "2026-12-01", "ends_on": "2026-12-02",
            "product_line": "CRM", "csrf": token}
    resp = client.post("/campaigns", data=form, follow_redirects=False)
    assert resp.status_code == 303
    page = client.get("/campaigns").text
    assert "2026 上海用户大会" in page and "User conference" in page and "Offline" in page
    assert "The campaign was created." in page and "2026-12-01" in page

    resp = client.post("/campaigns", data=form)
    assert resp.status_code == 409 and "already exists" in resp.text
    resp = client.post("/campaigns", data={**form, "name": "B", "ends_on": "2026-11-01"})
    assert resp.status_code == 422 and "The end date is before the start date." in resp.text
    client.get("/lang/zh")
    assert "用户大会" in client.get("/campaigns").text


def test_rep_sees_campaigns_without_the_create_form(client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    login(Role.REP)
    page = client.get("/campaigns")
    assert page.status_code == 200 and "New campaign" not in page.text
    resp = client.post("/campaigns", data={"name": "x", "channel": "seo",
                                           "csrf": csrf(client, "/campaigns")})
    assert resp.status_code == 403


def test_unknown_lead_is_a_404_page(client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    login(Role.ADMIN)
    resp = client.get("/leads/999999", headers={"Accept": "text/html"})
    assert resp.status_code == 404 and "Not found" in resp.text and "<html" in resp.text



@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/leads/5?tab=x", "/leads/5?tab=x"),
        ("//evil.example/", "/leads"),
        ("https://evil.example/", "/leads"),
        ("/\\evil.example", "/leads"),
        ("/leads\r\nSet-Cookie: x=1", "/leads"),
        ("leads", "/leads"),
        ("", "/leads"),
    ],
)
def test_redirect_targets_stay_on_site(target: str, expected: str) -> None:
    from leadflow.web.render import local_path

    assert local_path(target, "/leads") == expected


def test_lead_export_from_the_list_needs_permission_and_is_audited(client, login, session) -> None:  # type: ignore[no-untyped-def]
    from leadflow.audit.models import AuditEntry
    from leadflow.users.models import Role

    login(Role.ANALYST)
    assert 'href="/leads/export?format=csv"' in client.get("/leads").text
    resp = client.get("/leads/export?format=csv&q=nobody")
    assert resp.status_code == 200
    header = next(csv.reader(io.StringIO(resp.text.lstrip("\ufeff"))))
    assert header[:3] == ["id", "name", "phone"]
    entry = session.scalars(select(AuditEntry)).one()
    assert entry.action == "export" and entry.detail["filter"]["q"] == "nobody"


def test_reps_cannot_export(client, login) -> None:  # type: ignore[no-untyped-def]
    from leadflow.users.models import Role

    login(Role.REP)
    assert "/leads/export" not in client.get("/leads").text
    assert client.get("/leads/export?format=csv", headers={"accept": "text/html"}
                      ).status_code == 403
