"""Exports of leads and touchpoints (permission-checked and audited by the caller)."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from leadflow.campaigns.models import Campaign
from leadflow.leads import files
from leadflow.leads.models import Lead, Touchpoint
from leadflow.leads.service import LeadFilter, apply_filter, visible_leads
from leadflow.scoring.models import LeadScore
from leadflow.users.models import User


class ExportKind(StrEnum):
    """What can be exported."""

    LEADS = "leads"
    TOUCHPOINTS = "touchpoints"


LEAD_COLUMNS = ("id", "name", "phone", "email", "wechat_id", "title", "company", "industry",
                "headcount", "region", "province", "city", "address", "postcode",
                "product_interest", "status", "owner_id", "source", "campaign_id",
                "consent", "do_not_contact", "created_at")
SCORE_COLUMNS = ("grade", "score", "fit", "engagement", "probability")
TOUCHPOINT_COLUMNS = ("source", "external_id", "lead_id", "campaign", "campaign_id",
                      "received_at", "import_job_id")


def export(
    *, session: Session, user: User, kind: ExportKind, path: Path, fmt: str,
    flt: LeadFilter | None = None,
) -> int:
    """Write what ``user`` may see (narrowed by ``flt``) to ``path``; returns the row count."""
    lead_ids = visible_leads(user, include_merged=kind is ExportKind.TOUCHPOINTS)
    if flt is not None:
        lead_ids = apply_filter(lead_ids, flt)
    if kind is ExportKind.LEADS:
        stmt = (
            lead_ids.add_columns(*(getattr(LeadScore, c) for c in SCORE_COLUMNS))
            .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
            .order_by(Lead.id).execution_options(yield_per=5000)
        )

        def lead_rows() -> Iterator[list[object]]:
            for lead, *score in session.execute(stmt):
                yield [*(_cell(getattr(lead, c)) for c in LEAD_COLUMNS), *score]

        return files.write_rows(path, [*LEAD_COLUMNS, *SCORE_COLUMNS], lead_rows(), fmt=fmt)
    visible = lead_ids.with_only_columns(lead_ids.selected_columns.id)
    tstmt = (
        select(Touchpoint.source, Touchpoint.external_id, Touchpoint.lead_id, Campaign.name,
               Touchpoint.campaign_id, Touchpoint.received_at, Touchpoint.import_job_id)
        .outerjoin(Campaign, Campaign.id == Touchpoint.campaign_id)
        .where(Touchpoint.lead_id.in_(visible))
        .order_by(Touchpoint.id)
        .execution_options(yield_per=5000)
    )

    def touch_rows() -> Iterator[list[object]]:
        for row in session.execute(tstmt):
            yield [_cell(v) for v in row]

    return files.write_rows(path, list(TOUCHPOINT_COLUMNS), touch_rows(), fmt=fmt)


def _cell(value: object) -> object:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
