"""Campaigns: creating and finding them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow.campaigns.models import OFFLINE_CHANNELS, Campaign, Channel
from leadflow.campaigns.schemas import CampaignCreate
from leadflow.errors import Conflict, NotFound
from leadflow.leads.models import Lead, LeadStatus, Touchpoint


def create_campaign(*, session: Session, data: CampaignCreate, now: datetime) -> Campaign:
    """Create a campaign (names are unique)."""
    if session.scalar(select(Campaign.id).where(Campaign.name == data.name)):
        raise Conflict(f"campaign {data.name!r} already exists", field="name")
    is_online = data.is_online if data.is_online is not None else (
        Channel(data.channel) not in OFFLINE_CHANNELS
    )
    campaign = Campaign(**data.model_dump(exclude={"is_online"}), is_online=is_online,
                        created_at=now)
    session.add(campaign)
    session.flush()
    return campaign


def resolve(*, session: Session, ref: str | int | None) -> Campaign | None:
    """A campaign by id or exact name; ``None`` for no reference."""
    if ref is None or ref == "":
        return None
    campaign = None
    if isinstance(ref, int) or str(ref).isdigit():
        campaign = session.get(Campaign, int(ref))
    if campaign is None:
        campaign = session.scalar(select(Campaign).where(Campaign.name == str(ref)))
    if campaign is None:
        raise NotFound(f"campaign {ref!r} not found", field="campaign")
    return campaign


@dataclass(frozen=True, slots=True)
class CampaignRow:
    """A campaign with its lead counts, for the campaign list."""

    campaign: Campaign
    touchpoints: int
    leads: int
    cost_per_lead: Decimal | None


def list_campaigns(*, session: Session) -> list[CampaignRow]:
    """All campaigns with captured records and distinct leads, newest first."""
    touch_counts: dict[int | None, int] = {
        campaign_id: n
        for campaign_id, n in session.execute(
            select(Touchpoint.campaign_id, func.count()).group_by(Touchpoint.campaign_id)
        )
    }
    lead_counts: dict[int | None, int] = {
        campaign_id: n
        for campaign_id, n in session.execute(
            select(Lead.campaign_id, func.count())
            .where(Lead.status != LeadStatus.MERGED)
            .group_by(Lead.campaign_id)
        )
    }
    rows = []
    for campaign in session.scalars(select(Campaign).order_by(Campaign.id.desc())):
        leads = lead_counts.get(campaign.id, 0)
        cpl = (campaign.cost / leads).quantize(Decimal("0.01")) if leads else None
        rows.append(CampaignRow(campaign, touch_counts.get(campaign.id, 0), leads, cpl))
    return rows
