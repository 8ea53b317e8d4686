"""Messaging services: the outbox (enqueue one or thousands), tracking (opens, clicks, page
visits), unsubscribes, bounces and inbound replies.

Sending is not here: :mod:`leadflow.messaging.jobs` delivers what the outbox holds.

What the lead does becomes a timeline activity through :func:`scoring.service.record_activity`
(re-scored at once; crossing the MQL line routes the lead) and reaches the cadence through
``cadences.service.on_engagement`` / ``on_signal``. Machine traffic (scanners, image proxies)
is stored with its reason and does nothing else.

Unsubscribing suppresses the address on the message's channel (every later message to it,
from any cadence, nurture program or rep, is suppressed at enqueue and pending ones are
dropped) and ends the lead's enrollment; it does *not* set ``Lead.do_not_contact``, which
is a rep's decision about every channel (calls included).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from leadflow.cadences import service as cadences_service
from leadflow.cadences.models import Enrollment, EnrollmentStatus, ExitReason
from leadflow.config import Settings, get_settings
from leadflow.errors import InvalidInput
from leadflow.leads import service as leads_service
from leadflow.leads.models import Activity, ActivityKind, Lead, LeadStatus
from leadflow.messaging import rules
from leadflow.messaging.models import (
    Message,
    MessageStatus,
    Suppression,
    TrackingEvent,
    TrackingKind,
)
from leadflow.messaging.providers import provider_for_channel
from leadflow.messaging.schemas import InboundKind, MessageChannel
from leadflow.scoring import service as scoring_service
from leadflow.scoring.schemas import ActivityIn
from leadflow.users.models import User

# The query parameter the click redirect adds for the website snippet.
VISITOR_PARAM = "lf_v"
# Reading shorter than this is a bounce off the page, not reading.
MIN_READ_S = 10.0
_CHUNK = 2000
_UNSUBSCRIBE_SUBJECT = re.compile(r"^\s*unsubscribe\s+([A-Za-z0-9_-]{8,32})\s*$", re.IGNORECASE)


# --------------------------------------------------------------------------- outbox


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to enqueue; ``subject`` and ``body`` are templates (``{{first_name}}``)."""

    lead_id: int
    channel: str
    subject: str
    body: str
    idempotency_key: str
    task_id: int | None = None
    enrollment_id: int | None = None
    arm_id: int | None = None
    sender_id: int | None = None
    send_after: datetime | None = None


@dataclass(slots=True)
class EnqueueSummary:
    """What :func:`enqueue_many` did."""

    queued: int = 0
    deferred: int = 0  # queued, but moved past the lead's quiet hours
    suppressed: int = 0
    failed: int = 0  # the template did not render
    duplicates: int = 0  # the idempotency key was already there
    ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        """The counts as JSON."""
        return {"queued": self.queued, "deferred": self.deferred,
                "suppressed": self.suppressed, "failed": self.failed,
                "duplicates": self.duplicates}


@dataclass(frozen=True, slots=True)
class _Recipient:
    lead_id: int
    status: str
    do_not_contact: bool
    addresses: Mapping[str, str | None]
    timezone: str | None
    variables: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Policy:
    quiet: rules.QuietHours
    default_zone: ZoneInfo


def _policy(settings: Settings) -> _Policy:
    return _Policy(
        quiet=rules.QuietHours(rules.parse_hhmm(settings.quiet_hours_start),
                               rules.parse_hhmm(settings.quiet_hours_end)),
        default_zone=_zone(settings.default_timezone) or ZoneInfo("Asia/Shanghai"),
    )


@lru_cache(maxsize=256)
def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def normalise_address(channel: str, address: str | None) -> str | None:
    """The form an address is stored and suppressed in (emails in lower case)."""
    if address is None or not address.strip():
        return None
    address = address.strip()
    return address.lower() if channel == MessageChannel.EMAIL else address


