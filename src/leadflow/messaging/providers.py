"""Providers: how a message leaves leadflow — SMTP, the built-in outbox, an HTTP webhook.

A provider gets an :class:`Envelope` (plain values, no ORM object) and returns the
provider's reference for it, or raises :class:`TemporaryFailure` (retried with backoff) or
:class:`PermanentFailure` (given up; a refused recipient is a bounce). One provider object
serves one delivery batch and keeps its connection open across it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.utils import formataddr, formatdate, parseaddr
from typing import Protocol

import httpx

from leadflow import clock
from leadflow.config import Settings
from leadflow.messaging import rules

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Leadflow-Signature"
TIMESTAMP_HEADER = "X-Leadflow-Timestamp"


class ProviderName:
    """The ``Message.provider`` values."""

    SMTP = "smtp"
    OUTBOX = "outbox"
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a provider needs to send one message."""

    id: int
    token: str
    idempotency_key: str
    lead_id: int
    channel: str
    to_address: str
    subject: str
    body: str


class DeliveryError(Exception):
    """Sending failed."""


class TemporaryFailure(DeliveryError):
    """Worth another attempt later (connection lost, 4xx, server busy)."""


class PermanentFailure(DeliveryError):
    """Another attempt would fail the same way (5xx, refused recipient)."""

    def __init__(self, message: str, *, bounced: bool = False) -> None:
        super().__init__(message)
        self.bounced = bounced


