"""Messaging fixtures: a real local SMTP server (aiosmtpd) and leads to write to."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy.orm import Session

from leadflow.config import get_settings
from leadflow.leads.models import Lead, LeadStatus


@dataclass
class Sink:
    """What the SMTP server received; addresses containing "bounce" are refused (550),
    and while ``down`` every transaction is answered 421."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.down:
            return "421 service not available"
        if "bounce" in address:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(parsed)
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"

    def by_message_id(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in self.messages:
            counts[str(m["Message-ID"])] = counts.get(str(m["Message-ID"]), 0) + 1
        return counts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sink]:
    """A real SMTP server on a free port, with the settings pointing at it."""
    sink = Sink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("LEADFLOW_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LEADFLOW_SMTP_PORT", str(port))
    monkeypatch.setenv("LEADFLOW_MAIL_FROM", "Leadflow Sales <sales@corp.example>")
    monkeypatch.setenv("LEADFLOW_PUBLIC_BASE_URL", "https://t.corp.example")
    get_settings.cache_clear()
    try:
        yield sink
    finally:
        controller.stop()
        get_settings.cache_clear()


@pytest.fixture
def make_lead(session: Session) -> Callable[..., Lead]:
    """Factory: a committed lead (email and phone unless given)."""
    counter = iter(range(1, 100_000))

    def make(now: datetime, **fields: Any) -> Lead:
        n = next(counter)
        fields.setdefault("email", f"lead{n}@customer.example")
        fields.setdefault("phone", f"+86138000{n:05d}")
        fields.setdefault("name", f"Anna Lead{n}")
        fields.setdefault("company", "Acme 有限公司")
        lead = Lead(created_at=now, updated_at=now, tags=[],
                    custom_fields=fields.pop("custom_fields", {}),
                    status=fields.pop("status", LeadStatus.NEW), **fields)
        session.add(lead)
        session.commit()
        return lead

    return make
