"""The public tracking endpoints, the unsubscribe page, the messaging API and the outbox
page through the app."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from leadflow.leads.models import Activity, ActivityKind, Lead
from leadflow.messaging import rules, service
from leadflow.messaging.models import Message, MessageStatus, Suppression, TrackingEvent
from leadflow.users.models import Role, User

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


def sent(session: Session, lead: Lead, now: datetime, key: str = "m:1", **kw: Any) -> Message:
    message = service.enqueue(
        session=session, lead=lead, channel=kw.pop("channel", "email"),
        subject=kw.pop("subject", "Hello"),
        body=kw.pop("body", "See https://corp.example/pricing and https://corp.example/demo"),
        idempotency_key=key, now=now - timedelta(hours=1), **kw)
    message.status = MessageStatus.SENT
    message.sent_at = now - timedelta(hours=1)
    session.commit()
    return message


def test_open_pixel_is_a_gif_even_for_unknown_tokens(
        client: TestClient, session: Session, now: datetime,
        make_lead: Callable[..., Lead]) -> None:
    message = sent(session, make_lead(now), now)
    for token in (message.token, "unknown"):
        resp = client.get(f"/t/o/{token}.gif", headers={"User-Agent": BROWSER})
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "image/gif"
        assert resp.content.startswith(b"GIF89a")
        assert "no-store" in resp.headers["cache-control"]
    assert session.scalar(select(TrackingEvent.machine)) is False


def test_click_redirects_to_the_link_and_refuses_others(
        client: TestClient, session: Session, now: datetime,
        make_lead: Callable[..., Lead]) -> None:
    message = sent(session, make_lead(now), now)
    resp = client.get(f"/t/c/{message.token}?u={quote('https://corp.example/demo', safe='')}",
                      headers={"User-Agent": BROWSER}, follow_redirects=False)
    assert resp.status_code == 302
    assert resp.headers["location"].startswith("https://corp.example/demo?lf_v=")
    evil = client.get(f"/t/c/{message.token}?u={quote('https://evil.example/', safe='')}",
                      follow_redirects=False)
    assert evil.status_code == 404 and "location" not in evil.headers


def test_snippet_and_beacon_record_a_visit(
        client: TestClient, session: Session, now: datetime,
        make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    script = client.get("/t/snippet.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert '"lf_v"' in script.text and "sendBeacon" in script.text
    body = json.dumps({"v": service.visitor_id(lead.id), "u": "https://corp.example/pricing",
                       "k": "visit", "s": 0})
    resp = client.post("/t/v", content=body, headers={"Content-Type": "text/plain",
                                                      "User-Agent": BROWSER})
    assert resp.status_code == 204
    assert client.post("/t/v", content="garbage").status_code == 204
    assert session.scalar(select(Activity.ref).where(
        Activity.lead_id == lead.id, Activity.kind == ActivityKind.WEB_VISIT)) == \
        "https://corp.example/pricing"


def test_one_click_unsubscribe_suppresses_later_sends(
        client: TestClient, session: Session, now: datetime,
        make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    message = sent(session, lead, now)
    resp = client.post(f"/u/{message.token}", content="List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 200 and resp.text == "unsubscribed"
    assert session.scalar(select(Suppression.address)) == lead.email
    later = service.enqueue(session=session, lead=lead, channel="email", subject="s", body="b",
                            idempotency_key="m:2", now=now)
    assert later.status == MessageStatus.SUPPRESSED


def test_unsubscribe_page_asks_first_in_the_lead_language(
        client: TestClient, session: Session, now: datetime,
        make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now, language="zh", email="zhangwei@customer.example")
    message = sent(session, lead, now)
    page = client.get(f"/u/{message.token}")
    assert page.status_code == 200 and 'lang="zh-CN"' in page.text
    assert "停止向 z***@customer.example 发送所有邮件？" in page.text
    assert "z***@customer.example" in page.text and "zhangwei@" not in page.text
    assert session.scalar(select(Suppression.id)) is None  # a GET (a scanner) changes nothing
    english = client.get(f"/u/{message.token}?lang=en")
    assert "Unsubscribe" in english.text and 'method="post"' in english.text
    done = client.post(f"/u/{message.token}?lang=en", data={})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert client.get(f"/u/{message.token}?lang=en").text.count("You are unsubscribed") == 1
    assert client.get("/u/unknown").status_code == 404


def test_inbound_webhook_needs_a_token_and_tells_ooo_from_replies(
        client: TestClient, session: Session, now: datetime, make_lead: Callable[..., Lead],
        api_token: Any) -> None:
    lead = make_lead(now)
    message = sent(session, lead, now)
    payload = {"from": f"Anna <{lead.email}>", "subject": "Out of Office: Hello",
               "headers": {"In-Reply-To": rules.message_id(message.idempotency_key,
                                                           message.token, "corp.example")},
               "text": "Back on 3 December"}
    assert client.post("/api/v1/messages/inbound", json=payload).status_code == 401
    headers = api_token(Role.MARKETER)
    ooo = client.post("/api/v1/messages/inbound", json=payload, headers=headers)
    assert ooo.status_code == 200, ooo.text
    assert ooo.json() == {"kind": "out_of_office", "lead_id": lead.id, "message_id": message.id,
                          "return_date": "2026-12-03"}
    reply = client.post("/api/v1/messages/inbound", headers=headers, json={
        "from": lead.email, "subject": "Re: Hello", "text": "Interested!"})
    assert reply.json()["kind"] == "reply"
    assert client.post("/api/v1/messages/inbound", json=payload,
                       headers=api_token(Role.ANALYST)).status_code == 403


def test_message_list_is_scoped_to_the_caller(
        client: TestClient, session: Session, now: datetime, make_lead: Callable[..., Lead],
        api_token: Any) -> None:
    headers = api_token(Role.REP, email="rep@example.com")
    me = session.scalar(select(User).where(User.email == "rep@example.com"))
    assert me is not None
    mine = sent(session, make_lead(now, owner_id=me.id), now, key="a")
    sent(session, make_lead(now), now, key="b")
    resp = client.get("/api/v1/messages", headers=headers)
    assert resp.status_code == 200
    assert [m["id"] for m in resp.json()] == [mine.id]
    assert client.get("/api/v1/messages?channel=fax", headers=headers).status_code == 422


def test_outbox_page_shows_messages_and_machine_traffic(
        client: TestClient, session: Session, now: datetime, make_lead: Callable[..., Lead],
        login: Any) -> None:
    login(Role.ADMIN)
    lead = make_lead(now, wechat_id="anna_wx")
    email = sent(session, lead, now)
    sent(session, lead, now, key="wx", channel="wechat", subject="", body="张总您好，资料已发送")
    service.record_open(session=session, token=email.token, user_agent="GoogleImageProxy",
                        ip=None, now=now)
    session.commit()
    page = client.get("/outbox")
    assert page.status_code == 200
    assert "张总您好，资料已发送" in page.text and "GoogleImageProxy" not in page.text
    assert "Gmail image proxy" in page.text
    only_wechat = client.get("/outbox?channel=wechat", headers={"HX-Request": "true"})
    assert "张总您好" in only_wechat.text and "Hello" not in only_wechat.text
    assert "<html" not in only_wechat.text
    client.get("/lang/zh")
    zh = client.get("/outbox")
    assert zh.status_code == 200 and "发件箱" in zh.text and "机器" in zh.text
