"""Rendering pages: Jinja2 templates, the request's locale, translations and formatting.

Templates live in ``web/templates``; every visible string goes through gettext, with the
catalogues in ``web/translations`` (``make`` compiles them; a missing or stale ``.mo`` is
compiled from its ``.po`` in memory, so a fresh checkout shows Chinese too).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context

from leadflow.config import get_settings
from leadflow.deps import csrf_token
from leadflow.errors import DomainError
from leadflow.users.models import User
from leadflow.users.rules import Permission, has_permission

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
TRANSLATIONS_DIR = WEB_DIR / "translations"
DOMAIN = "messages"
LOCALES: tuple[str, ...] = ("en", "zh")
# Babel locales behind our short codes: number and date conventions of mainland China.
_BABEL_LOCALES = {"en": "en", "zh": "zh_Hans_CN"}
_HTML_LANG = {"en": "en", "zh": "zh-CN"}
DATETIME_PATTERN = "yyyy-MM-dd HH:mm"
DATE_PATTERN = "yyyy-MM-dd"


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated later, where the locale is known."""
    return message


# Domain messages that reach users verbatim; listed here so they get translated.
_KNOWN_MESSAGES = (
    N_("the form expired; reload the page and try again"),
    N_("wrong email or password"),
)

_ERROR_TITLES: dict[int, str] = {
    400: N_("The request was refused"),
    401: N_("Please log in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    409: N_("Conflict"),
    413: N_("File too large"),
    422: N_("Please check your input"),
}


# --------------------------------------------------------------------------- translations


def _compile_po(po_path: Path, locale: str) -> Translations:
    """Compile a ``.po`` catalogue in memory (what ``pybabel compile --use-fuzzy`` does)."""
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=_BABEL_LOCALES.get(locale, locale), domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=True)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


@cache
def translations(locale: str) -> NullTranslations:
    """The gettext catalogue of ``locale`` (English is the source language).

    A compiled ``.mo`` is used when it is at least as new as its ``.po``; otherwise the
    ``.po`` is compiled in memory, so neither a fresh checkout nor an edited catalogue
    shows stale text.
    """
    if locale == "en":
        return NullTranslations()
    folder = TRANSLATIONS_DIR / locale / "LC_MESSAGES"
    mo_path, po_path = folder / f"{DOMAIN}.mo", folder / f"{DOMAIN}.po"
    if mo_path.exists() and (
        not po_path.exists() or mo_path.stat().st_mtime >= po_path.stat().st_mtime
    ):
        with mo_path.open("rb") as fh:
            return Translations(fp=fh, domain=DOMAIN)
    if po_path.exists():
        return _compile_po(po_path, locale)
    log.warning("no %s catalogue for locale %r; showing English", DOMAIN, locale)
    return NullTranslations()


def gettext(locale: str, message: str) -> str:
    """Translate ``message`` for ``locale`` in Python code (no %-formatting applied)."""
    return translations(locale).gettext(message)


# --------------------------------------------------------------------------- locale


def normalise_locale(code: str | None) -> str | None:
    """Map ``zh``, ``zh_CN``, ``zh-Hans``, ``en-US`` … to a supported code, else ``None``."""
    if not code:
        return None
    base = code.strip().replace("_", "-").split("-", 1)[0].lower()
    return base if base in LOCALES else None


def _from_accept_language(header: str) -> str | None:
    """The first supported language of an Accept-Language header, by q-value."""
    prefs: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            prefs.append((-quality, position, tag))
    for _, _, tag in sorted(prefs):
        locale = normalise_locale(tag)
        if locale:
            return locale
    return None


def resolve_locale(request: Request, user: User | None) -> str:
    """The language of a page.

    1. The session's choice (``/lang/{code}``): the user asked for it just now.
    2. The user's saved locale.
    3. The browser's Accept-Language (any ``zh*`` is Chinese).
    4. The configured default (English).
    """
    chosen = normalise_locale(request.session.get("locale"))
    if chosen:
        return chosen
    if user is not None and (saved := normalise_locale(user.locale)):
        return saved
    header = _from_accept_language(request.headers.get("accept-language", ""))
    return header or normalise_locale(get_settings().default_locale) or "en"


def user_timezone(user: User | None) -> ZoneInfo:
    """The zone times are shown in: the user's, else the configured default."""
    for name in (user.timezone if user else None, get_settings().default_timezone):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("Asia/Shanghai")


# --------------------------------------------------------------------------- formatting


def _babel_locale(ctx: Context) -> Locale:
    return Locale.parse(_BABEL_LOCALES.get(str(ctx.get("locale") or "en"), "en"))


