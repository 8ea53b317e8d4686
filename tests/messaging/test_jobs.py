"""Delivery through a real local SMTP server: headers, idempotency, crash recovery, retries,
bounces, SMS and WeChat through the outbox and a signed webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from leadflow.config import get_settings
from leadflow.leads.models import Activity, ActivityKind, Lead
from leadflow.messaging import jobs, service
from leadflow.messaging.models import Message, MessageStatus, Suppression
from leadflow.messaging.providers import (
    Envelope,
    HttpWebhookProvider,
    PermanentFailure,
    TemporaryFailure,
    sign_webhook,
)

Sink = Any  # tests/messaging/conftest.py: what the local SMTP server received


def _enqueue(session: Session, lead: Lead, now: datetime, key: str, **kw: Any) -> Message:
    message = service.enqueue(
        session=session, lead=lead, channel=kw.pop("channel", "email"),
        subject=kw.pop("subject", "Hello {{first_name}}"),
        body=kw.pop("body", "Dear {{first_name}} at {{company}},\nsee https://corp.example/pricing "
                            "and https://corp.example/demo?x=1.\n{{rep_name}}"),
        idempotency_key=key, now=now, **kw)
    session.commit()
    return message


def _status(session: Session, message_id: int) -> Message:
    session.expire_all()
    found = session.get(Message, message_id)
    assert found is not None
    return found


def test_delivers_with_tracking_and_unsubscribe_headers(
        session: Session, now: datetime, smtp: Sink, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now, name="Anna Schmidt", company="Acme")
    message = _enqueue(session, lead, now, "task:1")

    summary = jobs.deliver_pending(now=now, worker_id="w1")

    assert summary.sent == 1 and summary.claimed == 1
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert smtp.envelopes[0] == ("sales@corp.example", [lead.email])
    assert mail["Subject"] == "Hello Anna"
    token = message.token
    assert mail["Message-ID"].startswith("<") and f".{token}@corp.example>" in mail["Message-ID"]
    assert mail["List-Unsubscribe"].strip() == (
        f"<mailto:sales@corp.example?subject=unsubscribe%20{token}>, "
        f"<https://t.corp.example/u/{token}>")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Dear Anna at Acme" in text
    assert f"https://t.corp.example/t/c/{token}?u=https%3A%2F%2Fcorp.example%2Fpricing" in text
    assert "https://corp.example/pricing " not in text  # every link is tracked
    assert f'src="https://t.corp.example/t/o/{token}.gif"' in html
    assert f"https://t.corp.example/u/{token}" in html
    stored = _status(session, message.id)
    assert stored.status == MessageStatus.SENT
    assert stored.sent_at is not None and now <= stored.sent_at < now + timedelta(seconds=5)
    assert stored.provider_ref == mail["Message-ID"]


def test_enqueue_and_deliver_twice_sends_once(
        session: Session, now: datetime, smtp: Sink, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    first = _enqueue(session, lead, now, "task:7")
    second = _enqueue(session, lead, now, "task:7", subject="Another subject")

    jobs.deliver_pending(now=now, worker_id="w1")
    jobs.deliver_pending(now=now + timedelta(minutes=5), worker_id="w2")

    assert first.id == second.id
    assert session.scalar(select(Message.subject).where(Message.id == first.id)) != \
        "Another subject"
    assert len(smtp.messages) == 1


def test_lease_expired_message_is_resent_with_the_same_message_id(
        session: Session, now: datetime, smtp: Sink, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    message = _enqueue(session, lead, now, "task:9")
    # A worker claimed the message, sent it and died before recording the outcome.
    from leadflow.db import session_scope

    with session_scope() as s:
        claimed = jobs.claim(session=s, now=now, limit=10, lease_s=60)
    assert [r.id for r in claimed] == [message.id]
    assert jobs.deliver_pending(now=now + timedelta(seconds=30), worker_id="w2").claimed == 0
    from leadflow.messaging.providers import SmtpEmailProvider

    provider = SmtpEmailProvider(get_settings())
    row = claimed[0]
    provider.send(Envelope(id=row.id, token=row.token, idempotency_key=row.idempotency_key,
                           lead_id=row.lead_id, channel=row.channel, to_address=row.to_address,
                           subject=row.subject, body=row.body))
    provider.close()

    summary = jobs.deliver_pending(now=now + timedelta(seconds=61), worker_id="w2")

    assert summary.sent == 1
    assert len(smtp.messages) == 2
    assert smtp.messages[0]["Message-ID"] == smtp.messages[1]["Message-ID"]
    stored = _status(session, message.id)
    assert stored.status == MessageStatus.SENT and stored.attempts == 2


def test_server_down_retries_with_backoff_then_fails(
        session: Session, now: datetime, smtp: Sink, make_lead: Callable[..., Lead],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_MESSAGE_MAX_ATTEMPTS", "2")
    get_settings.cache_clear()
    message = _enqueue(session, make_lead(now), now, "task:11")
    smtp.down = True

    first = jobs.deliver_pending(now=now, worker_id="w1")
    stored = _status(session, message.id)
    assert first.retried == 1
    assert stored.status == MessageStatus.PENDING
    assert timedelta(minutes=1) <= stored.send_after - now < timedelta(minutes=1, seconds=5)
    assert "421" in (stored.error or "")
    assert jobs.deliver_pending(now=now + timedelta(seconds=30), worker_id="w1").claimed == 0

    second = jobs.deliver_pending(now=now + timedelta(minutes=2), worker_id="w1")
    assert second.failed == 1
    assert _status(session, message.id).status == MessageStatus.FAILED
    assert smtp.messages == []


def test_recovers_after_an_outage(
        session: Session, now: datetime, smtp: Sink, make_lead: Callable[..., Lead]) -> None:
    message = _enqueue(session, make_lead(now), now, "task:12")
    smtp.down = True
    jobs.deliver_pending(now=now, worker_id="w1")
    smtp.down = False
    jobs.deliver_pending(now=now + timedelta(minutes=2), worker_id="w1")
    assert _status(session, message.id).status == MessageStatus.SENT
    assert len(smtp.messages) == 1


def test_refused_recipient_is_a_bounce(
        session: Session, now: datetime, smtp: Sink, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now, email="bounce@customer.example")
    good = make_lead(now)
    bounced = _enqueue(session, lead, now, "task:13")
    sent = _enqueue(session, good, now, "task:14")
    later = _enqueue(session, lead, now, "task:15", send_after=now + timedelta(hours=1))

    summary = jobs.deliver_pending(now=now, worker_id="w1")

    assert summary.bounced == 1 and summary.sent == 1
    assert _status(session, bounced.id).status == MessageStatus.FAILED
    assert _status(session, sent.id).status == MessageStatus.SENT  # the connection survived
    assert _status(session, later.id).status == MessageStatus.SUPPRESSED
    assert session.scalar(select(Suppression.reason).where(
        Suppression.address == "bounce@customer.example")) == "bounced"
    assert session.scalar(select(Activity.kind).where(
        Activity.lead_id == lead.id, Activity.kind == ActivityKind.EMAIL_BOUNCED)) is not None


def test_many_messages_share_one_connection_and_each_arrives_once(
        session: Session, now: datetime, smtp: Sink, make_lead: Callable[..., Lead]) -> None:
    leads = [make_lead(now) for _ in range(30)]
    summary = service.enqueue_many(session=session, now=now, items=[
        service.Outgoing(lead_id=lead.id, channel="email", subject="Hi {{first_name}}",
                         body="https://corp.example/a", idempotency_key=f"step:{lead.id}")
        for lead in leads])
    session.commit()
    assert summary.queued == 30

    total = jobs.deliver_due(worker_id="w1", limit=7)

    assert total.sent == 30
    assert sorted(smtp.by_message_id().values()) == [1] * 30


def test_sms_and_wechat_go_to_the_outbox(
        session: Session, now: datetime, smtp: Sink, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now, wechat_id="anna_wx")
    sms = _enqueue(session, lead, now, "sms:1", channel="sms", subject="", body="{{first_name}}，您好")
    wechat = _enqueue(session, lead, now, "wx:1", channel="wechat", subject="", body="Hi")

    jobs.deliver_pending(now=now, worker_id="w1")

    for message in (sms, wechat):
        stored = _status(session, message.id)
        assert stored.provider == "outbox" and stored.status == MessageStatus.SENT
        assert stored.provider_ref == f"outbox:{message.id}"
    assert _status(session, sms.id).body == "Anna，您好"
    assert _status(session, sms.id).to_address == lead.phone
    assert smtp.messages == []


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]], list[int]]]:
    """A real local HTTP server standing in for an SMS gateway: it records each request and
    answers with the next status of ``statuses``."""
    seen: list[tuple[dict[str, str], bytes]] = []
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((dict(self.headers.items()), body))
            status = statuses.pop(0) if statuses else 200
            payload = json.dumps({"id": f"gw-{len(seen)}"} if status == 200 else
                                 {"error": "no"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/send", seen, statuses
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_provider_signs_and_classifies_answers(
        gateway: tuple[str, list[tuple[dict[str, str], bytes]], list[int]]) -> None:
    url, seen, statuses = gateway
    statuses.extend([200, 503, 400])
    provider = HttpWebhookProvider(url, "s3cret")
    envelope = Envelope(id=1, token="tok", idempotency_key="sms:1", lead_id=2, channel="sms",
                        to_address="+8613800000000", subject="", body="您好")
    try:
        assert provider.send(envelope) == "gw-1"
        with pytest.raises(TemporaryFailure):
            provider.send(envelope)
        with pytest.raises(PermanentFailure):
            provider.send(envelope)
    finally:
        provider.close()
    headers, body = seen[0]
    assert json.loads(body)["body"] == "您好"
    assert headers["Idempotency-Key"] == "sms:1"
    assert headers["X-Leadflow-Signature"] == sign_webhook(
        "s3cret", headers["X-Leadflow-Timestamp"], body)


def test_sms_goes_through_the_webhook_when_configured(
        session: Session, now: datetime, make_lead: Callable[..., Lead],
        monkeypatch: pytest.MonkeyPatch,
        gateway: tuple[str, list[tuple[dict[str, str], bytes]], list[int]]) -> None:
    url, seen, _ = gateway
    monkeypatch.setenv("LEADFLOW_SMS_WEBHOOK_URL", url)
    get_settings.cache_clear()
    try:
        message = _enqueue(session, make_lead(now), now, "sms:2", channel="sms", subject="",
                           body="{{first_name}}，您好")
        assert message.provider == "webhook"
        assert jobs.deliver_pending(now=now, worker_id="w1").sent == 1
    finally:
        get_settings.cache_clear()
    assert _status(session, message.id).provider_ref == "gw-1"
    assert json.loads(seen[0][1])["to"] == message.to_address


def test_chinese_subject_and_sender_arrive_intact(
        session: Session, now: datetime, smtp: Sink, make_lead: Callable[..., Lead],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_MAIL_FROM", "李娜 <lina@corp.example>")
    get_settings.cache_clear()
    lead = make_lead(now, name="张伟", company="示例科技")
    _enqueue(session, lead, now, "zh:1", subject="{{first_name}}您好：{{company}}的试用\r\nBcc: x@y",
             body="详情见 https://corp.example/试用。")
    jobs.deliver_pending(now=now, worker_id="w1")
    mail = smtp.messages[0]
    assert mail["Subject"] == "张伟您好：示例科技的试用 Bcc: x@y"  # no header injection
    assert mail["Bcc"] is None
    assert mail["From"].addresses[0].display_name == "李娜"
    assert "详情见 https://t.corp.example/t/c/" in mail.get_body(("plain",)).get_content()


def test_two_workers_at_once_send_each_message_once(
        session: Session, now: datetime, smtp: Sink, make_lead: Callable[..., Lead]) -> None:
    leads = [make_lead(now) for _ in range(60)]
    service.enqueue_many(session=session, now=now, items=[
        service.Outgoing(lead_id=lead.id, channel="email", subject="Hi", body="b",
                         idempotency_key=f"par:{lead.id}") for lead in leads])
    session.commit()
    results: list[jobs.DeliverySummary] = []

    def work(name: str) -> None:
        results.append(jobs.deliver_due(worker_id=name, limit=5))

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.sent for r in results) == 60
    assert sorted(smtp.by_message_id().values()) == [1] * 60
