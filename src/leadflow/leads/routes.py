"""Lead API: capture (one, batch, form webhook), read, merge."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from leadflow import clock
from leadflow.campaigns import service as campaigns_service
from leadflow.cleaning import service as cleaning_service
from leadflow.cleaning.models import LeadMerge
from leadflow.cleaning.rules import MatchThresholds
from leadflow.config import get_settings
from leadflow.deps import CurrentUser, SessionDep, commits_in_handler, require
from leadflow.errors import NotFound
from leadflow.leads import forms
from leadflow.leads import service as leads_service
from leadflow.leads.capture import CaptureResult, Outcome, capture_retrying
from leadflow.leads.models import Lead, LeadStatus
from leadflow.leads.schemas import (
    BatchOut,
    CaptureOut,
    LeadBatchIn,
    LeadCaptureIn,
    LeadDetail,
    LeadListOut,
    LeadRead,
    MatchOut,
    MergeIn,
    MergeOut,
    TimelineRead,
    TouchpointRead,
)
from leadflow.scoring.models import LeadScore
from leadflow.users.models import User
from leadflow.users.rules import Permission

router = APIRouter(prefix="/api/v1", tags=["leads"])
Capturer = Annotated[User, Depends(require(Permission.LEADS_CAPTURE))]
Merger = Annotated[User, Depends(require(Permission.LEADS_MERGE))]


def thresholds() -> MatchThresholds:
    """Dedup thresholds from settings."""
    return MatchThresholds(merge=get_settings().match_threshold)


def _read(lead: Lead, score: LeadScore | None) -> LeadRead:
    read = LeadRead.model_validate(lead)
    if score is not None:
        read.grade, read.score = score.grade, score.score
    return read


def _outputs(result: CaptureResult) -> list[CaptureOut]:
    rejects = {r.external_id: r for r in result.rejects}
    out = []
    for r in result.results:
        item = CaptureOut(external_id=r.external_id, outcome=r.outcome, lead_id=r.lead_id)
        if r.match is not None:
            item.match = MatchOut(keys=list(r.match.keys), similarity=r.match.similarity)
        if r.outcome is Outcome.REJECTED:
            item.field, item.reason = rejects[r.external_id].field, rejects[r.external_id].reason
        out.append(item)
    return out


@router.post("/leads", response_model=CaptureOut, status_code=201)
@commits_in_handler
def capture_lead(
    body: LeadCaptureIn, session: SessionDep, user: Capturer, response: Response
) -> CaptureOut:
    """Capture one lead. 201 created, 200 merged or already captured, 422 rejected."""
    campaign = campaigns_service.resolve(session=session, ref=body.campaign)
    result = capture_retrying(
        session=session, records=[body.to_incoming()], source=body.source,
        campaign_id=campaign.id if campaign else None, now=clock.now(),
        thresholds=thresholds(), actor_id=user.id,
    )
    item = _outputs(result)[0]
    if item.outcome is Outcome.REJECTED:
        response.status_code = 422
    elif item.outcome is not Outcome.CREATED:
        response.status_code = 200
    return item


@router.post("/leads/batch", response_model=BatchOut)
@commits_in_handler
def capture_batch(body: LeadBatchIn, session: SessionDep, user: Capturer) -> BatchOut:
    """Capture many leads from one source; per-record outcomes in file order."""
    campaign = campaigns_service.resolve(session=session, ref=body.campaign)
    result = capture_retrying(
        session=session, records=[r.to_incoming() for r in body.records], source=body.source,
        campaign_id=campaign.id if campaign else None, now=clock.now(),
        thresholds=thresholds(), actor_id=user.id,
    )
    return BatchOut(created=result.created, merged=result.merged, skipped=result.skipped,
                    rejected=len(result.rejects), results=_outputs(result))


async def raw_body(request: Request) -> bytes:
    """The request body exactly as sent (the signature covers these bytes)."""
    return await request.body()


@router.post("/forms/{form_key}", response_model=CaptureOut, tags=["forms"])
@commits_in_handler
def form_webhook(
    form_key: str,
    request: Request,
    body: Annotated[bytes, Depends(raw_body)],
    session: SessionDep,
    response: Response,
    x_leadflow_signature: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> CaptureOut:
    """Public form endpoint: authenticated by ``X-Leadflow-Signature: sha256=<hmac>``.

    A plain ``def``: the database work runs in the thread pool, not on the event loop.
    """
    result = forms.receive(
        session=session, form_key=form_key, body=body,
        content_type=request.headers.get("content-type", ""), signature=x_leadflow_signature,
        idempotency_key=idempotency_key, app_secret=get_settings().resolved_secret_key(),
        now=clock.now(), thresholds=thresholds(),
    )
    item = _outputs(result)[0]
    if item.outcome is Outcome.REJECTED:
        response.status_code = 422
    return item


@router.get("/leads", response_model=LeadListOut)
def list_leads(
    session: SessionDep,
    user: CurrentUser,
    q: str | None = None,
    status: LeadStatus | None = None,
    campaign_id: int | None = None,
    source: str | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> LeadListOut:
    """Leads the caller may see, newest first."""
    flt = leads_service.LeadFilter(q=q, status=status, campaign_id=campaign_id, source=source)
    result = leads_service.list_leads(session=session, user=user, flt=flt, page=page,
                                      per_page=per_page)
    return LeadListOut(items=[_read(x, result.scores.get(x.id)) for x in result.items],
                       total=result.total, page=result.page, per_page=result.per_page)


@router.get("/leads/{lead_id}", response_model=LeadDetail)
def get_lead(lead_id: int, session: SessionDep, user: CurrentUser) -> LeadDetail:
    """A lead with its touchpoints and timeline."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    return LeadDetail(
        lead=_read(lead, session.get(LeadScore, lead.id)),
        touchpoints=[TouchpointRead.model_validate(t)
                     for t in leads_service.touchpoints(session=session, lead_id=lead.id)],
        timeline=[TimelineRead(at=e.at, kind=e.kind, summary=e.summary, detail=e.detail)
                  for e in leads_service.timeline(session=session, lead_id=lead.id)],
    )


@router.post("/leads/merge", response_model=MergeOut)
def merge_leads(body: MergeIn, session: SessionDep, user: Merger) -> MergeOut:
    """Merge two leads by hand (the earlier survives)."""
    for lead_id in body.lead_ids:
        leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    merge = cleaning_service.merge_leads(
        session=session, lead_ids=body.lead_ids, actor_id=user.id, now=clock.now()
    )
    return MergeOut.model_validate(merge)


@router.post("/merges/{merge_id}/undo", status_code=204)
def undo_merge(merge_id: int, session: SessionDep, user: Merger) -> None:
    """Undo a merge: both leads come back as they were (both must be visible to you)."""
    merge = session.get(LeadMerge, merge_id)
    if merge is None:
        raise NotFound(f"merge {merge_id} not found")
    for lead_id in (merge.survivor_id, merge.merged_id):
        leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    cleaning_service.undo_merge(session=session, merge_id=merge_id, actor_id=user.id,
                                now=clock.now())
