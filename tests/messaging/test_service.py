"""The outbox and tracking on a real database: idempotency, do-not-contact, suppression,
quiet hours, machine and human opens and clicks, visits, unsubscribes, inbound replies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow.cadences.models import Cadence, Enrollment, EnrollmentStatus
from leadflow.leads.models import Activity, ActivityKind, Lead
from leadflow.messaging import rules, service
from leadflow.messaging.models import (
    Message,
    MessageStatus,
    Suppression,
    TrackingEvent,
    TrackingKind,
)
from leadflow.messaging.schemas import InboundKind
from leadflow.users.models import Role

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like "
           "Gecko) Version/17.5 Safari/605.1.15")
BODY = "Hi {{first_name}}, see https://corp.example/pricing and https://corp.example/demo"


def enqueue(session: Session, lead: Lead, now: datetime, key: str, **kw: Any) -> Message:
    message = service.enqueue(session=session, lead=lead, channel=kw.pop("channel", "email"),
                              subject=kw.pop("subject", "Hello"), body=kw.pop("body", BODY),
                              idempotency_key=key, now=now, **kw)
    session.commit()
    return message


def sent(session: Session, lead: Lead, now: datetime, key: str = "m:1") -> Message:
    """A message delivered an hour ago."""
    message = enqueue(session, lead, now - timedelta(hours=1), key)
    message.status = MessageStatus.SENT
    message.sent_at = now - timedelta(hours=1)
    session.commit()
    return message


def activities(session: Session, lead: Lead, kind: ActivityKind) -> list[Activity]:
    return list(session.scalars(select(Activity).where(Activity.lead_id == lead.id,
                                                       Activity.kind == kind)))


def enrolled(session: Session, lead: Lead, now: datetime) -> Enrollment:
    cadence = Cadence(name=f"c{lead.id}", description="", conditions={}, exit_on=[],
                      created_at=now, updated_at=now)
    session.add(cadence)
    session.flush()
    enrollment = Enrollment(lead_id=lead.id, cadence_id=cadence.id,
                            status=EnrollmentStatus.ACTIVE, started_at=now, updated_at=now)
    session.add(enrollment)
    session.commit()
    return enrollment


# --- outbox -------------------------------------------------------------------------------


def test_the_same_key_writes_one_message(session: Session, now: datetime,
                                         make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    first = enqueue(session, lead, now, "task:1")
    again = enqueue(session, lead, now, "task:1", body="other")
    assert first.id == again.id
    assert session.scalar(select(func.count()).select_from(Message)) == 1
    assert first.body == "Hi Anna, see https://corp.example/pricing and https://corp.example/demo"
    assert first.status == MessageStatus.PENDING and first.send_after == now


@pytest.mark.parametrize(("fields", "channel", "reason"), [
    ({"do_not_contact": True}, "email", "do not contact"),
    ({"email": None}, "email", "no email address"),
    ({}, "wechat", "no wechat address"),
])
def test_unreachable_leads_are_suppressed_with_the_reason(
        session: Session, now: datetime, make_lead: Callable[..., Lead], fields: dict[str, Any],
        channel: str, reason: str) -> None:
    message = enqueue(session, make_lead(now, **fields), now, "k", channel=channel)
    assert message.status == MessageStatus.SUPPRESSED and message.error == reason


def test_suppressed_addresses_get_nothing(session: Session, now: datetime,
                                          make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now, email="Anna@Customer.example")
    session.add(Suppression(channel="email", address="anna@customer.example",
                            reason="unsubscribed", created_at=now))
    session.commit()
    message = enqueue(session, lead, now, "k")
    assert message.status == MessageStatus.SUPPRESSED
    assert message.error == "suppressed: unsubscribed"


def test_quiet_hours_move_the_send_time_to_the_lead_morning(
        session: Session, make_lead: Callable[..., Lead]) -> None:
    night = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)  # 02:00 in Shanghai, 13:00 in New York
    shanghai = enqueue(session, make_lead(night), night, "a")
    new_york = enqueue(session, make_lead(night, custom_fields={"timezone": "America/New_York"}),
                       night, "b")
    assert shanghai.send_after == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)  # 08:00 Shanghai
    assert new_york.send_after == night


def test_enqueue_many_is_set_based_and_counts_what_it_did(
        session: Session, now: datetime, make_lead: Callable[..., Lead], make_user: Any) -> None:
    rep = make_user(Role.REP, name="李娜")
    leads = [make_lead(now, owner_id=rep.id) for _ in range(5)]
    leads.append(make_lead(now, do_not_contact=True))
    items = [service.Outgoing(lead_id=lead.id, channel="email", subject="Hi {{first_name}}",
                              body="{{rep_name}}", idempotency_key=f"s:{lead.id}")
             for lead in leads]
    items.append(items[0])  # the same step twice in one batch
    items.append(service.Outgoing(lead_id=leads[1].id, channel="email", subject="{% if %}",
                                  body="", idempotency_key="broken"))
    summary = service.enqueue_many(session=session, items=items, now=now)
    session.commit()
    assert summary.as_dict() == {"queued": 5, "deferred": 0, "suppressed": 1, "failed": 1,
                                 "duplicates": 1}
    again = service.enqueue_many(session=session, items=items, now=now)
    assert again.duplicates == len(items) and again.queued == 0
    assert session.scalar(select(Message.body).where(Message.lead_id == leads[0].id)) == "李娜"


# --- opens and clicks ---------------------------------------------------------------------


def test_a_person_opening_twice_is_one_timeline_entry(
        session: Session, now: datetime, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    message = sent(session, lead, now)
    for minutes in (0, 5):
        service.record_open(session=session, token=message.token, user_agent=BROWSER,
                            ip="203.0.113.7", now=now + timedelta(minutes=minutes))
    session.commit()
    assert len(activities(session, lead, ActivityKind.EMAIL_OPENED)) == 1
    assert message.opened_at == now
    events = session.scalars(select(TrackingEvent)).all()
    assert [e.machine for e in events] == [False, False]


@pytest.mark.parametrize(("agent", "delay", "reason"), [
    ("Mozilla/5.0 (via ggpht.com GoogleImageProxy)", 3600, "user agent: Gmail image proxy"),
    (BROWSER, 2, "open 2 s after delivery"),
])
def test_machine_opens_are_stored_but_move_nothing(
        session: Session, now: datetime, make_lead: Callable[..., Lead], agent: str, delay: int,
        reason: str) -> None:
    lead = make_lead(now)
    message = sent(session, lead, now)
    at = message.sent_at + timedelta(seconds=delay)  # type: ignore[operator]
    event = service.record_open(session=session, token=message.token, user_agent=agent,
                                ip="203.0.113.7", now=at)
    session.commit()
    assert event is not None and event.machine and event.machine_reason == reason
    assert activities(session, lead, ActivityKind.EMAIL_OPENED) == []
    assert message.opened_at is None


def test_unknown_tokens_record_nothing(session: Session, now: datetime) -> None:
    assert service.record_open(session=session, token="nope", user_agent=BROWSER, ip=None,
                               now=now) is None


def test_a_click_redirects_only_to_the_message_links(
        session: Session, now: datetime, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    message = sent(session, lead, now)
    target = service.record_click(session=session, token=message.token,
                                  url="https://corp.example/pricing", user_agent=BROWSER,
                                  ip="203.0.113.7", now=now)
    assert target is not None and target.startswith("https://corp.example/pricing?lf_v=")
    visitor = parse_qs(urlsplit(target).query)["lf_v"][0]
    assert service.lead_of_visitor(visitor) == lead.id
    for url in ("https://evil.example/", "javascript:alert(1)", "//evil.example"):
        assert service.record_click(session=session, token=message.token, url=url,
                                    user_agent=BROWSER, ip=None, now=now) is None
    session.commit()
    assert len(activities(session, lead, ActivityKind.EMAIL_CLICKED)) == 1
    assert message.clicked_at == now and message.opened_at == now


def test_a_scanner_clicking_every_link_at_once_is_taken_back(
        session: Session, now: datetime, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    message = sent(session, lead, now)
    for i, url in enumerate(("https://corp.example/pricing", "https://corp.example/demo")):
        service.record_click(session=session, token=message.token, url=url, user_agent=BROWSER,
                             ip="203.0.113.7", now=now + timedelta(milliseconds=300 * i))
    session.commit()
    events = session.scalars(select(TrackingEvent).order_by(TrackingEvent.id)).all()
    assert [(e.machine, e.machine_reason) for e in events] == [
        (True, rules.BURST_REASON), (True, rules.BURST_REASON)]
    assert activities(session, lead, ActivityKind.EMAIL_CLICKED) == []


def test_a_click_seconds_after_delivery_is_a_scanner(
        session: Session, now: datetime, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    message = sent(session, lead, now)
    target = service.record_click(session=session, token=message.token,
                                  url="https://corp.example/demo", user_agent=BROWSER, ip=None,
                                  now=message.sent_at + timedelta(seconds=1))  # type: ignore[operator]
    session.commit()
    assert target is not None  # the scanner still gets its redirect
    assert session.scalar(select(TrackingEvent.machine)) is True
    assert activities(session, lead, ActivityKind.EMAIL_CLICKED) == []


def test_website_visits_and_reading_time_are_activities(
        session: Session, now: datetime, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    visitor = service.visitor_id(lead.id)
    service.record_visit(session=session, visitor=visitor, url="https://corp.example/pricing",
                         kind="visit", seconds=0, user_agent=BROWSER, ip=None, now=now)
    service.record_visit(session=session, visitor=visitor, url="https://corp.example/pricing",
                         kind="read", seconds=90, user_agent=BROWSER, ip=None, now=now)
    service.record_visit(session=session, visitor=visitor, url="https://corp.example/blog",
                         kind="read", seconds=3, user_agent=BROWSER, ip=None, now=now)
    assert service.record_visit(session=session, visitor=visitor + "x", url="https://a.example",
                                kind="visit", seconds=0, user_agent=BROWSER, ip=None,
                                now=now) is None
    session.commit()
    assert [a.ref for a in activities(session, lead, ActivityKind.WEB_VISIT)] == [
        "https://corp.example/pricing"]
    assert [a.value for a in activities(session, lead, ActivityKind.CONTENT_READ)] == [1.5]


# --- unsubscribe, bounces, replies ----------------------------------------------------------


def test_unsubscribe_suppresses_pending_and_later_messages(
        session: Session, now: datetime, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    enrollment = enrolled(session, lead, now)
    message = sent(session, lead, now)
    pending = enqueue(session, lead, now, "m:2")
    for _ in range(2):
        assert service.unsubscribe(session=session, token=message.token, now=now,
                                   via="one-click") is not None
    session.commit()
    session.expire_all()
    assert session.get(Message, pending.id).status == MessageStatus.SUPPRESSED  # type: ignore[union-attr]
    assert enqueue(session, lead, now, "m:3").error == "suppressed: unsubscribed"
    assert len(activities(session, lead, ActivityKind.UNSUBSCRIBED)) == 1
    assert session.get(Enrollment, enrollment.id).status == EnrollmentStatus.EXITED  # type: ignore[union-attr]
    assert not session.get(Lead, lead.id).do_not_contact  # type: ignore[union-attr]


def test_out_of_office_pauses_until_the_return_date_and_is_no_reply(
        session: Session, now: datetime, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    enrollment = enrolled(session, lead, now)
    message = sent(session, lead, now)
    mid = rules.message_id(message.idempotency_key, message.token, "corp.example")
    result = service.record_inbound_reply(
        session=session, from_address=f"Anna <{lead.email}>", subject="Automatic reply: Hello",
        headers={"In-Reply-To": mid, "Auto-Submitted": "auto-replied"},
        text="I am out of the office and back on 3 December.", now=now)
    session.commit()
    assert result.kind == InboundKind.OUT_OF_OFFICE and result.return_date == date(2026, 12, 3)
    assert result.message_id == message.id
    session.expire_all()
    paused = session.get(Enrollment, enrollment.id)
    assert paused is not None and paused.status == EnrollmentStatus.PAUSED
    assert paused.paused_until == datetime(2026, 12, 3, 0, 0, tzinfo=UTC)  # 08:00 Shanghai
    assert activities(session, lead, ActivityKind.REPLIED) == []
    assert len(activities(session, lead, ActivityKind.OUT_OF_OFFICE)) == 1


def test_a_real_reply_is_a_reply_and_ends_the_cadence(
        session: Session, now: datetime, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    enrollment = enrolled(session, lead, now)
    sent(session, lead, now)
    later = enqueue(session, lead, now, "m:later", enrollment_id=enrollment.id,
                    send_after=now + timedelta(days=2))
    result = service.record_inbound_reply(
        session=session, from_address=lead.email.upper(), subject="Re: Hello",  # type: ignore[union-attr]
        headers={}, text="Yes, please call me tomorrow.", now=now)
    session.commit()
    assert result.kind == InboundKind.REPLY and result.lead_id == lead.id
    assert len(activities(session, lead, ActivityKind.REPLIED)) == 1
    session.expire_all()
    assert session.get(Enrollment, enrollment.id).status == EnrollmentStatus.EXITED  # type: ignore[union-attr]
    assert session.get(Message, later.id).status == MessageStatus.SUPPRESSED  # type: ignore[union-attr]


def test_mailto_unsubscribe_and_bounce_reports(
        session: Session, now: datetime, make_lead: Callable[..., Lead]) -> None:
    lead = make_lead(now)
    message = sent(session, lead, now)
    result = service.record_inbound_reply(
        session=session, from_address=lead.email or "", subject=f"unsubscribe {message.token}",
        headers={}, text="", now=now)
    assert result.kind == InboundKind.UNSUBSCRIBE
    other = make_lead(now)
    bounced = sent(session, other, now, key="m:b")
    mid = rules.message_id(bounced.idempotency_key, bounced.token, "corp.example")
    result = service.record_inbound_reply(
        session=session, from_address="MAILER-DAEMON@mx.customer.example",
        subject="Undelivered Mail Returned to Sender", headers={"References": mid}, text="",
        now=now)
    session.commit()
    assert result.kind == InboundKind.BOUNCE and result.lead_id == other.id
    assert bounced.status == MessageStatus.FAILED
    assert len(activities(session, other, ActivityKind.EMAIL_BOUNCED)) == 1
    assert service.record_inbound_reply(
        session=session, from_address="stranger@nowhere.example", subject="Hi", headers={},
        text="", now=now).kind == InboundKind.UNMATCHED


def test_reps_list_only_their_leads_messages(
        session: Session, now: datetime, make_lead: Callable[..., Lead], make_user: Any) -> None:
    rep, other = make_user(Role.REP), make_user(Role.REP)
    mine = enqueue(session, make_lead(now, owner_id=rep.id), now, "a")
    enqueue(session, make_lead(now, owner_id=other.id), now, "b")
    assert [m.id for m in service.list_messages(session=session, user=rep)] == [mine.id]
    admin = make_user(Role.ADMIN)
    assert len(service.list_messages(session=session, user=admin, channel="email")) == 2
    assert service.list_messages(session=session, user=admin, channel="sms") == []


def test_tracking_kinds_cover_the_events() -> None:
    assert {k.value for k in TrackingKind} >= {"open", "click", "visit", "read", "unsubscribe"}