class Provider(Protocol):
    """Sends messages of one kind; ``close`` ends the batch."""

    name: str

    def send(self, message: Envelope) -> str:
        """Send ``message``; return the provider's reference for it."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _header_text(value: str) -> str:
    """A header value as it may appear on the wire: RFC 2047 encoded words when it is not
    plain ASCII, and never a line break (header injection)."""
    value = " ".join(value.split())
    if value.isascii():
        return value
    # Base64 encoded words of at most 39 bytes (64 characters, so a line with "Subject: "
    # stays under 78), split between characters, folded; spaces inside the words survive
    # because the whitespace between encoded words is not part of the text. Written out
    # rather than through email.header.Header, which costs more than the rest of build().
    words: list[str] = []
    chunk = bytearray()
    for ch in value:
        encoded = ch.encode()
        if len(chunk) + len(encoded) > 39:
            words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode()}?=")
            chunk.clear()
        chunk += encoded
    words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode()}?=")
    return "\r\n ".join(words)


def mail_domain(mail_from: str) -> str:
    """The domain of the sender address (for Message-IDs)."""
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "leadflow.local"


class SmtpEmailProvider:
    """Email over SMTP: one connection per batch, reopened once when it drops.

    Headers: a Message-ID derived from the idempotency key (the same on every attempt),
    ``List-Unsubscribe`` (mailto and https) and ``List-Unsubscribe-Post:
    List-Unsubscribe=One-Click`` (RFC 8058), so mail clients offer a one-click unsubscribe.
    """

    name = ProviderName.SMTP

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._smtp: smtplib.SMTP | None = None
        name, address = parseaddr(settings.mail_from)
        self._from_address = address or "noreply@leadflow.local"
        self._from_header = formataddr((name, self._from_address), charset="utf-8")
        self._domain = mail_domain(settings.mail_from)
        self._base_url = settings.public_base_url.rstrip("/")

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s)
        if s.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if s.smtp_username:
            smtp.login(s.smtp_username, s.smtp_password)
        return smtp

    def build(self, message: Envelope) -> bytes:
        """The MIME message as bytes: text and HTML parts (UTF-8, base64), tracking and
        unsubscribe headers.

        Written directly rather than through ``email.message.EmailMessage``, whose header
        parsing and generator cost several times the rest of a send on the bulk path; the
        structure is fixed (multipart/alternative), so little can go wrong by hand.
        """
        urls = rules.TrackingUrls(self._base_url, message.token)
        rendered = rules.tracked_email(subject=message.subject, body=message.body, urls=urls)
        mid = rules.message_id(message.idempotency_key, message.token, self._domain)
        boundary = f"=_lf_{message.token}"  # "=_" never occurs in base64 or QP bodies
        head = (
            f"From: {self._from_header}\r\n"
            f"To: {message.to_address}\r\n"
            f"Subject: {_header_text(rendered.subject)}\r\n"
            f"Date: {formatdate(usegmt=True)}\r\n"
            f"Message-ID: {mid}\r\n"
            f"List-Unsubscribe: <mailto:{self._from_address}?subject=unsubscribe%20"
            f"{message.token}>,\r\n <{urls.unsubscribe}>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            f"X-Leadflow-Message: {message.token}\r\n"
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n')
        parts = [head.encode()]
        for subtype, content in (("plain", rendered.text), ("html", rendered.html)):
            parts.append(
                f"--{boundary}\r\nContent-Type: text/{subtype}; charset=\"utf-8\"\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n".encode())
            parts.append(base64.encodebytes(content.encode()).replace(b"\n", b"\r\n"))
        parts.append(f"--{boundary}--\r\n".encode())
        return b"".join(parts)

    def send(self, message: Envelope) -> str:
        """Send over the batch's connection, reconnecting once if the server dropped it."""
        if any(ch in message.to_address for ch in "\r\n<>,"):
            raise PermanentFailure(f"not a single address: {message.to_address!r}")
        data = self.build(message)
        for attempt in (1, 2):
            try:
                if self._smtp is None:
                    self._smtp = self._connect()
                self._smtp.sendmail(self._from_address, [message.to_address], data)
                return rules.message_id(message.idempotency_key, message.token, self._domain)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                self._reset()
                if 500 <= code < 600:
                    raise PermanentFailure(f"{code} {text!r}", bounced=True) from exc
                raise TemporaryFailure(f"{code} {text!r}") from exc
            except smtplib.SMTPResponseException as exc:
                self._reset()
                if 500 <= exc.smtp_code < 600:
                    raise PermanentFailure(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
                raise TemporaryFailure(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop()
                if attempt == 2:
                    raise TemporaryFailure(f"SMTP connection failed: {exc}") from exc
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        # A refused transaction leaves the connection usable once reset.
        if self._smtp is not None:
            try:
                self._smtp.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def close(self) -> None:
        """QUIT the batch's connection."""
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            finally:
                self._drop()


class OutboxProvider:
    """Built in: nothing leaves; the row itself (shown at ``/outbox``) is what would be sent."""

    name = ProviderName.OUTBOX

    def send(self, message: Envelope) -> str:
        """Accept the message as sent."""
        return f"outbox:{message.id}"

    def close(self) -> None:
        """Nothing to release."""


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of ``timestamp.body``: the receiver recomputes it and rejects stale
    timestamps, so a captured request cannot be replayed later."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class HttpWebhookProvider:
    """POSTs each message as JSON to a URL (an SMS or WeChat gateway of the customer's),
    signed with HMAC-SHA256; the ``Idempotency-Key`` header lets the gateway drop a resend."""

    name = ProviderName.WEBHOOK

    def __init__(self, url: str, secret: str, *, timeout_s: float = 10.0) -> None:
        self._url = url
        self._secret = secret
        self._client = httpx.Client(timeout=timeout_s)

    def send(self, message: Envelope) -> str:
        """POST the message; 2xx is sent, 4xx permanent (but 408/429), the rest retried."""
        body = json.dumps({
            "id": message.id, "idempotency_key": message.idempotency_key,
            "lead_id": message.lead_id, "channel": message.channel, "to": message.to_address,
            "subject": message.subject, "body": message.body,
        }, ensure_ascii=False).encode()
        timestamp = str(int(clock.now().timestamp()))
        headers = {"Content-Type": "application/json", "Idempotency-Key":
                   message.idempotency_key, TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign_webhook(self._secret, timestamp, body)}
        try:
            resp = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TemporaryFailure(f"webhook: {exc}") from exc
        if resp.is_success:
            try:
                ref = resp.json().get("id")
            except (ValueError, AttributeError):
                ref = None
            return str(ref) if ref is not None else f"webhook:{resp.status_code}"
        detail = f"webhook answered {resp.status_code}: {resp.text[:200]}"
        if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
            raise PermanentFailure(detail)
        raise TemporaryFailure(detail)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def webhook_secret(settings: Settings) -> str:
    """The webhook signing key: configured, else derived from the app's secret key."""
    if settings.webhook_secret:
        return settings.webhook_secret
    return hmac.new(settings.resolved_secret_key().encode(), b"messaging-webhook",
                    hashlib.sha256).hexdigest()


def provider_for_channel(channel: str, settings: Settings) -> str:
    """Which provider a new message on ``channel`` goes through."""
    if channel == "email":
        return ProviderName.OUTBOX if settings.email_provider == "outbox" else ProviderName.SMTP
    url = {"sms": settings.sms_webhook_url, "wechat": settings.wechat_webhook_url}.get(channel)
    return ProviderName.WEBHOOK if url else ProviderName.OUTBOX


class Providers:
    """The providers of one delivery batch, created on first use and closed together."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._open: dict[tuple[str, str], Provider] = {}

    def get(self, provider: str, channel: str) -> Provider:
        """The batch's provider for a message's ``provider`` and ``channel``."""
        key = (provider, channel if provider == ProviderName.WEBHOOK else "")
        found = self._open.get(key)
        if found is None:
            found = self._make(provider, channel)
            self._open[key] = found
        return found

    def _make(self, provider: str, channel: str) -> Provider:
        s = self._settings
        if provider == ProviderName.SMTP:
            return SmtpEmailProvider(s)
        if provider == ProviderName.WEBHOOK:
            url = {"sms": s.sms_webhook_url, "wechat": s.wechat_webhook_url}.get(channel, "")
            if not url:
                raise PermanentFailure(f"no webhook URL configured for {channel}")
            return HttpWebhookProvider(url, webhook_secret(s))
        return OutboxProvider()

    def close(self) -> None:
        """Close every provider opened in the batch."""
        for provider in self._open.values():
            try:
                provider.close()
            except Exception:  # closing must not hide what the batch did
                log.exception("closing provider %s failed", provider.name)
        self._open.clear()
