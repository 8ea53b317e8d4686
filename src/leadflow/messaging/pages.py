"""The messaging pages: the outbox — every message with its status, what an SMS or WeChat
message says, and its opens and clicks marked human or machine."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from leadflow.deps import PageUser, SessionDep
from leadflow.messaging import service
from leadflow.messaging.models import MessageStatus, TrackingKind
from leadflow.messaging.schemas import MessageChannel
from leadflow.web.render import N_, is_htmx, render

router = APIRouter(include_in_schema=False)

PER_PAGE = 50
# Domain messages of the public tracking pages, listed here so they get translated.
_KNOWN_MESSAGES = (N_("this link is not valid"),)
CHANNEL_LABELS: dict[str, str] = {
    MessageChannel.EMAIL: N_("Email"), MessageChannel.SMS: N_("SMS"),
    MessageChannel.WECHAT: N_("WeChat"),
}
STATUS_LABELS: dict[str, str] = {
    MessageStatus.PENDING: N_("Pending"), MessageStatus.SENDING: N_("Sending"),
    MessageStatus.SENT: N_("Sent"), MessageStatus.FAILED: N_("Failed"),
    MessageStatus.SUPPRESSED: N_("Suppressed"),
}
# Status → an existing badge colour of leadflow.css.
STATUS_BADGES: dict[str, str] = {
    MessageStatus.PENDING: "badge-new", MessageStatus.SENDING: "badge-working",
    MessageStatus.SENT: "badge-qualified", MessageStatus.FAILED: "badge-disqualified",
    MessageStatus.SUPPRESSED: "badge-merged",
}
EVENT_LABELS: dict[str, str] = {
    TrackingKind.OPEN: N_("Opened"), TrackingKind.CLICK: N_("Clicked"),
    TrackingKind.VISIT: N_("Visited"), TrackingKind.READ: N_("Read"),
    TrackingKind.UNSUBSCRIBE: N_("Unsubscribed"),
}


@router.get("/outbox", response_class=HTMLResponse)
def outbox(
    request: Request, session: SessionDep, user: PageUser,
    channel: Annotated[str, Query(max_length=12)] = "",
    status: Annotated[str, Query(max_length=12)] = "",
    lead: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    """Messages of the leads the user may see, newest first, with their tracking events."""
    channel = channel if channel in CHANNEL_LABELS else ""
    status = status if status in STATUS_LABELS else ""
    rows = service.list_messages(session=session, user=user, lead_id=lead,
                                 channel=channel or None, status=status or None,
                                 limit=PER_PAGE + 1, offset=(page - 1) * PER_PAGE)
    messages = rows[:PER_PAGE]
    context = {
        "messages": messages,
        "events": service.events_of(session=session, message_ids=[m.id for m in messages]),
        "filters": {"channel": channel, "status": status, "lead": lead},
        "page": page, "has_next": len(rows) > PER_PAGE,
        "channel_labels": CHANNEL_LABELS, "status_labels": STATUS_LABELS,
        "status_badges": STATUS_BADGES, "event_labels": EVENT_LABELS,
    }
    template = "messaging/_outbox_table.html" if is_htmx(request) else "messaging/outbox.html"
    return render(request, template, context, user=user)
