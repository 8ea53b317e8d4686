"""Messaging decisions: machine traffic, quiet hours, out-of-office and bounce recognition,
rendering and tracking of emails.

Pure: no session, no clock (``now`` is passed in), no settings (policies are arguments).
"""

from __future__ import annotations

import hashlib
import html
import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# --------------------------------------------------------------------------- machine traffic


class Verdict(NamedTuple):
    """Whether an open, click or visit came from a machine, and why."""

    machine: bool
    reason: str | None


HUMAN = Verdict(False, None)
BURST_REASON = "several links clicked at once"

# Substrings of user agents that never belong to a person reading mail (lower case).
SCANNER_AGENTS: tuple[tuple[str, str], ...] = (
    ("googleimageproxy", "Gmail image proxy"),
    ("yahoomailproxy", "Yahoo Mail image proxy"),
    ("barracuda", "Barracuda scanner"),
    ("mimecast", "Mimecast scanner"),
    ("proofpoint", "Proofpoint scanner"),
    ("safelinks", "Microsoft Safe Links"),
    ("microsoft atp", "Microsoft Defender ATP"),
    ("ms-atp", "Microsoft Defender ATP"),
    ("bingpreview", "Bing preview"),
    ("symantec", "Symantec scanner"),
    ("forcepoint", "Forcepoint scanner"),
    ("trendmicro", "Trend Micro scanner"),
    ("sophos", "Sophos scanner"),
    ("fireeye", "FireEye scanner"),
    ("cisco ironport", "Cisco IronPort scanner"),
    ("facebookexternalhit", "link preview"),
    ("slackbot", "link preview"),
    ("whatsapp", "link preview"),
    ("telegrambot", "link preview"),
    ("headlesschrome", "headless browser"),
    ("phantomjs", "headless browser"),
    ("curl/", "command-line client"),
    ("wget/", "command-line client"),
    ("python-requests", "script"),
    ("python-urllib", "script"),
    ("python-httpx", "script"),
    ("aiohttp", "script"),
    ("go-http-client", "script"),
    ("java/", "script"),
    ("okhttp", "script"),
    ("libwww-perl", "script"),
)
_BOT_WORD = re.compile(r"(?:bot|crawler|spider|scanner)(?:[/\s;)_-]|$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class MachinePolicy:
    """What counts as machine traffic (from settings)."""

    networks: tuple[IPNetwork, ...] = ()
    # Opens and clicks this soon after delivery are scanners (no person reads that fast).
    after_delivery_s: float = 10.0
    # Clicks on different links of one message within this window form a burst …
    burst_s: float = 2.0
    # … and a burst covering this share of the message's links is a scanner.
    burst_share: float = 0.8


@dataclass(frozen=True, slots=True)
class Hit:
    """One open, click or visit as it arrived."""

    kind: str  # open | click | visit | read
    occurred_at: datetime
    user_agent: str | None
    ip: str | None
    sent_at: datetime | None = None
    url: str | None = None
    # The message's trackable links, and earlier clicks on them: (url, when).
    link_count: int = 0
    earlier_clicks: tuple[tuple[str, datetime], ...] = ()


def parse_networks(cidrs: Sequence[str]) -> tuple[IPNetwork, ...]:
    """CIDR strings as networks; invalid entries are skipped (a typo must not stop tracking)."""
    networks: list[IPNetwork] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            continue
    return tuple(networks)


def scanner_agent(user_agent: str | None) -> str | None:
    """The kind of machine a user agent names, else ``None``; an empty one is a script."""
    if not user_agent or not user_agent.strip():
        return "no user agent"
    lowered = user_agent.lower()
    for needle, label in SCANNER_AGENTS:
        if needle in lowered:
            return label
    if _BOT_WORD.search(user_agent):
        return "bot"
    return None


def in_networks(ip: str | None, networks: Sequence[IPNetwork]) -> bool:
    """True when ``ip`` lies in one of ``networks`` (unparseable addresses never do)."""
    if not ip or not networks:
        return False
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    return any(address.version == n.version and address in n for n in networks)


def in_burst(at: datetime, other: datetime, policy: MachinePolicy) -> bool:
    """True when two clicks are close enough to belong to one burst."""
    return abs((at - other).total_seconds()) <= policy.burst_s


def machine_verdict(hit: Hit, policy: MachinePolicy) -> Verdict:
    """Decide whether ``hit`` is machine traffic.

    1. A known scanner, proxy, preview or script user agent (or none at all).
    2. An address in a known scanner network.
    3. An open or click within ``after_delivery_s`` of delivery: security gateways fetch
       every pixel and link as the message passes; no person opens and reads that fast.
    4. Clicks: a burst — this click and earlier clicks on *different* links of the message
       within ``burst_s`` — covering most of its links (at least two): a scanner following
       every link, not a reader choosing one.
    """
    agent = scanner_agent(hit.user_agent)
    if agent:
        return Verdict(True, f"user agent: {agent}")
    if in_networks(hit.ip, policy.networks):
        return Verdict(True, "scanner network")
    if hit.kind in ("open", "click") and hit.sent_at is not None:
        delay = (hit.occurred_at - hit.sent_at).total_seconds()
        if delay < policy.after_delivery_s:
            return Verdict(True, f"{hit.kind} {max(delay, 0):.0f} s after delivery")
    if hit.kind == "click" and hit.url and hit.link_count >= 2:
        burst = {hit.url} | {url for url, at in hit.earlier_clicks
                             if in_burst(hit.occurred_at, at, policy)}
        needed = max(2, math.ceil(policy.burst_share * hit.link_count))
        if len(burst) >= needed:
            return Verdict(True, BURST_REASON)
    return HUMAN


# --------------------------------------------------------------------------- quiet hours


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A local-time window with no messages; it may wrap midnight (21:00–08:00)."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        """True when the local wall-clock time ``local`` is inside the window."""
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def parse_hhmm(text: str) -> time:
    """``"21:00"`` as a time; raises ValueError on anything else."""
    hours, _, minutes = text.strip().partition(":")
    return time(int(hours), int(minutes))


def earliest_send(now: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    """The earliest moment at or after ``now`` outside the lead's quiet hours (UTC).

    Inside the window the answer is the window's end on the lead's local calendar: today's
    when the window has not wrapped past midnight yet, else tomorrow's.
    """
    local = now.astimezone(zone)
    clock_time = local.time().replace(tzinfo=None)
    if not quiet.contains(clock_time):
        return now
    day = local.date()
    if quiet.start > quiet.end and clock_time >= quiet.start:
        day += timedelta(days=1)
    resume = datetime.combine(day, quiet.end, tzinfo=zone).astimezone(UTC)
    # A daylight-saving jump can put the local end before ``now``; never go back in time.
    return max(resume, now)


# --------------------------------------------------------------------------- inbound mail


class OutOfOffice(NamedTuple):
    """Whether an inbound message is an automatic out-of-office reply, and the return date
    it states."""

    is_ooo: bool
    return_date: date | None


_AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-auto-reply")
_OOO_SUBJECT = re.compile(
    r"out\s+of\s+(?:the\s+)?office|automatic\s+reply|auto[\s-]?reply|autoreply"
    r"|auto[\s-]?response|on\s+vacation|on\s+holiday|on\s+annual\s+leave|away\s+from\s+"
    r"(?:the\s+)?office|abwesenheit|自动回复|自動回覆|休假|不在办公室|外出|请假|年假",
    re.IGNORECASE,
)
_MONTHS = {name: i for i, names in enumerate(
    (("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
     ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
     ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
     ("dec", "december")), start=1) for name in names}
_MONTH = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?" \
         r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DATE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"), "ymd"),
    (re.compile(r"(?:(\d{4})\s*年\s*)?(\d{1,2})\s*月\s*(\d{1,2})\s*[日号號]"), "ymd"),
    (re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH
                + r"(?:,?\s+(\d{4}))?", re.IGNORECASE), "dmy"),
    (re.compile(r"\b" + _MONTH + r"\s+(\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s+(\d{4}))?",
                re.IGNORECASE), "mdy"),
)
# Words that put a date next to the return: "back on", "until", "返回", "回来" …
_RETURN_BEFORE = re.compile(
    r"(?:back|return(?:ing)?|until|till|til|through|resume|返回|回来|回到|至|到|直到)\W{0,3}"
    r"(?:on|by|the|in\s+the\s+office\s+on|to\s+the\s+office\s+on)?\W{0,3}$",
    re.IGNORECASE)
_RETURN_AFTER = re.compile(r"^\s*(?:返回|回来|回到|返岗|上班|回公司|恢复|起)")
_OOO_DEFAULT_HORIZON = timedelta(days=366)


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value).strip().lower()
    return ""


def is_automatic(headers: Mapping[str, str]) -> bool:
    """True when the headers mark an automatic reply (RFC 3834 and vendor headers)."""
    submitted = _header(headers, "auto-submitted")
    if submitted and submitted != "no":
        return True
    if any(_header(headers, name) for name in _AUTO_HEADERS):
        return True
    return _header(headers, "precedence") == "auto_reply"


def _make_date(year: int | None, month: int, day: int, received_on: date) -> date | None:
    try:
        if year is not None:
            return date(year, month, day)
        found = date(received_on.year, month, day)
        # A date without a year is the next one on or after the day the reply came.
        return found if found >= received_on else date(received_on.year + 1, month, day)
    except ValueError:
        return None


def _dates(text: str, received_on: date) -> list[tuple[int, int, date]]:
    """(start, end, date) of every date mentioned in ``text``."""
    found: list[tuple[int, int, date]] = []
    for pattern, order in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if order == "ymd":
                year = int(m.group(1)) if m.group(1) else None
                month, day = int(m.group(2)), int(m.group(3))
            elif order == "dmy":
                day, month = int(m.group(1)), _MONTHS[m.group(2).lower().rstrip(".")]
                year = int(m.group(3)) if m.group(3) else None
            else:
                month, day = _MONTHS[m.group(1).lower().rstrip(".")], int(m.group(2))
                year = int(m.group(3)) if m.group(3) else None
            value = _make_date(year, month, day, received_on)
            if value is not None:
                found.append((m.start(), m.end(), value))
    return found


def return_date(text: str, received_on: date) -> date | None:
    """The return date an out-of-office text states, if any.

    1. Every date mentioned (ISO, 2026/12/03, 12月3日, 3 December, December 3rd), a missing
       year being the next such day on or after ``received_on``.
    2. Dates in the past or more than a year ahead are ignored (signatures, old threads).
    3. Dates next to a return word ("back on", "until", "返回", "回来") win; among them,
       or else among all dates, the latest (out "from 1 to 3 December" → 3 December).
    """
    horizon = received_on + _OOO_DEFAULT_HORIZON
    candidates = [(s, e, d) for s, e, d in _dates(text, received_on)
                  if received_on <= d <= horizon]
    if not candidates:
        return None
    near = [d for s, e, d in candidates
            if _RETURN_BEFORE.search(text[max(0, s - 40):s]) or _RETURN_AFTER.match(text[e:])]
    return max(near or [d for _, _, d in candidates])


def detect_out_of_office(
    *, subject: str, headers: Mapping[str, str], text: str, received_on: date
) -> OutOfOffice:
    """Recognise an out-of-office reply and its return date.

    An automatic reply (``Auto-Submitted``, ``X-Autoreply``, ``Precedence: auto_reply``) or
    a subject such as "Out of Office", "Automatic reply", "自动回复", "休假", "不在办公室"
    is out-of-office: never a reply. A body alone does not decide it — people write "I'm
    out of the office until Monday, but yes, let's talk" — it only gives the date.
    """
    if not (is_automatic(headers) or _OOO_SUBJECT.search(subject or "")):
        return OutOfOffice(False, None)
    return OutOfOffice(True, return_date(f"{subject}\n{text}", received_on))


_BOUNCE_SENDERS = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon)@", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver(?:ed|able)|delivery\s+status\s+notification\s+\(failure\)|mail\s+delivery\s+"
    r"(?:failed|failure|subsystem)|returned\s+mail|failure\s+notice|退信|无法投递|投递失败",
    re.IGNORECASE)


def is_bounce(*, from_address: str, subject: str, headers: Mapping[str, str]) -> bool:
    """True for a delivery failure report (DSN) rather than a person's reply."""
    if "report-type=delivery-status" in _header(headers, "content-type").replace(" ", ""):
        return True
    return bool(_BOUNCE_SENDERS.match(from_address.strip())
                and _BOUNCE_SUBJECT.search(subject or ""))


# --------------------------------------------------------------------------- rendering

_SANDBOX = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
_CJK = re.compile(r"[\u3400-\u9fff]")


class RenderError(ValueError):
    """A template that does not compile or render (the message is not sent)."""


@lru_cache(maxsize=1024)
def _compiled(source: str):  # type: ignore[no-untyped-def]
    return _SANDBOX.from_string(source)


def render_template(source: str, variables: Mapping[str, object]) -> str:
    """Fill ``{{first_name}}``-style variables in ``source`` (Jinja2, sandboxed: a template
    written in the UI cannot reach Python objects). Unknown variables render empty."""
    if "{" not in source:  # most subjects and many bodies have no variables
        return source
    try:
        return str(_compiled(source).render(**variables))
    except TemplateError as exc:
        raise RenderError(f"template error: {exc}") from exc


def first_name(name: str | None) -> str:
    """How a greeting addresses the lead: the full name for Chinese names (张伟), the first
    word otherwise (Anna Schmidt → Anna)."""
    if not name or not name.strip():
        return ""
    name = name.strip()
    if _CJK.search(name):
        return name
    return name.split()[0]


def lead_variables(
    *, name: str | None, company: str | None, title: str | None, city: str | None,
    rep_name: str | None, rep_email: str | None = None,
) -> dict[str, str]:
    """The variables a message template can use."""
    return {
        "first_name": first_name(name), "name": (name or "").strip(),
        "company": company or "", "title": title or "", "city": city or "",
        "rep_name": rep_name or "", "rep_email": rep_email or "",
    }


_URL = re.compile(r"https?://[^\s<>\"'`）】」，。、；！？]+", re.IGNORECASE)
_HREF = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_HTML_HINT = re.compile(r"<(?:a|p|br|div|table|html|body|span|strong|em|ul|ol)\b",
                        re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""
_ANCHOR = re.compile(r"""<a\s[^>]*?href\s*=\s*(["'])(https?://[^"']+)\1[^>]*>(.*?)</a>""",
                     re.IGNORECASE | re.DOTALL)


def is_html(body: str) -> bool:
    """True when a body is written as HTML rather than plain text."""
    return bool(_HTML_HINT.search(body))


def _text_urls(body: str) -> list[str]:
    return [m.group(0).rstrip(_TRAILING) for m in _URL.finditer(body)]


def links_in(body: str) -> tuple[str, ...]:
    """The http(s) links of a message body, in order, each once: the only URLs its click
    tracking will redirect to."""
    found = ([html.unescape(m.group(3)) for m in _HREF.finditer(body)] if is_html(body)
             else _text_urls(body))
    return tuple(dict.fromkeys(u for u in found if is_web_url(u)))


def is_web_url(url: str) -> bool:
    """True for an absolute http or https URL with a host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@dataclass(frozen=True, slots=True)
class TrackingUrls:
    """Where one message's pixel, clicks and unsubscribe page live."""

    base: str
    token: str

    def click(self, url: str) -> str:
        """The tracked form of ``url``."""
        return f"{self.base}/t/c/{self.token}?u={quote(url, safe='')}"

    @property
    def pixel(self) -> str:
        """The open pixel."""
        return f"{self.base}/t/o/{self.token}.gif"

    @property
    def unsubscribe(self) -> str:
        """The unsubscribe page (GET) and one-click endpoint (POST)."""
        return f"{self.base}/u/{self.token}"


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """An email ready for MIME: both parts carry tracked links and the unsubscribe link."""

    subject: str
    text: str
    html: str


UNSUBSCRIBE_LABEL = "Unsubscribe · 退订"


def tracked_email(
    *, subject: str, body: str, urls: TrackingUrls, unsubscribe_label: str = UNSUBSCRIBE_LABEL
) -> RenderedEmail:
    """Wrap every link of ``body`` for click tracking, add the open pixel (HTML part) and an
    unsubscribe link (both parts). Plain-text bodies get an HTML part made from them."""
    unsubscribe = html.escape(urls.unsubscribe, quote=True)
    footer_html = (f'<p style="font-size:12px;color:#888888">'
                   f'<a href="{unsubscribe}">{html.escape(unsubscribe_label)}</a></p>')
    pixel = (f'<img src="{html.escape(urls.pixel, quote=True)}" width="1" height="1" alt="" '
             'style="border:0;width:1px;height:1px">')
    if is_html(body):
        def wrap_href(m: re.Match[str]) -> str:
            target = html.unescape(m.group(3))
            if not is_web_url(target):
                return m.group(0)
            tracked = html.escape(urls.click(target), quote=True)
            return f"{m.group(1)}{m.group(2)}{tracked}{m.group(2)}"

        html_part = _HREF.sub(wrap_href, body)
        closing = html_part.lower().rfind("</body>")
        extra = footer_html + pixel
        html_part = (html_part[:closing] + extra + html_part[closing:] if closing >= 0
                     else html_part + extra)
        # The text part keeps each link's address after its words: "pricing (https://…)".
        text_part = html.unescape(re.sub(r"<[^>]+>", "", _ANCHOR.sub(r"\3 (\2)", body)))
    else:
        pieces: list[str] = []
        last = 0
        for m in _URL.finditer(body):
            url = m.group(0).rstrip(_TRAILING)
            end = m.start() + len(url)
            pieces.append(html.escape(body[last:m.start()]))
            if is_web_url(url):
                tracked = html.escape(urls.click(url), quote=True)
                pieces.append(f'<a href="{tracked}">{html.escape(url)}</a>')
            else:
                pieces.append(html.escape(url))
            last = end
        pieces.append(html.escape(body[last:]))
        html_part = ("<html><body><div style=\"white-space:pre-wrap\">" + "".join(pieces)
                     + "</div>" + footer_html + pixel + "</body></html>")
        text_part = body
    text_part = _URL.sub(lambda m: _track_text_url(m, urls), text_part)
    text_part = f"{text_part.rstrip()}\n\n--\n{unsubscribe_label}: {urls.unsubscribe}\n"
    return RenderedEmail(subject=subject, text=text_part, html=html_part)


def _track_text_url(m: re.Match[str], urls: TrackingUrls) -> str:
    url = m.group(0).rstrip(_TRAILING)
    tail = m.group(0)[len(url):]
    return (urls.click(url) if is_web_url(url) else url) + tail


def message_id(idempotency_key: str, token: str, domain: str) -> str:
    """The Message-ID header of a message: the same on every attempt (derived from the
    idempotency key and the row's token, both fixed when the row was written), so a resend
    after a crash is recognisable as the same message. The token makes replies findable
    (``In-Reply-To``)."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
    return f"<{digest}.{token}@{domain}>"


_MESSAGE_ID_TOKEN = re.compile(r"<[0-9a-f]{16}\.([A-Za-z0-9_-]{8,32})@[^>]+>")


def tokens_in_references(*values: str | None) -> list[str]:
    """Message tokens found in ``In-Reply-To`` / ``References`` values, newest first."""
    found: list[str] = []
    for value in values:
        if value:
            found.extend(_MESSAGE_ID_TOKEN.findall(value))
    return list(reversed(found))


# --------------------------------------------------------------------------- delivery


def retry_delay(attempts: int) -> timedelta:
    """How long to wait before attempt ``attempts + 1``: 1, 4, 16, 64 minutes … capped at
    six hours, so a provider outage does not burn the attempts in minutes."""
    return timedelta(minutes=min(4 ** max(attempts - 1, 0), 360))
