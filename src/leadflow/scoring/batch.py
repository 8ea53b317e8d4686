"""Scoring many leads at once as arrays, inside the caller's transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from leadflow.db import bulk_insert_columns, bulk_upsert
from leadflow.events.models import EventKind, OutboxEvent
from leadflow.leads.models import Activity, ActivityKind, Lead
from leadflow.scoring import learning, totals
from leadflow.scoring import service as scoring_service
from leadflow.scoring.facts import (
    MODEL_COLUMNS,
    FactsBatch,
    add_counts,
    needed_fields,
    read_batch,
)
from leadflow.scoring.features import ColumnCodes
from leadflow.scoring.models import LeadScore
from leadflow.scoring.rules import (
    apply_overrides_array,
    combine_array,
    engagement_from_totals,
    fit_scores,
    grades_for_scores,
    kind_matrix,
)
from leadflow.scoring.schemas import GRADES, RulesetDocument, grade_rank

# Below this many leads the one-lead path (two indexed queries) is cheaper than arrays.
ONE_BY_ONE = 4


@dataclass
class RescoreSummary:
    """What a batch re-score did."""

    leads: int = 0
    grade_changes: int = 0
    new_mqls: int = 0
    seconds: float = 0.0
    ruleset_version: int = 0
    model_id: int | None = None
    by_grade: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GRADES, 0))

    @property
    def leads_per_second(self) -> float:
        """Throughput of the run."""
        return self.leads / self.seconds if self.seconds else 0.0


def rescore_leads(
    *, session: Session, lead_ids: Sequence[int], now: datetime, actor_id: int | None = None
) -> None:
    """Score freshly captured or changed leads in the caller's transaction."""
    ids = sorted(set(lead_ids))
    if not ids:
        return
    if len(ids) < ONE_BY_ONE:
        for lead_id in ids:
            scoring_service.rescore_lead(session=session, lead_id=lead_id, now=now,
                                         actor_id=actor_id)
        return
    ruleset, model = scoring_service.in_force(session=session)
    score_chunk(session, {"ids": ids}, ruleset, model, now, RescoreSummary())


def score_chunk(
    session: Session, chunk: dict[str, object], ruleset: scoring_service.Ruleset,
    model: tuple[int, learning.ConversionModel] | None, now: datetime,
    summary: RescoreSummary,
) -> None:
    """Score one chunk of leads (``ids`` or ``id_range``) and store it with its changes.

    Every lead's events are read: these are leads just captured or merged into, whose events
    changed since any stored engagement totals."""
    batch = read_chunk(session, chunk, ruleset.document, now, model=model is not None)
    store_chunk(session, batch, ruleset, model, now, summary)


