"""Merging stored leads by hand, and undoing a merge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from leadflow.cleaning.models import LeadMerge
from leadflow.cleaning.rules import FILLABLE_FIELDS, survivorship
from leadflow.errors import Conflict, NotFound
from leadflow.leads.models import Activity, ActivityKind, Lead, LeadStatus, Touchpoint
from leadflow.scoring import totals as scoring_totals


def _fields(lead: Lead) -> dict[str, Any]:
    return {name: getattr(lead, name) for name in FILLABLE_FIELDS}


def merge_leads(
    *,
    session: Session,
    lead_ids: tuple[int, int],
    actor_id: int | None,
    now: datetime,
    keys: tuple[str, ...] = ("manual",),
    similarity: float | None = None,
) -> LeadMerge:
    """Merge two stored leads; the earlier one survives.

    1. The earlier lead (lower id) survives: its values stay, its gaps are filled from the
       other, conflicting values are kept in the merge activity.
    2. The other lead's touchpoints and activities move to the survivor (attribution keeps
       every source); the lead itself stays, marked merged, so links to it still resolve.
    3. A snapshot of what changed is stored so :func:`undo_merge` can restore both leads.
    """
    if lead_ids[0] == lead_ids[1]:
        raise Conflict("a lead cannot be merged with itself")
    leads = {
        lead.id: lead
        for lead in session.scalars(select(Lead).where(Lead.id.in_(lead_ids)).with_for_update())
    }
    for lead_id in lead_ids:
        if lead_id not in leads:
            raise NotFound(f"lead {lead_id} not found")
        if leads[lead_id].status == LeadStatus.MERGED:
            raise Conflict(f"lead {lead_id} is already merged into another lead")
    survivor, merged = leads[min(lead_ids)], leads[max(lead_ids)]
    outcome = survivorship(_fields(survivor), _fields(merged))
    moved_touchpoints = list(
        session.scalars(select(Touchpoint.id).where(Touchpoint.lead_id == merged.id))
    )
    moved_activities = list(
        session.scalars(select(Activity.id).where(Activity.lead_id == merged.id))
    )
    snapshot = {
        "survivor_before": {k: getattr(survivor, k) for k in outcome.filled},
        "filled": outcome.filled,
        "merged_status": merged.status,
        "touchpoint_ids": moved_touchpoints,
        "activity_ids": moved_activities,
        "conflicts": {k: [str(a), str(b)] for k, (a, b) in outcome.conflicts.items()},
    }
    for name, value in outcome.filled.items():
        setattr(survivor, name, value)
    survivor.updated_at = now
    merged.status = LeadStatus.MERGED
    merged.merged_into_id = survivor.id
    merged.updated_at = now
    session.execute(
        update(Touchpoint).where(Touchpoint.lead_id == merged.id).values(lead_id=survivor.id)
    )
    session.execute(
        update(Activity).where(Activity.lead_id == merged.id).values(lead_id=survivor.id)
    )
    scoring_totals.forget(session=session, lead_ids=[survivor.id, merged.id])
    merge = LeadMerge(
        survivor_id=survivor.id, merged_id=merged.id, keys=list(keys), similarity=similarity,
        snapshot=snapshot, actor_id=actor_id, merged_at=now,
    )
    session.add(merge)
    session.flush()
    how = ", ".join(keys) + (f" (similarity {similarity:.2f})" if similarity is not None else "")
    detail = {"merge_id": merge.id, "keys": list(keys), "similarity": similarity,
              "filled": sorted(outcome.filled), "conflicts": snapshot["conflicts"]}
    session.add_all(
        [
            Activity(lead_id=survivor.id, kind=ActivityKind.MERGED, occurred_at=now,
                     actor_id=actor_id, summary=f"lead {merged.id} merged in: {how}",
                     detail=detail),
            Activity(lead_id=merged.id, kind=ActivityKind.MERGED, occurred_at=now,
                     actor_id=actor_id, summary=f"merged into lead {survivor.id}: {how}",
                     detail=detail),
        ]
    )
    session.flush()
    return merge


def undo_merge(*, session: Session, merge_id: int, actor_id: int | None, now: datetime) -> None:
    """Split a merge: restore the merged lead, its touchpoints and activities.

    Fields the merge filled on the survivor are restored only where nobody changed them
    since, so later edits are never lost.
    """
    merge = session.get(LeadMerge, merge_id, with_for_update=True)
    if merge is None:
        raise NotFound(f"merge {merge_id} not found")
    if merge.undone_at is not None:
        raise Conflict(f"merge {merge_id} was already undone")
    survivor = session.get(Lead, merge.survivor_id)
    merged = session.get(Lead, merge.merged_id)
    assert survivor is not None and merged is not None
    snap = merge.snapshot
    for name, filled in snap["filled"].items():
        if getattr(survivor, name) == filled:
            setattr(survivor, name, snap["survivor_before"].get(name))
    survivor.updated_at = now
    merged.status = LeadStatus(snap["merged_status"])
    merged.merged_into_id = None
    merged.updated_at = now
    if snap["touchpoint_ids"]:
        session.execute(
            update(Touchpoint)
            .where(Touchpoint.id.in_(snap["touchpoint_ids"]))
            .values(lead_id=merged.id)
        )
    if snap["activity_ids"]:
        session.execute(
            update(Activity).where(Activity.id.in_(snap["activity_ids"])).values(lead_id=merged.id)
        )
    scoring_totals.forget(session=session, lead_ids=[survivor.id, merged.id])
    merge.undone_at = now
    detail = {"merge_id": merge.id}
    session.add_all(
        [
            Activity(lead_id=survivor.id, kind=ActivityKind.MERGE_UNDONE, occurred_at=now,
                     actor_id=actor_id, summary=f"merge with lead {merged.id} undone",
                     detail=detail),
            Activity(lead_id=merged.id, kind=ActivityKind.MERGE_UNDONE, occurred_at=now,
                     actor_id=actor_id, summary=f"split from lead {survivor.id}", detail=detail),
        ]
    )
    session.flush()


def merges_of(*, session: Session, lead_id: int) -> list[LeadMerge]:
    """Merges a lead took part in, newest first."""
    return list(
        session.scalars(
            select(LeadMerge)
            .where((LeadMerge.survivor_id == lead_id) | (LeadMerge.merged_id == lead_id))
            .order_by(LeadMerge.id.desc())
        )
    )