def _insert(session: Session, table: Any) -> Any:
    """An INSERT that takes the engine's ``ON CONFLICT`` clauses."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _recipients(session: Session, lead_ids: Iterable[int]) -> dict[int, _Recipient]:
    """Everything rendering and the do-not-contact checks need, for many leads at once."""
    owner = aliased(User)
    found: dict[int, _Recipient] = {}
    ids = sorted(set(lead_ids))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        rows = session.execute(
            select(Lead.id, Lead.status, Lead.do_not_contact, Lead.email, Lead.phone,
                   Lead.wechat_id, Lead.name, Lead.company, Lead.title, Lead.city,
                   Lead.custom_fields["timezone"].as_string(), owner.name, owner.email)
            .outerjoin(owner, owner.id == Lead.owner_id)
            .where(Lead.id.in_(chunk)))
        for (lead_id, status, dnc, email, phone, wechat, name, company, title, city, tz,
             owner_name, owner_email) in rows:
            found[lead_id] = _Recipient(
                lead_id=lead_id, status=status, do_not_contact=bool(dnc),
                addresses={"email": email, "sms": phone, "wechat": wechat}, timezone=tz,
                variables=rules.lead_variables(name=name, company=company, title=title,
                                               city=city, rep_name=owner_name,
                                               rep_email=owner_email))
    return found


def _senders(session: Session, user_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """The variables of the reps who send messages themselves: their message is signed by
    them, not by the lead's owner."""
    ids = sorted(set(user_ids))
    found: dict[int, dict[str, str]] = {}
    for start in range(0, len(ids), _CHUNK):
        for uid, name, email in session.execute(select(User.id, User.name, User.email)
                                                .where(User.id.in_(ids[start:start + _CHUNK]))):
            found[uid] = {"rep_name": name or "", "rep_email": email or ""}
    return found


