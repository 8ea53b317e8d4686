"""The messaging API under /api/v1: the mail gateway's inbound webhook and the outbox list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from leadflow import clock
from leadflow.deps import CurrentUser, SessionDep, commits_in_handler, require
from leadflow.messaging import service
from leadflow.messaging.models import MessageStatus
from leadflow.messaging.schemas import InboundIn, InboundOut, MessageChannel, MessageOut
from leadflow.users.models import User
from leadflow.users.rules import Permission

router = APIRouter(prefix="/api/v1", tags=["messaging"])

# The mail gateway is an integration: it holds an API token of a user who may capture leads.
Integration = Annotated[User, Depends(require(Permission.LEADS_CAPTURE))]


@router.post("/messages/inbound", response_model=InboundOut)
@commits_in_handler
def inbound(data: InboundIn, session: SessionDep, _user: Integration) -> InboundOut:
    """A reply, automatic reply or bounce the mail gateway received for us.

    Out-of-office replies pause the lead's cadence until the stated return date and are
    never counted as replies; bounces suppress the address; replies go on the timeline and
    end the cadence.
    """
    result = service.record_inbound_reply(
        session=session, from_address=data.from_address, subject=data.subject,
        headers=data.headers, text=data.text, now=clock.now())
    return InboundOut(kind=result.kind, lead_id=result.lead_id, message_id=result.message_id,
                      return_date=result.return_date)


@router.get("/messages", response_model=list[MessageOut])
def list_messages(
    session: SessionDep, user: CurrentUser, lead_id: int | None = None,
    channel: MessageChannel | None = None, status: MessageStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[MessageOut]:
    """Messages of the leads the caller may see (reps: their own leads), newest first."""
    rows = service.list_messages(session=session, user=user, lead_id=lead_id,
                                 channel=channel.value if channel else None,
                                 status=status.value if status else None,
                                 limit=limit, offset=offset)
    return [MessageOut.model_validate(m) for m in rows]