def read_chunk(
    session: Session, chunk: dict[str, object], document: RulesetDocument, now: datetime,
    *, model: bool, totals_versions: Collection[int] = (),
) -> FactsBatch:
    """The facts of one chunk, reading only what the rules and the model refer to (and the
    events only of leads without usable stored totals)."""
    conditions = [*document.fit.rules, *(c for o in document.grading.overrides for c in o.when)]
    fields, flags, custom = needed_fields(conditions, model=model)
    return read_batch(session=session, now=now, fields=fields, flags=flags, custom_fields=custom,
                      engagement=document.engagement, totals_versions=totals_versions,
                      **chunk)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A chunk's new scores as arrays, with what the leads had before (small to pass between
    processes: no lead fields)."""

    lead_ids: np.ndarray
    fit: np.ndarray
    engagement: np.ndarray
    probability: np.ndarray | None
    score: np.ndarray
    grades: np.ndarray  # object: "A+" … "D"
    is_mql: np.ndarray
    previous_grade: np.ndarray
    previous_mql: np.ndarray
    # New engagement totals to store (see scoring.totals), for the leads at positions
    # ``totals_rows``: those whose events were read. Reused totals hold as stored.
    totals_rows: np.ndarray
    totals: list[bytes]


def score_facts(
    batch: FactsBatch, document: RulesetDocument,
    model: learning.ConversionModel | None,
) -> ScoredChunk:
    """Engagement, fit, the model's probability, score, grade and MQL of a chunk's leads."""
    n = len(batch.frame)
    kinds, counts, points = kind_matrix(batch.events, n)
    engagement = engagement_from_totals(document.engagement, kinds, points)
    frame = add_counts(batch.frame, {kind: counts[:, i] for i, kind in enumerate(kinds)})
    codes: ColumnCodes = {}  # text columns factorized once for the rules and the model
    fit = fit_scores(document.fit, frame, codes)
    probability = percentile = None
    if model is not None and n:
        probability = model.predict_frame(frame[list(MODEL_COLUMNS)], codes)
        percentile = model.percentiles(probability)
    score = combine_array(document, fit, engagement, percentile)
    frame["fit"], frame["engagement"], frame["score"] = fit, engagement, score
    frame["probability"] = probability if probability is not None else np.nan
    ranks = grades_for_scores(document.grading, score)
    ranks = apply_overrides_array(document.grading.overrides, frame, ranks, codes)
    totals_rows = (np.arange(n) if batch.stored_totals is None
                   else np.flatnonzero(~batch.stored_totals))
    return ScoredChunk(
        lead_ids=frame["lead_id"].to_numpy(), fit=fit, engagement=engagement,
        probability=probability, score=score, grades=np.asarray(GRADES, dtype=object)[ranks],
        is_mql=ranks <= grade_rank(document.grading.mql_grade),
        previous_grade=batch.previous_grade, previous_mql=batch.previous_mql,
        totals_rows=totals_rows,
        totals=totals.encode_rows(kinds, counts[totals_rows], points[totals_rows]),
    )


def store_chunk(
    session: Session, batch: FactsBatch, ruleset: scoring_service.Ruleset,
    model: tuple[int, learning.ConversionModel] | None, now: datetime,
    summary: RescoreSummary,
) -> None:
    """Score a chunk read by :func:`read_chunk` and write its scores and changes."""
    scored = score_facts(batch, ruleset.document, model[1] if model else None)
    write_scores(session, scored, ruleset.version, model[0] if model else None, now, summary)


def write_scores(
    session: Session, scored: ScoredChunk, ruleset_version: int, model_id: int | None,
    now: datetime, summary: RescoreSummary,
) -> None:
    """Upsert a chunk's scores; grade changes and MQL crossings go on the timeline."""
    n = len(scored.lead_ids)
    if n == 0:
        return
    same_for_all = {"ruleset_version": ruleset_version, "model_id": model_id, "scored_at": now}
    stored = pd.notna(scored.previous_grade)
    new_totals = np.zeros(n, dtype=bool)
    new_totals[scored.totals_rows] = True
    crossed = stored & scored.is_mql & ~scored.previous_mql
    # Leads scored before are updated in place (on PostgreSQL an UPDATE from the staged rows
    # costs about half an INSERT … ON CONFLICT); first-time leads are inserted. An update
    # writes only what moved: not engagement totals that still hold, nor when the lead first
    # crossed the MQL line (but for this chunk's crossings, a constant: now).
    # (A first-time lead has no stored totals to reuse: its events were read.)
    for rows, update_only, with_totals, crossing in (
            (np.flatnonzero(stored & ~new_totals & ~crossed), True, False, False),
            (np.flatnonzero(stored & ~new_totals & crossed), True, False, True),
            (np.flatnonzero(stored & new_totals & ~crossed), True, True, False),
            (np.flatnonzero(stored & new_totals & crossed), True, True, True),
            (np.flatnonzero(~stored), False, True, False)):
        if not len(rows):
            continue
        columns = _score_columns(scored, rows)
        fixed = dict(same_for_all)
        if with_totals:
            at = np.searchsorted(scored.totals_rows, rows).tolist()
            columns["engagement_totals"] = [scored.totals[i] for i in at]
            fixed["totals_at"] = now
        if crossing:
            fixed["mql_at"] = now
        if not update_only:
            columns["first_grade"] = columns["grade"]
            columns["mql_at"] = [now if m else None for m in columns["is_mql"]]
        bulk_upsert(session, LeadScore.__table__,  # type: ignore[arg-type]
                    columns, key="lead_id", update_only=update_only,
                    keep_existing=("mql_at", "first_grade"), same_for_all=fixed)
    _record_changes(session, scored, now, summary)
    summary.leads += n
    # Counted, not np.unique'd: sorting 50,000 Python strings per chunk cost more.
    for grade, count in Counter(scored.grades.tolist()).items():
        summary.by_grade[grade] += count