def _suppressed(session: Session, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The suppression reasons of (channel, address) pairs that are suppressed."""
    by_channel: dict[str, set[str]] = {}
    for channel, address in pairs:
        by_channel.setdefault(channel, set()).add(address)
    found: dict[tuple[str, str], str] = {}
    for channel, addresses in by_channel.items():
        values = sorted(addresses)
        for start in range(0, len(values), _CHUNK):
            for address, reason in session.execute(
                    select(Suppression.address, Suppression.reason).where(
                        Suppression.channel == channel,
                        Suppression.address.in_(values[start:start + _CHUNK]))):
                found[(channel, address)] = reason
    return found


def _row(item: Outgoing, recipient: _Recipient | None, sender: Mapping[str, str] | None,
         suppressed: Mapping[tuple[str, str], str], policy: _Policy, settings: Settings,
         now: datetime) -> dict[str, Any]:
    """The outbox row for one message: queued, deferred past quiet hours, or suppressed.

    1. Checks in order: unknown or merged lead, do-not-contact, no address on the channel,
       the address on the suppression list. A suppressed row is kept (status ``suppressed``,
       the reason in ``error``) so the step shows why nothing went out.
    2. Subject and body are rendered with the lead's variables (a rep's own message is
       signed by that rep); a template error fails the row.
    3. The send time moves out of the lead's quiet hours, in the lead's time zone
       (``custom_fields.timezone``, else the default).
    """
    channel = item.channel
    address = normalise_address(channel, recipient.addresses.get(channel)) if recipient else None
    status, error = MessageStatus.PENDING, None
    if recipient is None:
        status, error = MessageStatus.SUPPRESSED, "lead not found"
    elif recipient.status == LeadStatus.MERGED:
        status, error = MessageStatus.SUPPRESSED, "lead merged into another"
    elif recipient.do_not_contact:
        status, error = MessageStatus.SUPPRESSED, "do not contact"
    elif address is None:
        status, error = MessageStatus.SUPPRESSED, f"no {channel} address"
    elif (channel, address) in suppressed:
        status, error = MessageStatus.SUPPRESSED, f"suppressed: {suppressed[(channel, address)]}"
    subject, body = item.subject, item.body
    if recipient is not None:
        variables = dict(recipient.variables)
        if sender is not None:
            variables.update(sender)
        try:
            subject = rules.render_template(item.subject, variables)[:200]
            body = rules.render_template(item.body, variables)
        except rules.RenderError as exc:
            if status == MessageStatus.PENDING:
                status, error = MessageStatus.FAILED, str(exc)[:500]
    send_after = max(item.send_after or now, now)
    if status == MessageStatus.PENDING and recipient is not None:
        zone = _zone(recipient.timezone) or policy.default_zone
        send_after = rules.earliest_send(send_after, zone, policy.quiet)
    return {
        "idempotency_key": item.idempotency_key, "token": secrets.token_urlsafe(16),
        "lead_id": item.lead_id, "task_id": item.task_id, "enrollment_id": item.enrollment_id,
        "arm_id": item.arm_id, "sender_id": item.sender_id, "channel": channel,
        "provider": provider_for_channel(channel, settings), "to_address": address or "",
        "subject": subject, "body": body, "status": status.value, "send_after": send_after,
        "lease_until": None, "attempts": 0, "error": error, "provider_ref": None,
        "created_at": now, "sent_at": None, "opened_at": None, "clicked_at": None,
    }


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """Insert outbox rows, skipping those whose idempotency key (or token) is already there;
    returns (id, idempotency key) of the rows written.

    PostgreSQL: one ``INSERT … SELECT FROM unnest(<one array per column>)``. Its text is
    the same for any number of rows, so the driver keeps it parsed and prepared; a
    multi-row ``VALUES`` with a placeholder per value is parsed again by psycopg on every
    call, which cost a few tenths of a millisecond per row on the automatic-step path.
    """
    table = Message.__table__
    if session.get_bind().dialect.name != "postgresql":
        return [(i, key) for i, key in session.execute(
            _insert(session, table).on_conflict_do_nothing()
            .returning(table.c.id, table.c.idempotency_key), rows)]
    names = list(rows[0])
    dialect = session.get_bind().dialect
    arrays = ", ".join(f"%s::{table.c[n].type.compile(dialect=dialect)}[]" for n in names)
    columns = ", ".join(f'"{n}"' for n in names)
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute(f'INSERT INTO message ({columns}) SELECT * FROM unnest({arrays}) '
                    "ON CONFLICT DO NOTHING RETURNING id, idempotency_key",
                    [[row[n] for row in rows] for n in names])
        return [(i, key) for i, key in cur.fetchall()]


def _check_channel(channel: str) -> None:
    if channel not in MessageChannel.__members__.values():
        raise InvalidInput(f"{channel!r} is not a message channel "
                           f"({', '.join(MessageChannel)})", field="channel")


def enqueue_many(*, session: Session, items: Sequence[Outgoing], now: datetime
                 ) -> EnqueueSummary:
    """Write many messages to the outbox at once; each idempotency key is written once.

    Set-based: the leads, their owners, the senders and the suppression list are read in a
    few queries, the rows are inserted with ``INSERT … ON CONFLICT DO NOTHING`` (a key
    already there — a retried step, a second worker — is skipped and counted as a
    duplicate). See :func:`_row` for the checks. Flushes; the caller commits.
    """
    summary = EnqueueSummary()
    if not items:
        return summary
    for item in items:
        _check_channel(item.channel)
        if not item.idempotency_key or len(item.idempotency_key) > 80:
            raise InvalidInput("an idempotency key of 1–80 characters is required",
                               field="idempotency_key")
    settings = get_settings()
    policy = _policy(settings)
    recipients = _recipients(session, (i.lead_id for i in items))
    senders = _senders(session, (i.sender_id for i in items if i.sender_id is not None))
    pairs = []
    for item in items:
        recipient = recipients.get(item.lead_id)
        if recipient is not None:
            address = normalise_address(item.channel, recipient.addresses.get(item.channel))
            if address:
                pairs.append((item.channel, address))
    suppressed = _suppressed(session, pairs)
    rows = [_row(item, recipients.get(item.lead_id),
                 senders.get(item.sender_id) if item.sender_id else None,
                 suppressed, policy, settings, now) for item in items]
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        inserted = _insert_new(session, chunk)
        new_keys = {key for _, key in inserted}
        summary.ids.extend(i for i, _ in inserted)
        for row in chunk:
            if row["idempotency_key"] not in new_keys:
                summary.duplicates += 1
            elif row["status"] == MessageStatus.SUPPRESSED:
                summary.suppressed += 1
            elif row["status"] == MessageStatus.FAILED:
                summary.failed += 1
            else:
                summary.queued += 1
                if row["send_after"] > now:
                    summary.deferred += 1
            new_keys.discard(row["idempotency_key"])  # a key twice in one batch: once
    session.flush()
    return summary


def enqueue(
    *, session: Session, lead: Lead, channel: str, subject: str, body: str,
    idempotency_key: str, now: datetime, task_id: int | None = None,
    enrollment_id: int | None = None, arm_id: int | None = None, sender_id: int | None = None,
    send_after: datetime | None = None,
) -> Message:
    """Write one message to the outbox, or return the one already written for the key.

    Do-not-contact, the suppression list or a missing address write it as ``suppressed``
    (the reason in ``error``); quiet hours move ``send_after``. See :func:`enqueue_many`.
    """
    existing = session.scalar(select(Message).where(Message.idempotency_key == idempotency_key))
    if existing is not None:
        return existing
    session.flush()  # the lead (and its fields) must be visible to the set-based read
    enqueue_many(session=session, now=now, items=[Outgoing(
        lead_id=lead.id, channel=channel, subject=subject, body=body,
        idempotency_key=idempotency_key, task_id=task_id, enrollment_id=enrollment_id,
        arm_id=arm_id, sender_id=sender_id, send_after=send_after)])
    message = session.scalar(select(Message).where(Message.idempotency_key == idempotency_key))
    assert message is not None
    return message


# --------------------------------------------------------------------------- listing


def list_messages(
    *, session: Session, user: User, lead_id: int | None = None, channel: str | None = None,
    status: str | None = None, limit: int = 50, offset: int = 0,
) -> list[Message]:
    """Messages of the leads ``user`` may see, newest first, optionally narrowed."""
    visible = leads_service.visible_leads(user, include_merged=True).with_only_columns(Lead.id)
    stmt = select(Message).where(Message.lead_id.in_(visible.scalar_subquery()))
    if lead_id is not None:
        stmt = stmt.where(Message.lead_id == lead_id)
    if channel:
        stmt = stmt.where(Message.channel == channel)
    if status:
        stmt = stmt.where(Message.status == status)
    return list(session.scalars(stmt.order_by(Message.id.desc()).limit(limit).offset(offset)))


def events_of(*, session: Session, message_ids: Sequence[int]) -> dict[int, list[TrackingEvent]]:
    """The tracking events of ``message_ids``, oldest first, by message."""
    found: dict[int, list[TrackingEvent]] = {i: [] for i in message_ids}
    if not message_ids:
        return found
    for event in session.scalars(select(TrackingEvent)
                                 .where(TrackingEvent.message_id.in_(message_ids))
                                 .order_by(TrackingEvent.occurred_at, TrackingEvent.id)):
        assert event.message_id is not None
        found[event.message_id].append(event)
    return found


# --------------------------------------------------------------------------- tracking


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[rules.IPNetwork, ...]:
    return rules.parse_networks(cidrs)


def machine_policy(settings: Settings | None = None) -> rules.MachinePolicy:
    """The machine-traffic policy the settings describe."""
    s = settings or get_settings()
    return rules.MachinePolicy(networks=_networks(tuple(s.scanner_networks)),
                               after_delivery_s=s.machine_after_delivery_s,
                               burst_s=s.machine_burst_s)


def message_by_token(*, session: Session, token: str) -> Message | None:
    """The message a tracking or unsubscribe URL names."""
    if not token or len(token) > 32:
        return None
    return session.scalar(select(Message).where(Message.token == token))


def _visitor_signer() -> URLSafeSerializer:
    return URLSafeSerializer(get_settings().resolved_secret_key(), salt="leadflow-visitor")


def visitor_id(lead_id: int) -> str:
    """The lead's signed id, carried to the website by the click redirect."""
    return str(_visitor_signer().dumps(lead_id))


