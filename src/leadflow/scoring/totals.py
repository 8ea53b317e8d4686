"""Each lead's engagement totals per activity kind, stored beside its score.

A re-score after a change to the fit rules, the grading or the model does not need the
lead's events again: every event of a kind decays at the same rate, so the kind's decayed
points at any later time are its total at scoring time times one decay factor. The totals are
kept *before* the kind's cap, which is applied afresh each time.

The totals are only valid for the engagement configuration that produced them (the batch
re-score checks the rule-set version they were scored under) and only while the lead's
events are unchanged: every path that adds or moves engagement events re-scores the lead or
forgets its totals (:func:`forget`).

Stored as a small binary record per kind the lead has (kind code, count, points), so a
batch decodes 50,000 leads' totals with one ``frombuffer`` rather than 50,000 JSON parses.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

import numpy as np
from sqlalchemy import update
from sqlalchemy.orm import Session

from leadflow.leads.models import ActivityKind
from leadflow.scoring.models import LeadScore
from leadflow.scoring.rules import KindSums

# Stable codes: stored data refers to them, so a kind keeps its code forever (append only).
KIND_CODES: dict[str, int] = {
    kind.value: code
    for code, kind in enumerate(
        (
            ActivityKind.CAPTURED, ActivityKind.FORM_SUBMITTED, ActivityKind.EMAIL_OPENED,
            ActivityKind.EMAIL_CLICKED, ActivityKind.CONTENT_READ, ActivityKind.WEB_VISIT,
            ActivityKind.WEBINAR_ATTENDED, ActivityKind.COMMUNITY_CLASS,
            ActivityKind.PAID_CONSULTATION, ActivityKind.GIFT_CLAIMED, ActivityKind.REPLIED,
            ActivityKind.MEETING_BOOKED, ActivityKind.EMAIL_BOUNCED, ActivityKind.UNSUBSCRIBED,
            ActivityKind.NOT_INTERESTED,
        ),
        start=1,
    )
}
_KIND_BY_CODE = np.array([None, *KIND_CODES], dtype=object)
RECORD = np.dtype([("kind", "u1"), ("count", "<u4"), ("points", "<f8")])  # packed: 13 bytes


_PACK = struct.Struct("<BId")  # the layout of RECORD, for one lead at a time (no numpy)


def encode(totals: Mapping[str, tuple[int, float]]) -> bytes:
    """One lead's totals (``kind → (count, decayed points now)``) as stored."""
    return b"".join(_PACK.pack(KIND_CODES[kind], count, points)
                    for kind, (count, points) in totals.items() if count)


def encode_rows(kinds: Sequence[str], counts: np.ndarray, points: np.ndarray) -> list[bytes]:
    """Many leads' totals from ``n × k`` matrices of counts and points (one column per kind
    in ``kinds``), one ``bytes`` per lead (empty for a lead without events)."""
    n = counts.shape[0]
    if not len(kinds) or n == 0:
        return [b""] * n
    codes = np.array([KIND_CODES[str(kind)] for kind in kinds], dtype=np.uint8)
    rows, columns = np.nonzero(counts)  # row-major: each lead's kinds are adjacent
    records = np.empty(len(rows), dtype=RECORD)
    records["kind"] = codes[columns]
    records["count"] = counts[rows, columns]
    records["points"] = points[rows, columns]
    raw = records.tobytes()
    ends = np.cumsum(np.bincount(rows, minlength=n)) * RECORD.itemsize
    starts = np.concatenate(([0], ends[:-1]))
    return [raw[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def decode_rows(
    blobs: Sequence[bytes], rows: np.ndarray, age_days: np.ndarray, half_life_days: float
) -> KindSums:
    """Stored totals of the leads at positions ``rows``, decayed by ``age_days`` (the time
    since each was stored) to now, as per-(lead, kind) sums."""
    lengths = np.array(list(map(len, blobs)), dtype=np.int64)
    records = np.frombuffer(b"".join(blobs), dtype=RECORD)
    per_lead = lengths // RECORD.itemsize
    row = np.repeat(rows.astype(np.int64), per_lead)
    factor = np.repeat(0.5 ** (np.maximum(age_days, 0.0) / half_life_days), per_lead)
    return KindSums(
        row=row, kind=_KIND_BY_CODE[records["kind"]],
        count=records["count"].astype(np.int64), points=records["points"] * factor,
    )


def concat(parts: Sequence[KindSums]) -> KindSums:
    """Several chunks of per-(lead, kind) sums as one."""
    return KindSums(
        row=np.concatenate([p.row for p in parts]).astype(np.int64),
        kind=np.concatenate([p.kind for p in parts]).astype(object),
        count=np.concatenate([p.count for p in parts]).astype(np.int64),
        points=np.concatenate([p.points for p in parts]).astype(float),
    )


def forget(*, session: Session, lead_ids: Sequence[int] | None = None) -> None:
    """Drop stored totals (of ``lead_ids``, or of every lead) whose events changed other than
    through a re-score, so the next batch re-score reads those leads' events again."""
    stmt = update(LeadScore).values(engagement_totals=None)
    if lead_ids is not None:
        stmt = stmt.where(LeadScore.lead_id.in_(list(lead_ids)))
    session.execute(stmt)