@pass_context
def fmt_dt(ctx: Context, value: datetime | None, pattern: str = DATETIME_PATTERN) -> str:
    """A stored (UTC) datetime shown in the viewer's time zone."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    zone = ctx.get("tz") or user_timezone(None)
    return format_datetime(value, pattern, tzinfo=zone, locale=_babel_locale(ctx))


@pass_context
def fmt_date(ctx: Context, value: date | None) -> str:
    """A calendar date (no time zone involved)."""
    if value is None:
        return ""
    return format_date(value, DATE_PATTERN, locale=_babel_locale(ctx))


@pass_context
def fmt_num(ctx: Context, value: int | float | Decimal | None, digits: int | None = None) -> str:
    """A number with the locale's grouping (``digits`` fixes the decimals)."""
    if value is None:
        return ""
    fmt = None if digits is None else "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=fmt, locale=_babel_locale(ctx))


@pass_context
def fmt_money(ctx: Context, value: Decimal | float | None, currency: str = "CNY") -> str:
    """An amount with its currency symbol as the locale writes it."""
    if value is None:
        return ""
    return format_currency(value, currency, locale=_babel_locale(ctx))


@cache
def environment(locale: str) -> Environment:
    """The Jinja2 environment of one locale.

    One environment per locale, with its translations installed once: installing them
    per request on a shared environment would race between concurrent requests (pages
    render in a thread pool), while these are read-only after creation.
    """
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(("html",)),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.globals["t"] = env.globals["_"]
    env.filters.update(fmt_dt=fmt_dt, fmt_date=fmt_date, fmt_num=fmt_num, fmt_money=fmt_money,
                       label=translations(locale).gettext)
    return env


# --------------------------------------------------------------------------- pages


def local_path(target: str | None, default: str) -> str:
    """``target`` when it is a path on this site, else ``default`` (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(ch) < 0x20 for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def referer_path(request: Request, default: str) -> str:
    """The local page the request came from, else ``default``."""
    referer = request.headers.get("referer")
    if not referer:
        return default
    parts = urlsplit(referer)
    if parts.netloc and parts.netloc != request.url.netloc:
        return default
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return local_path(path, default)


def flash(request: Request, message: str, kind: str = "success") -> None:
    """Show ``message`` (an untranslated msgid) on the next rendered page."""
    request.session["flash"] = {"message": message, "kind": kind}


def is_htmx(request: Request) -> bool:
    """True for an HTMX fragment request (not a history restore, which needs a full page)."""
    return (
        request.headers.get("hx-request") == "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


def _base_context(request: Request, user: User | None, locale: str) -> dict[str, Any]:
    def can(permission: str) -> bool:
        return user is not None and has_permission(user.role, Permission(permission))

    # Fragments have no place for the message: leave it for the next full page.
    popped = None if is_htmx(request) else request.session.pop("flash", None)
    message = None
    if isinstance(popped, dict) and isinstance(popped.get("message"), str):
        message = {"text": gettext(locale, popped["message"]),
                   "kind": str(popped.get("kind", "success"))}
    return {
        "request": request,
        "user": user,
        "locale": locale,
        "html_lang": _HTML_LANG[locale],
        "tz": user_timezone(user),
        "csrf_token": csrf_token(request),
        "can": can,
        "flash": message,
        "path": request.url.path,
    }


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    user: User | None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` in the request's locale with the page context every template uses.

    Added to ``context``: ``request``, ``user``, ``locale``, ``html_lang``, ``tz``,
    ``csrf_token``, ``can(permission)``, ``flash`` and ``path``; ``_``/``t``/``gettext``
    and the filters ``fmt_dt``, ``fmt_date``, ``fmt_num`` and ``fmt_money`` come from the
    environment.
    """
    locale = resolve_locale(request, user)
    ctx = _base_context(request, user, locale)
    ctx.update(context or {})
    html = environment(locale).get_template(template).render(ctx)
    response = HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
    # Fragments and full pages share URLs: caches must keep them apart.
    response.headers["Vary"] = "HX-Request, Accept-Language, Cookie"
    return response


def _session_user(request: Request) -> User | None:
    """The logged-in user for the error page's navigation (exception handlers get no deps)."""
    user_id = request.session.get("user_id")
    if user_id is None:
        return None
    from leadflow.db import session_scope

    try:
        with session_scope() as session:
            user = session.get(User, user_id)
            return user if user is not None and user.is_active else None
    except Exception:  # the error page must render even when the database is down
        log.exception("could not load the user for an error page")
        return None


def error_page(request: Request, exc: DomainError) -> HTMLResponse:
    """A domain error as a page: a translated title, the message and a way back."""
    user = _session_user(request)
    locale = resolve_locale(request, user)
    status = exc.status_code
    title = _ERROR_TITLES.get(status, _ERROR_TITLES[400])
    return render(
        request,
        "error.html",
        {
            "status": status,
            "title": gettext(locale, title),
            "message": gettext(locale, exc.message),
            "back": referer_path(request, "/leads" if user else "/login"),
        },
        user=user,
        status_code=status,
    )

