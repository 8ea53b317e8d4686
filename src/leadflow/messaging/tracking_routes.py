"""Public endpoints a lead's mail client or browser calls: open pixel, click redirect, page
beacon and snippet, unsubscribe. They carry an unguessable message token (or the lead's
signed visitor id) instead of a login."""

from __future__ import annotations

import base64
import json
import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from leadflow import clock
from leadflow.config import get_settings
from leadflow.db import session_scope
from leadflow.errors import NotFound
from leadflow.leads.models import Lead
from leadflow.messaging import service
from leadflow.messaging.schemas import BeaconIn
from leadflow.web.render import environment, normalise_locale, resolve_locale

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

# A transparent 1×1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, private",
            "Pragma": "no-cache"}
ONE_CLICK = "List-Unsubscribe=One-Click"


def _agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


def _ip(request: Request) -> str | None:
    # Behind a proxy, uvicorn's --proxy-headers puts the client's address here.
    return request.client.host if request.client else None


@router.get("/t/o/{token}.gif")
def open_pixel(token: str, request: Request) -> Response:
    """The open pixel: always the image, whatever happens to the bookkeeping."""
    try:
        with session_scope() as session:
            service.record_open(session=session, token=token, user_agent=_agent(request),
                                ip=_ip(request), now=clock.now())
    except Exception:  # a mail client must never see an error for an image
        log.exception("recording an open failed")
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.get("/t/c/{token}")
def click(token: str, request: Request,
          u: Annotated[str, Query(max_length=2000)] = "") -> RedirectResponse:
    """A tracked link: record the click, then go to the link (only one of the message's)."""
    with session_scope() as session:
        target = service.record_click(session=session, token=token, url=u,
                                      user_agent=_agent(request), ip=_ip(request),
                                      now=clock.now())
    if target is None:
        raise NotFound("this link is not valid")
    return RedirectResponse(target, status_code=302, headers=NO_STORE)


@router.post("/t/v")
async def beacon(request: Request) -> Response:
    """Page views and reading time from the website snippet (``navigator.sendBeacon``, so
    the body is JSON sent as text/plain). Always 204: the page cannot act on an answer."""
    try:
        data = BeaconIn.model_validate(json.loads(await request.body()))
    except (ValueError, ValidationError):
        return Response(status_code=204)
    agent, ip = _agent(request), _ip(request)

    def record() -> None:
        with session_scope() as session:
            service.record_visit(session=session, visitor=data.v, url=data.u, kind=data.k,
                                 seconds=data.s, user_agent=agent, ip=ip, now=clock.now())

    try:
        await run_in_threadpool(record)
    except Exception:
        log.exception("recording a visit failed")
    return Response(status_code=204, headers={"Access-Control-Allow-Origin": "*"})


SNIPPET = """(function () {
  var KEY = "%(param)s", BASE = "%(base)s";
  try {
    var params = new URLSearchParams(location.search), v = params.get(KEY);
    if (v) {
      localStorage.setItem(KEY, v);
      params.delete(KEY);
      var q = params.toString(), here = location.pathname + (q ? "?" + q : "") + location.hash;
      history.replaceState(history.state, "", here);
    }
    v = v || localStorage.getItem(KEY);
    if (!v) return;
    var send = function (kind, seconds) {
      var body = JSON.stringify({v: v, u: location.href, k: kind, s: seconds});
      if (navigator.sendBeacon) navigator.sendBeacon(BASE + "/t/v", body);
      else fetch(BASE + "/t/v", {method: "POST", body: body, keepalive: true, mode: "no-cors"});
    };
    var shown = 0, since = document.visibilityState === "visible" ? Date.now() : null, sent = false;
    var leave = function () {
      if (since !== null) { shown += Date.now() - since; since = null; }
      if (!sent && shown > 0) { sent = true; send("read", Math.round(shown / 1000)); }
    };
    send("visit", 0);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") leave(); else if (!sent) since = Date.now();
    });
    window.addEventListener("pagehide", leave);
  } catch (e) {}
})();
"""


@router.get("/t/snippet.js")
def snippet() -> Response:
    """The website snippet: ``<script src="…/t/snippet.js" async></script>`` on every page.

    It keeps the visitor id the click redirect added (in localStorage, and out of the
    address bar), reports each page view, and the seconds the page was visible when the
    reader leaves.
    """
    base = get_settings().public_base_url.rstrip("/")
    body = SNIPPET % {"param": service.VISITOR_PARAM, "base": json.dumps(base)[1:-1]}
    return Response(body, media_type="text/javascript",
                    headers={"Cache-Control": "public, max-age=3600"})


def _unsubscribe_page(request: Request, token: str, *, done: bool, lang: str | None
                      ) -> HTMLResponse:
    with session_scope() as session:
        message = service.message_by_token(session=session, token=token)
        if message is None:
            raise NotFound("this link is not valid")
        lead = session.get(Lead, message.lead_id)
        done = done or service.is_suppressed(session=session, channel=message.channel,
                                             address=message.to_address)
        address = message.to_address
    # The lead's language first: the page is read by the person the mail went to.
    locale = (normalise_locale(lang) or normalise_locale(lead.language if lead else None)
              or resolve_locale(request, None))
    html = environment(locale).get_template("messaging/unsubscribe.html").render(
        locale=locale, html_lang="zh-CN" if locale == "zh" else "en", token=token,
        address=service.masked(address), done=done)
    return HTMLResponse(html, headers=NO_STORE)


@router.get("/u/{token}")
def unsubscribe_page(token: str, request: Request, lang: str | None = None) -> HTMLResponse:
    """The unsubscribe page: a button, never an unsubscribe by itself (link scanners GET
    every link of a message)."""
    return _unsubscribe_page(request, token, done=False, lang=lang)


@router.post("/u/{token}", response_model=None)
async def unsubscribe(token: str, request: Request, lang: str | None = None
                      ) -> HTMLResponse | PlainTextResponse:
    """Unsubscribe: the page's button, or a mail client's RFC 8058 one-click POST (body
    ``List-Unsubscribe=One-Click``, no cookies, answered in plain text)."""
    body = (await request.body()).decode("utf-8", "replace")
    one_click = ONE_CLICK in body

    def record() -> bool:
        with session_scope() as session:
            return service.unsubscribe(session=session, token=token, now=clock.now(),
                                       via="one-click" if one_click else "page") is not None

    if not await run_in_threadpool(record):
        raise NotFound("this link is not valid")
    if one_click:
        return PlainTextResponse("unsubscribed", headers=NO_STORE)
    return await run_in_threadpool(_unsubscribe_page, request, token, done=True, lang=lang)