def lead_of_visitor(visitor: str) -> int | None:
    """The lead a signed visitor id names, or ``None`` when it was not signed by us."""
    try:
        value = _visitor_signer().loads(visitor)
    except BadSignature:
        return None
    return value if isinstance(value, int) else None


def with_visitor(url: str, visitor: str) -> str:
    """``url`` with the visitor id added to its query (replacing an old one)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != VISITOR_PARAM]
    query.append((VISITOR_PARAM, visitor))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _event(session: Session, *, kind: TrackingKind, lead_id: int, message_id: int | None,
           now: datetime, verdict: rules.Verdict, user_agent: str | None, ip: str | None,
           url: str | None = None, seconds: float | None = None) -> TrackingEvent:
    event = TrackingEvent(
        message_id=message_id, lead_id=lead_id, kind=kind, occurred_at=now,
        url=url[:1000] if url else None, user_agent=user_agent[:300] if user_agent else None,
        ip=ip[:45] if ip else None, seconds=seconds, machine=verdict.machine,
        machine_reason=verdict.reason[:120] if verdict.reason else None, detail={})
    session.add(event)
    session.flush()
    return event


def _engage(session: Session, event: TrackingEvent, kind: ActivityKind, now: datetime, *,
            summary: str, ref: str | None, value: float | None = None,
            timeline: bool = True) -> None:
    """A person's event: the timeline entry (re-scored) and the cadence's engagement hook."""
    if timeline:
        lead = session.get(Lead, event.lead_id)
        if lead is None:
            return
        activity, _ = scoring_service.record_activity(
            session=session, lead=lead, actor_id=None, now=now, activity=ActivityIn(
                kind=kind.value, occurred_at=now, summary=summary[:500],
                ref=ref[:300] if ref else None, value=value,
                detail={"message_id": event.message_id, "tracking_event_id": event.id}))
        event.detail = {**event.detail, "activity_id": activity.id}
    cadences_service.on_engagement(session=session, lead_id=event.lead_id, now=now)


def record_open(*, session: Session, token: str, user_agent: str | None, ip: str | None,
                now: datetime) -> TrackingEvent | None:
    """The open pixel was fetched. Stored either way; a person's first open of the message
    goes on the timeline (later ones only refresh the queue). ``None``: unknown token."""
    message = message_by_token(session=session, token=token)
    if message is None:
        return None
    verdict = rules.machine_verdict(
        rules.Hit("open", now, user_agent, ip, sent_at=message.sent_at), machine_policy())
    event = _event(session, kind=TrackingKind.OPEN, lead_id=message.lead_id,
                   message_id=message.id, now=now, verdict=verdict, user_agent=user_agent,
                   ip=ip)
    if not verdict.machine:
        first = message.opened_at is None
        if first:
            message.opened_at = now
        _engage(session, event, ActivityKind.EMAIL_OPENED, now, timeline=first,
                summary=f"opened “{message.subject}”", ref=message.subject or None)
    return event


def record_click(*, session: Session, token: str, url: str, user_agent: str | None,
                 ip: str | None, now: datetime) -> str | None:
    """A tracked link was followed; returns where to redirect, or ``None`` when the token is
    unknown or ``url`` is not one of the message's links (no open redirect).

    The redirect carries the lead's signed visitor id for the website snippet. A person's
    first click on each link goes on the timeline. A click that reveals a burst (most links
    clicked within seconds) also marks the burst's earlier clicks as machine traffic and
    takes their timeline entries back.
    """
    message = message_by_token(session=session, token=token)
    if message is None or not rules.is_web_url(url):
        return None
    links = rules.links_in(message.body)
    if url not in links:
        return None
    policy = machine_policy()
    window_start = now - timedelta(seconds=policy.burst_s)
    earlier = session.execute(
        select(TrackingEvent.id, TrackingEvent.url, TrackingEvent.occurred_at,
               TrackingEvent.machine, TrackingEvent.detail)
        .where(TrackingEvent.message_id == message.id,
               TrackingEvent.kind == TrackingKind.CLICK,
               TrackingEvent.occurred_at >= window_start)).all()
    verdict = rules.machine_verdict(rules.Hit(
        "click", now, user_agent, ip, sent_at=message.sent_at, url=url, link_count=len(links),
        earlier_clicks=tuple((row.url or "", row.occurred_at) for row in earlier)), policy)
    event = _event(session, kind=TrackingKind.CLICK, lead_id=message.lead_id,
                   message_id=message.id, now=now, verdict=verdict, user_agent=user_agent,
                   ip=ip, url=url)
    if verdict.reason == rules.BURST_REASON:
        _retract_burst(session, message.lead_id,
                       [row for row in earlier if not row.machine], now)
    if not verdict.machine:
        if message.clicked_at is None:
            message.clicked_at = now
        if message.opened_at is None:  # images were blocked, but the mail was read
            message.opened_at = now
        seen = session.scalar(select(TrackingEvent.id).where(
            TrackingEvent.message_id == message.id, TrackingEvent.kind == TrackingKind.CLICK,
            TrackingEvent.url == url, TrackingEvent.machine.is_(False),
            TrackingEvent.id != event.id).limit(1))
        _engage(session, event, ActivityKind.EMAIL_CLICKED, now, timeline=seen is None,
                summary=f"clicked {url}", ref=url)
    return with_visitor(url, visitor_id(message.lead_id))


def _retract_burst(session: Session, lead_id: int, rows: Sequence[Any], now: datetime) -> None:
    """Earlier clicks of a burst were a machine after all: mark them and take their timeline
    entries (and the score they moved) back."""
    if not rows:
        return
    session.execute(update(TrackingEvent).where(TrackingEvent.id.in_([r.id for r in rows]))
                    .values(machine=True, machine_reason=rules.BURST_REASON))
    activity_ids = [r.detail.get("activity_id") for r in rows
                    if isinstance(r.detail, dict) and r.detail.get("activity_id")]
    if activity_ids:
        session.execute(delete(Activity).where(Activity.id.in_(activity_ids)))
        scoring_service.rescore_lead(session=session, lead_id=lead_id, now=now)
    session.expire_all()


def record_visit(*, session: Session, visitor: str, url: str, kind: str, seconds: float,
                 user_agent: str | None, ip: str | None, now: datetime) -> TrackingEvent | None:
    """A page view (``kind`` "visit") or its reading time ("read", ``seconds``) reported by
    the website snippet for a lead who came from an email. ``None``: the visitor id is not
    ours, the URL is not a web page, or the lead is gone.

    A visit is a WEB_VISIT activity (scored by page); reading for at least ``MIN_READ_S``
    is CONTENT_READ with the minutes read as its value.
    """
    lead_id = lead_of_visitor(visitor)
    if lead_id is None or not rules.is_web_url(url) or session.get(Lead, lead_id) is None:
        return None
    reading = kind == "read"
    verdict = rules.machine_verdict(rules.Hit("read" if reading else "visit", now,
                                              user_agent, ip, url=url), machine_policy())
    event = _event(session, kind=TrackingKind.READ if reading else TrackingKind.VISIT,
                   lead_id=lead_id, message_id=None, now=now, verdict=verdict,
                   user_agent=user_agent, ip=ip, url=url, seconds=seconds if reading else None)
    if verdict.machine:
        return event
    if not reading:
        _engage(session, event, ActivityKind.WEB_VISIT, now, summary=f"visited {url}", ref=url)
    elif seconds >= MIN_READ_S:
        minutes = round(seconds / 60, 1)
        _engage(session, event, ActivityKind.CONTENT_READ, now, value=minutes, ref=url,
                summary=f"read {url} for {minutes:g} min")
    return event


# --------------------------------------------------------------------------- signals


def _suppress_address(session: Session, *, channel: str, address: str, lead_id: int | None,
                      reason: str, now: datetime) -> bool:
    """Put an address on the suppression list and drop its pending messages; True when it
    was not there yet."""
    address = normalise_address(channel, address) or ""
    if not address:
        return False
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT … ON CONFLICT here.
    added = session.execute(
        _insert(session, Suppression.__table__).on_conflict_do_nothing()
        .returning(Suppression.__table__.c.id),
        {"channel": channel, "address": address, "lead_id": lead_id, "reason": reason,
         "created_at": now}).first() is not None
    session.execute(update(Message).where(
        Message.channel == channel, Message.to_address == address,
        Message.status == MessageStatus.PENDING,
    ).values(status=MessageStatus.SUPPRESSED, error=f"suppressed: {reason}"))
    return added


def _drop_ended(session: Session, lead_id: int) -> None:
    """Pending messages of enrollments that just ended must not go out."""
    ended = select(Enrollment.id).where(
        Enrollment.lead_id == lead_id,
        Enrollment.status.not_in((EnrollmentStatus.ACTIVE.value, EnrollmentStatus.PAUSED.value)))
    session.execute(update(Message).where(
        Message.lead_id == lead_id, Message.status == MessageStatus.PENDING,
        Message.enrollment_id.in_(ended.scalar_subquery()),
    ).values(status=MessageStatus.SUPPRESSED, error="cadence ended"))


def _signal(session: Session, lead_id: int, signal: ExitReason, now: datetime,
            until: datetime | None = None) -> None:
    cadences_service.on_signal(session=session, lead_id=lead_id, signal=signal, now=now,
                               until=until)
    _drop_ended(session, lead_id)


def _timeline(session: Session, lead_id: int, kind: ActivityKind, now: datetime, *,
              summary: str, ref: str | None = None, detail: dict[str, Any] | None = None
              ) -> None:
    lead = session.get(Lead, lead_id)
    if lead is not None:
        scoring_service.record_activity(
            session=session, lead=lead, actor_id=None, now=now, activity=ActivityIn(
                kind=kind.value, occurred_at=now, summary=summary[:500],
                ref=ref[:300] if ref else None, detail=detail or {}))


def is_suppressed(*, session: Session, channel: str, address: str) -> bool:
    """True when ``address`` is on the suppression list for ``channel``."""
    address = normalise_address(channel, address) or ""
    return session.scalar(select(Suppression.id).where(
        Suppression.channel == channel, Suppression.address == address)) is not None


def masked(address: str) -> str:
    """An address as a public page may show it: ``a***@corp.cn``, ``+86138****5678``."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(address) > 7:
        return f"{address[:-8]}****{address[-4:]}"
    return "***"


