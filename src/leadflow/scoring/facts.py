"""What scoring knows about leads: their fields, their campaign's channel, their events.

One lead is read with two indexed queries (the request path); a batch is read as columns by
id range, with event ages computed in SQL so a million timestamps never become Python objects.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, literal, select, text, union_all
from sqlalchemy.orm import Session

from leadflow.campaigns.models import Campaign
from leadflow.leads.models import ENGAGEMENT_KINDS, Activity, Lead, LeadStatus, Touchpoint
from leadflow.scoring.models import LeadScore
from leadflow.scoring.rules import ACTIVITY_PREFIX, EngagementEvent, EventArrays

# Lead columns a rule or the model may read (``channel`` comes from the campaign).
LEAD_FACT_COLUMNS: tuple[str, ...] = (
    "industry", "headcount", "region", "province", "city", "title", "company",
    "product_interest", "language", "source", "phone", "email", "wechat_id", "consent",
    "do_not_contact", "status", "tags",
)
_ENGAGEMENT = sorted(k.value for k in ENGAGEMENT_KINDS)
# Features the learned model sees for leads in the database.
MODEL_COLUMNS: tuple[str, ...] = (
    "industry", "headcount", "province", "title", "product_interest", "source", "channel",
    "language", "has_phone", "has_email", "has_wechat",
    *(f"{ACTIVITY_PREFIX}{kind}" for kind in _ENGAGEMENT),
)
_CONTACT_FLAGS = (("phone", "has_phone"), ("email", "has_email"), ("wechat_id", "has_wechat"))


@dataclass(frozen=True, slots=True)
class PreviousScore:
    """What a lead's stored score said before this re-score."""

    grade: str | None
    is_mql: bool
    first_grade: str | None


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """One lead as scoring sees it."""

    lead_id: int
    facts: dict[str, Any]
    events: list[EngagementEvent]
    previous: PreviousScore


def _with_flags(facts: dict[str, Any]) -> dict[str, Any]:
    for column, flag in _CONTACT_FLAGS:
        facts[flag] = 0 if facts.get(column) in (None, "") else 1
    return facts


def with_counts(facts: Mapping[str, Any], events: Sequence[EngagementEvent]) -> dict[str, Any]:
    """``facts`` plus ``activity.<kind>`` counts for every engagement kind (0 when none)."""
    out = dict(facts)
    for kind in _ENGAGEMENT:
        out[f"{ACTIVITY_PREFIX}{kind}"] = 0
    for event in events:
        key = f"{ACTIVITY_PREFIX}{event.kind}"
        out[key] = out.get(key, 0) + 1
    return out


def read_lead(*, session: Session, lead_id: int) -> LeadFacts | None:
    """Facts, events and previous score of one lead; ``None`` if it is gone or merged."""
    row = session.execute(
        select(*(getattr(Lead, c) for c in LEAD_FACT_COLUMNS), Lead.custom_fields,
               Campaign.channel, LeadScore.grade, LeadScore.is_mql, LeadScore.first_grade)
        .outerjoin(Campaign, Campaign.id == Lead.campaign_id)
        .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
        .where(Lead.id == lead_id, Lead.status != LeadStatus.MERGED)
    ).one_or_none()
    if row is None:
        return None
    values = list(row)
    facts: dict[str, Any] = dict(zip(LEAD_FACT_COLUMNS, values, strict=False))
    custom, channel, grade, mql, first_grade = values[len(LEAD_FACT_COLUMNS):]
    facts["channel"] = channel
    for name, value in (custom or {}).items():
        facts[f"custom.{name}"] = value
    kinds = [k.value for k in ENGAGEMENT_KINDS]
    rows: Sequence[Any] = session.execute(
        union_all(
            select(Activity.kind, Activity.occurred_at, Activity.value, Activity.ref)
            .where(Activity.lead_id == lead_id, Activity.kind.in_(kinds)),
            select(literal("captured"), Touchpoint.received_at, literal(None), literal(None))
            .where(Touchpoint.lead_id == lead_id),
        )
    ).all()
    events = [EngagementEvent(str(k), _aware(at), v, r) for k, at, v, r in rows]
    return LeadFacts(lead_id, _with_flags(facts), events,
                     PreviousScore(grade, bool(mql), first_grade))


def _aware(value: Any) -> datetime:
    # Core unions lose the column type on SQLite; parse what the driver hands back.
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FactsBatch:
    """Many leads as columns (``frame`` indexed by position; ``lead_id`` holds the ids)."""

    frame: pd.DataFrame
    events: EventArrays
    previous_grade: np.ndarray  # object: str or None
    previous_mql: np.ndarray  # bool


def _now_param(session: Session, now: datetime) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return now.strftime("%Y-%m-%d %H:%M:%S.%f")
    return now