def _score_columns(scored: ScoredChunk, rows: np.ndarray) -> dict[str, list[Any]]:
    """The score columns of the leads at positions ``rows``, as plain Python values."""
    return {
        "lead_id": scored.lead_ids[rows].tolist(),
        "fit": np.round(scored.fit[rows], 2).tolist(),
        "engagement": np.round(scored.engagement[rows], 2).tolist(),
        "probability": [None] * len(rows) if scored.probability is None
        else np.round(scored.probability[rows], 5).tolist(),
        "score": np.round(scored.score[rows], 2).tolist(),
        "grade": scored.grades[rows].tolist(),
        "is_mql": scored.is_mql[rows].tolist(),
    }


def _grade_change_detail(before: str, after: str, score: float) -> str:
    """A grade change's detail as JSON text, written directly: a re-grade can produce
    hundreds of thousands, and ``json.dumps`` costs ten times more. Grades are fixed
    two-character names and the score a finite float, so nothing needs escaping."""
    return f'{{"from": "{before}", "to": "{after}", "score": {score!r}}}'


def _mql_detail(grade: str, score: float) -> str:
    """:func:`leadflow.scoring.service.mql_detail` as JSON text, written directly like
    :func:`_grade_change_detail` (a test reads it back against that function)."""
    return f'{{"grade": "{grade}", "score": {score!r}}}'


def _record_changes(
    session: Session, scored: ScoredChunk, now: datetime, summary: RescoreSummary
) -> None:
    """Grade changes and MQL crossings on the timeline, built as columns (one re-grade can
    write hundreds of thousands of rows; a dict per row cost more than the insert)."""
    lead_ids, grades, score = scored.lead_ids, scored.grades, scored.score
    previous = scored.previous_grade
    changed = np.flatnonzero(pd.notna(previous) & (previous != grades))
    crossed = np.flatnonzero(scored.is_mql & ~scored.previous_mql)
    before, after = previous[changed].tolist(), grades[changed].tolist()
    crossed_ids, crossed_grades = lead_ids[crossed].tolist(), grades[crossed].tolist()
    crossed_scores = np.round(score[crossed], 2).tolist()
    crossed_details = [_mql_detail(g, s) for g, s in zip(crossed_grades, crossed_scores,
                                                          strict=True)]
    bulk_insert_columns(session, Activity.__table__, {  # type: ignore[arg-type]
        "lead_id": lead_ids[changed].tolist() + crossed_ids,
        "kind": [ActivityKind.GRADE_CHANGED.value] * len(changed)
        + [ActivityKind.MQL_REACHED.value] * len(crossed),
        "summary": [f"{b} → {a} (re-scored)" for b, a in zip(before, after, strict=True)]
        + [scoring_service.mql_summary(g, s) for g, s in zip(crossed_grades, crossed_scores,
                                                             strict=True)],
        "detail": [_grade_change_detail(b, a, points) for b, a, points in zip(
            before, after, np.round(score[changed], 2).tolist(), strict=True)]
        + crossed_details,
    }, same_for_all={"occurred_at": now, "actor_id": None})
    if crossed_ids:
        bulk_insert_columns(session, OutboxEvent.__table__, {  # type: ignore[arg-type]
            "lead_id": crossed_ids, "payload": crossed_details,
        }, same_for_all={"kind": EventKind.LEAD_MQL.value, "created_at": now, "attempts": 0})
        # Past the MQL line the leads are due for routing (promotion to sales).
        bulk_upsert(session, Lead.__table__, {  # type: ignore[arg-type]
            "id": crossed_ids, "route_due_at": [now] * len(crossed_ids)},
            key="id", update_only=True)
    summary.grade_changes += len(changed)
    summary.new_mqls += len(crossed)