def unsubscribe(*, session: Session, token: str, now: datetime, via: str = "page"
                ) -> Message | None:
    """The lead unsubscribed through a message's link (``via``: page, one-click, mailto).

    The address is suppressed on the message's channel and its pending messages dropped;
    the first time, UNSUBSCRIBED goes on the timeline and ends the enrollment. Repeating it
    changes nothing. ``None``: unknown token.
    """
    message = message_by_token(session=session, token=token)
    if message is None:
        return None
    session.add(TrackingEvent(message_id=message.id, lead_id=message.lead_id,
                              kind=TrackingKind.UNSUBSCRIBE, occurred_at=now, machine=False,
                              detail={"via": via}))
    new = _suppress_address(session, channel=message.channel, address=message.to_address,
                            lead_id=message.lead_id, reason="unsubscribed", now=now)
    if new:
        _timeline(session, message.lead_id, ActivityKind.UNSUBSCRIBED, now,
                  summary=f"unsubscribed from {message.channel} ({via})",
                  detail={"message_id": message.id, "via": via})
        _signal(session, message.lead_id, ExitReason.UNSUBSCRIBED, now)
    session.flush()
    return message


def record_bounce(*, session: Session, message: Message, reason: str, now: datetime) -> None:
    """The message bounced for good: fail it, suppress the address, EMAIL_BOUNCED on the
    timeline, and the enrollment ends (if its cadence exits on bounces)."""
    message.status = MessageStatus.FAILED
    message.error = f"bounced: {reason}"[:500]
    message.lease_until = None
    new = _suppress_address(session, channel=message.channel, address=message.to_address,
                            lead_id=message.lead_id, reason="bounced", now=now)
    if new:
        _timeline(session, message.lead_id, ActivityKind.EMAIL_BOUNCED, now,
                  summary=f"{message.to_address} bounced: {reason}"[:500],
                  detail={"message_id": message.id})
        _signal(session, message.lead_id, ExitReason.BOUNCED, now)
    session.flush()


