"""Campaign API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from leadflow import clock
from leadflow.campaigns import service as campaigns_service
from leadflow.campaigns.schemas import CampaignCreate, CampaignRead
from leadflow.deps import SessionDep, require
from leadflow.users.models import User
from leadflow.users.rules import Permission

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"])


@router.get("", response_model=list[CampaignRead])
def list_campaigns(
    session: SessionDep, _user: Annotated[User, Depends(require(Permission.CAMPAIGNS_READ))]
) -> list[CampaignRead]:
    """All campaigns."""
    rows = campaigns_service.list_campaigns(session=session)
    return [CampaignRead.model_validate(r.campaign) for r in rows]


@router.post("", response_model=CampaignRead, status_code=201)
def create_campaign(
    body: CampaignCreate,
    session: SessionDep,
    _user: Annotated[User, Depends(require(Permission.CAMPAIGNS_MANAGE))],
) -> CampaignRead:
    """Create a campaign."""
    campaign = campaigns_service.create_campaign(session=session, data=body, now=clock.now())
    return CampaignRead.model_validate(campaign)