def read_batch(
    *, session: Session, now: datetime, id_range: tuple[int, int] | None = None,
    ids: Sequence[int] | None = None, custom_fields: Collection[str] = (),
    with_tags: bool = False,
) -> FactsBatch:
    """Facts of the live leads with ids in ``[low, high)`` or in ``ids``, as columns."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    params: dict[str, Any]
    binds: list[Any]
    if ids is not None:
        where, params = "l.id IN :ids", {"ids": list(ids)}
        binds = [bindparam("ids", expanding=True)]
    else:
        assert id_range is not None
        where, params = "l.id >= :low AND l.id < :high", {"low": id_range[0], "high": id_range[1]}
        binds = []
    columns = [c for c in LEAD_FACT_COLUMNS if c != "tags" or with_tags]
    custom = ", l.custom_fields" if custom_fields else ""
    select_leads = text(
        f"SELECT l.id, {', '.join('l.' + c for c in columns)}{custom}, c.channel, "
        "s.grade, s.is_mql FROM lead l "
        "LEFT JOIN campaign c ON c.id = l.campaign_id "
        "LEFT JOIN lead_score s ON s.lead_id = l.id "
        f"WHERE {where} AND l.status != 'merged' ORDER BY l.id"
    ).bindparams(*binds)
    rows = session.execute(select_leads, params).all()
    names = ["lead_id", *columns, *(["custom_fields"] if custom_fields else []), "channel",
             "_grade", "_mql"]
    frame = pd.DataFrame.from_records(rows, columns=names)
    if with_tags:
        frame["tags"] = frame["tags"].map(_json_list)
    if custom_fields:
        parsed = frame.pop("custom_fields").map(_json_dict)
        for name in custom_fields:
            frame[f"custom.{name}"] = parsed.map(lambda d, n=name: d.get(n))
    for column, flag in _CONTACT_FLAGS:
        frame[flag] = frame[column].notna().astype(np.int8)
    previous_grade = frame.pop("_grade").to_numpy(dtype=object)
    previous_mql = frame.pop("_mql").fillna(False).astype(bool).to_numpy()
    events = _read_events(session, frame["lead_id"].to_numpy(), where, params, binds, now,
                          sqlite)
    return FactsBatch(frame, events, previous_grade, previous_mql)


def _read_events(
    session: Session, lead_ids: np.ndarray, where: str, params: dict[str, Any],
    binds: list[Any], now: datetime, sqlite: bool,
) -> EventArrays:
    if sqlite:
        age = "julianday(:now) - julianday({col})"
    else:
        age = "EXTRACT(EPOCH FROM (CAST(:now AS timestamptz) - {col})) / 86400.0"
    kinds = ", ".join(f"'{k}'" for k in _ENGAGEMENT)
    lead_where = where.replace("l.id", "x.lead_id")
    sql = text(
        f"SELECT x.lead_id, x.kind, {age.format(col='x.occurred_at')}, x.value, x.ref "
        f"FROM activity x WHERE {lead_where} AND x.kind IN ({kinds}) "
        f"UNION ALL SELECT x.lead_id, 'captured', {age.format(col='x.received_at')}, "
        f"NULL, NULL FROM touchpoint x WHERE {lead_where}"
    ).bindparams(*binds)
    rows = session.execute(sql, {**params, "now": _now_param(session, now)}).all()
    if not rows:
        empty = np.array([], dtype=object)
        return EventArrays(np.array([], dtype=np.int64), empty, np.array([]), np.array([]),
                           empty)
    lead_col, kind_col, age_col, value_col, ref_col = zip(*rows, strict=True)
    # Events of merged leads are not in the frame: drop them.
    positions = np.searchsorted(lead_ids, np.asarray(lead_col, dtype=np.int64))
    positions = np.minimum(positions, max(len(lead_ids) - 1, 0))
    keep = lead_ids[positions] == np.asarray(lead_col, dtype=np.int64) if len(lead_ids) \
        else np.zeros(len(lead_col), dtype=bool)
    return EventArrays(
        row=positions[keep],
        kind=np.asarray(kind_col, dtype=object)[keep],
        age_days=np.asarray(age_col, dtype=float)[keep],
        value=np.asarray([np.nan if v is None else v for v in value_col], dtype=float)[keep],
        ref=np.asarray(ref_col, dtype=object)[keep],
    )


def _json_list(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value) if value not in ("", "[]") else []
    return value or []


def _json_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return json.loads(value) if value not in ("", "{}") else {}
    return value or {}


def add_counts(frame: pd.DataFrame, counts: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Add ``activity.<kind>`` count columns for every engagement kind (0 when none)."""
    n = len(frame)
    extra = {f"{ACTIVITY_PREFIX}{kind}": counts.get(kind, np.zeros(n, dtype=np.int64))
             for kind in _ENGAGEMENT}
    return pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1)
