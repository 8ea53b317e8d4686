"""Delivering the outbox: claim due messages, send them through their providers, record
the outcome.

Delivery guarantees (see docs/messaging.md):

* The outbox row is written once per idempotency key, so a step is never *queued* twice.
* A claim (status ``sending`` with a lease) is committed before anything is sent; each
  outcome is committed on its own right after the provider answered. A worker that dies
  loses nothing committed: rows it had claimed stay ``sending`` until their lease runs out
  and are then claimed again.
* The one window left is between the SMTP server's ``250 OK`` and our commit: a crash there
  sends the message again after the lease. That resend carries the same Message-ID (derived
  from the idempotency key), so delivery is at-least-once at the SMTP level and exactly one
  Message-ID per step; mail systems and clients that deduplicate on Message-ID show one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from leadflow import clock
from leadflow.config import Settings, get_settings
from leadflow.db import get_engine, lock_for_writing, session_scope
from leadflow.messaging import rules, service
from leadflow.messaging.models import Message, MessageStatus
from leadflow.messaging.providers import (
    Envelope,
    PermanentFailure,
    Providers,
    TemporaryFailure,
)

log = logging.getLogger(__name__)

# Stop starting new sends when this share of the lease is used up; the rest go back to
# pending, so a slow server never lets a lease run out under a message being sent.
_LEASE_BUDGET = 0.8
_DUE = (MessageStatus.PENDING.value, MessageStatus.SENDING.value)
# Outcomes are written with Core statements on the bare table: no ORM work per message.
_MESSAGE = cast(Table, Message.__table__)
# The statement of the common outcome, built once: building and cache-keying an UPDATE per
# message cost more worker CPU than the database spends running it.
_MARK_SENT = (
    update(_MESSAGE)
    .where(_MESSAGE.c.id == bindparam("m_id"),
           _MESSAGE.c.lease_until == bindparam("m_lease", type_=_MESSAGE.c.lease_until.type))
    .values(status=MessageStatus.SENT.value,
            sent_at=bindparam("m_at", type_=_MESSAGE.c.sent_at.type),
            provider_ref=bindparam("m_ref"), lease_until=None, error=None))


@dataclass(slots=True)
class DeliverySummary:
    """What one delivery pass did."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    bounced: int = 0
    released: int = 0

    def add(self, other: DeliverySummary) -> None:
        """Add another pass's counts."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        """The counts as JSON."""
        return {name: getattr(self, name) for name in self.__slots__}


def claim(*, session: Session, now: datetime, limit: int, lease_s: float) -> list[Any]:
    """Lease up to ``limit`` due messages: pending ones whose time has come, and ``sending``
    ones whose lease ran out (their worker died). Oldest first; on PostgreSQL rows another
    worker holds are skipped (``FOR UPDATE SKIP LOCKED``), on SQLite writers queue.

    Each claim counts as an attempt, so a message that kills its worker every time ends up
    failed instead of crash-looping the workers.
    """
    due = (select(Message.id)
           .where(Message.status.in_(_DUE), Message.send_after <= now,
                  or_(Message.status == MessageStatus.PENDING.value, Message.lease_until < now))
           .order_by(Message.send_after, Message.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    else:
        lock_for_writing(session)
    lease_until = now + timedelta(seconds=lease_s)
    return list(session.execute(
        update(Message).where(Message.id.in_(due.scalar_subquery()))
        .values(status=MessageStatus.SENDING.value, lease_until=lease_until,
                attempts=Message.attempts + 1)
        .returning(Message.id, Message.token, Message.idempotency_key, Message.lead_id,
                   Message.channel, Message.provider, Message.to_address, Message.subject,
                   Message.body, Message.attempts, Message.lease_until)
        .execution_options(synchronize_session=False)
    ).all())


def deliver_pending(
    *, now: datetime, worker_id: str, limit: int = 500, lease_s: float = 60,
    settings: Settings | None = None,
) -> DeliverySummary:
    """Deliver one batch of due messages.

    1. Claim the batch in a short transaction of its own, committed before sending.
    2. Send each through its provider; one provider (one SMTP connection) per batch.
    3. Commit each outcome at once (one autocommitted UPDATE, one round trip): sent; or
       back to pending with backoff; or failed after ``message_max_attempts`` or a
       permanent refusal (a refused recipient is a bounce: the address is suppressed and
       the cadence told). On PostgreSQL these tiny commits use ``synchronous_commit = off``:
       a database *server* crash may forget the last fraction of a second of them, which
       only means those rows are sent again with the same Message-ID — a worker crash
       loses nothing.
    4. Near the end of the lease, the unsent rest of the batch goes back to pending.
    """
    settings = settings or get_settings()
    summary = DeliverySummary()
    with session_scope() as session:
        rows = claim(session=session, now=now, limit=limit, lease_s=lease_s)
    summary.claimed = len(rows)
    if not rows:
        return summary
    started = time.monotonic()
    providers = Providers(settings)
    released: list[Any] = []
    try:
        with _autocommit() as conn:
            for row in rows:
                elapsed = time.monotonic() - started
                if elapsed > lease_s * _LEASE_BUDGET:
                    released.append(row)
                    continue
                outcome = _send(providers, row)
                _record(conn, row, outcome, now + timedelta(seconds=elapsed), settings,
                        summary)
            if released:
                _release(conn, released)
                summary.released = len(released)
    finally:
        providers.close()
    log.info("worker %s delivered a batch: %s", worker_id, summary.as_dict())
    return summary


@contextmanager
def _autocommit() -> Iterator[Connection]:
    """A connection on which every statement commits by itself: one round trip per outcome.

    On PostgreSQL with ``synchronous_commit`` off for these commits (the server
    acknowledges before its WAL reaches disk), reset before the connection goes back to
    the pool. ``SET LOCAL`` would do nothing here: each statement is its own transaction.
    """
    with get_engine().connect() as base:
        conn = base.execution_options(isolation_level="AUTOCOMMIT")
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.exec_driver_sql("SET synchronous_commit TO OFF")
        try:
            yield conn
        finally:
            if postgres:
                conn.exec_driver_sql("RESET synchronous_commit")


@dataclass(frozen=True, slots=True)
class _Outcome:
    ref: str | None = None
    error: str | None = None
    permanent: bool = False
    bounced: bool = False


def _send(providers: Providers, row: Any) -> _Outcome:
    """Send one claimed row; every failure becomes an outcome (one bad message must not
    stop the batch)."""
    envelope = Envelope(id=row.id, token=row.token, idempotency_key=row.idempotency_key,
                        lead_id=row.lead_id, channel=row.channel, to_address=row.to_address,
                        subject=row.subject, body=row.body)
    try:
        return _Outcome(ref=providers.get(row.provider, row.channel).send(envelope))
    except PermanentFailure as exc:
        return _Outcome(error=str(exc), permanent=True, bounced=exc.bounced)
    except Exception as exc:  # temporary failures and the unexpected: retried with backoff
        if not isinstance(exc, TemporaryFailure | OSError):
            log.exception("sending message %s failed unexpectedly", row.id)
        return _Outcome(error=f"{type(exc).__name__}: {exc}")


def _record(conn: Connection, row: Any, outcome: _Outcome, at: datetime, settings: Settings,
            summary: DeliverySummary) -> None:
    """Write (and commit) the outcome of one send; only while our lease on the row still
    holds (the lease timestamp is the fencing token)."""
    if outcome.error is None:
        conn.execute(_MARK_SENT, {"m_id": row.id, "m_lease": row.lease_until, "m_at": at,
                                  "m_ref": outcome.ref})
        summary.sent += 1
        return
    table = _MESSAGE
    mine = (table.c.id == row.id, table.c.lease_until == row.lease_until)
    if outcome.bounced:
        with session_scope() as session:  # rare: the full bounce path with its side effects
            message = session.get(Message, row.id)
            if message is not None and message.lease_until == row.lease_until:
                service.record_bounce(session=session, message=message, reason=outcome.error,
                                      now=at)
        summary.bounced += 1
        return
    if outcome.permanent or row.attempts >= settings.message_max_attempts:
        conn.execute(update(table).where(*mine).values(
            status=MessageStatus.FAILED.value, lease_until=None, error=outcome.error[:500]))
        summary.failed += 1
        return
    conn.execute(update(table).where(*mine).values(
        status=MessageStatus.PENDING.value, lease_until=None, error=outcome.error[:500],
        send_after=at + rules.retry_delay(row.attempts)))
    summary.retried += 1


def _release(conn: Connection, rows: list[Any]) -> None:
    """Give claimed rows back unsent (the claim's attempt is not counted)."""
    table = _MESSAGE
    for row in rows:
        conn.execute(update(table).where(
            table.c.id == row.id, table.c.lease_until == row.lease_until,
        ).values(status=MessageStatus.PENDING.value, lease_until=None,
                 attempts=table.c.attempts - 1))


def deliver_due(
    *, worker_id: str, limit: int = 500, lease_s: float = 60, max_batches: int | None = None,
    settings: Settings | None = None,
) -> DeliverySummary:
    """Deliver batches until nothing is due (or ``max_batches``), each at the clock's now:
    the worker's periodic entry point."""
    total = DeliverySummary()
    batches = 0
    while max_batches is None or batches < max_batches:
        done = deliver_pending(now=clock.now(), worker_id=worker_id, limit=limit,
                               lease_s=lease_s, settings=settings)
        total.add(done)
        batches += 1
        if done.claimed == 0 or done.claimed == done.released:
            break
    return total