@dataclass(frozen=True, slots=True)
class InboundResult:
    """What an inbound message was and whom it concerned."""

    kind: InboundKind
    lead_id: int | None = None
    message_id: int | None = None
    return_date: date | None = None


def _inbound_message(session: Session, headers: Mapping[str, str], from_address: str
                     ) -> tuple[Message | None, int | None]:
    """The message an inbound mail answers (by ``In-Reply-To`` / ``References``), else the
    latest email to the sender; and the lead."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for token in rules.tokens_in_references(lowered.get("in-reply-to"),
                                            lowered.get("references")):
        message = message_by_token(session=session, token=token)
        if message is not None:
            return message, message.lead_id
    address = normalise_address("email", from_address)
    message = session.scalar(select(Message).where(
        Message.channel == MessageChannel.EMAIL, Message.to_address == address)
        .order_by(Message.id.desc()).limit(1))
    if message is not None:
        return message, message.lead_id
    lead_id = session.scalar(select(Lead.id).where(
        Lead.email == address, Lead.status != LeadStatus.MERGED).order_by(Lead.id).limit(1))
    return None, lead_id


def record_inbound_reply(
    *, session: Session, from_address: str, subject: str, headers: Mapping[str, str],
    text: str, now: datetime,
) -> InboundResult:
    """An email came back from a lead (through the mail gateway's webhook).

    1. Find the message it answers (``In-Reply-To`` / ``References`` carry our Message-ID
       with the message's token), else the lead by the sender's address.
    2. ``unsubscribe <token>`` (our List-Unsubscribe mailto) unsubscribes.
    3. A delivery failure report is a bounce of the answered message.
    4. An out-of-office reply pauses the enrollment until the stated return date (the start
       of the lead's day), else the cadence's default; it is never counted as a reply.
    5. Anything else is a reply: REPLIED on the timeline (re-scored), and the cadence reacts
       (a reply task at the front of the owner's queue; the enrollment ends).
    """
    _, sender = parse_sender(from_address)
    wanted = _UNSUBSCRIBE_SUBJECT.match(subject or "")
    if wanted:
        message = unsubscribe(session=session, token=wanted.group(1), now=now, via="mailto")
        if message is not None:
            return InboundResult(InboundKind.UNSUBSCRIBE, message.lead_id, message.id)
    message, lead_id = _inbound_message(session, headers, sender)
    if rules.is_bounce(from_address=sender, subject=subject, headers=headers):
        if message is None:
            return InboundResult(InboundKind.UNMATCHED)
        record_bounce(session=session, message=message, reason=subject or "bounce", now=now)
        return InboundResult(InboundKind.BOUNCE, message.lead_id, message.id)
    if lead_id is None:
        return InboundResult(InboundKind.UNMATCHED)
    message_id = message.id if message is not None else None
    policy = _policy(get_settings())
    lead = session.get(Lead, lead_id)
    zone = policy.default_zone
    if lead is not None:
        zone = _zone((lead.custom_fields or {}).get("timezone")) or zone
    ooo = rules.detect_out_of_office(subject=subject, headers=headers, text=text,
                                     received_on=now.astimezone(zone).date())
    if ooo.is_ooo:
        until = None
        if ooo.return_date is not None:
            until = datetime.combine(ooo.return_date, policy.quiet.end, tzinfo=zone)
        if cadences_service.live_enrollment(session=session, lead_id=lead_id) is None:
            # Pausing an enrollment writes its own timeline entry; without one, this does.
            session.add(Activity(
                lead_id=lead_id, kind=ActivityKind.OUT_OF_OFFICE, occurred_at=now,
                summary=(f"out of office until {ooo.return_date:%Y-%m-%d}" if ooo.return_date
                         else "out of office"), ref=subject[:300] or None,
                detail={"message_id": message_id, "return_date": ooo.return_date.isoformat()
                        if ooo.return_date else None}))
            session.flush()
        _signal(session, lead_id, ExitReason.OUT_OF_OFFICE, now, until=until)
        return InboundResult(InboundKind.OUT_OF_OFFICE, lead_id, message_id, ooo.return_date)
    _timeline(session, lead_id, ActivityKind.REPLIED, now, summary=f"replied: {subject}",
              ref=subject or None, detail={"message_id": message_id})
    _signal(session, lead_id, ExitReason.REPLIED, now)
    session.flush()
    return InboundResult(InboundKind.REPLY, lead_id, message_id)


def parse_sender(from_header: str) -> tuple[str, str]:
    """(display name, address) of a From value such as ``张伟 <zw@corp.cn>``."""
    name, address = parseaddr(from_header)
    return name, address or from_header.strip()
