"""Scoring decisions: fit from the ideal customer profile, engagement with decay, the grade.

Pure: no session, no clock (``now`` is passed in). Each decision exists twice, for one lead
(with reasons, for the request path and the lead page) and for a whole batch as numpy arrays
(for re-scoring a million leads). Conditions share one definition of their meaning: the batch
form evaluates :func:`condition_holds` once per distinct value and spreads the answers, so the
two forms cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from leadflow.scoring.features import ColumnCodes, factorize_column
from leadflow.scoring.schemas import (
    GRADES,
    ActivityPoints,
    Condition,
    EngagementConfig,
    FitConfig,
    GradingConfig,
    Op,
    Override,
    RulesetDocument,
    grade_rank,
)

SECONDS_PER_DAY = 86_400.0
ACTIVITY_PREFIX = "activity."

# English wording of engagement reasons; pages translate the same msgids.
ACTIVITY_PHRASES: dict[str, tuple[str, str]] = {
    "captured": ("left details once", "left details {n} times"),
    "form_submitted": ("submitted a form", "submitted {n} forms"),
    "email_opened": ("opened an email", "opened {n} emails"),
    "email_clicked": ("clicked an email link", "clicked {n} email links"),
    "content_read": ("read content", "read content {n} times"),
    "web_visit": ("visited the website", "visited the website {n} times"),
    "webinar_attended": ("attended a webinar", "attended {n} webinars"),
    "community_class": ("attended a community class", "attended {n} community classes"),
    "paid_consultation": ("paid for a consultation", "paid for {n} consultations"),
    "gift_claimed": ("claimed a free gift", "claimed {n} free gifts"),
    "replied": ("replied", "replied {n} times"),
    "meeting_booked": ("booked a meeting", "booked {n} meetings"),
    "email_bounced": ("email bounced", "email bounced {n} times"),
    "unsubscribed": ("unsubscribed", "unsubscribed {n} times"),
    "not_interested": ("said not interested", "said not interested {n} times"),
}


@dataclass(frozen=True, slots=True)
class Reason:
    """One contribution to a score, with enough structure for a page to word it."""

    source: str  # fit | engagement | model | override
    key: str  # the field, activity kind or feature
    value: str  # what the lead has there
    points: float
    text: str  # English wording for the API and CLI
    count: int = 0
    label: str = ""  # the admin's name for the rule, if any


@dataclass(frozen=True, slots=True)
class EngagementEvent:
    """Something the lead did, as scoring sees it."""

    kind: str
    occurred_at: datetime
    value: float | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class ScoreDecision:
    """The score of one lead and why."""

    fit: float
    engagement: float
    probability: float | None
    score: float
    grade: str
    is_mql: bool
    reasons: tuple[Reason, ...] = field(default_factory=tuple)
    override: str | None = None
    # Per activity kind: events and decayed points before caps (what scoring.totals stores).
    kind_totals: Mapping[str, tuple[int, float]] = field(default_factory=dict)


# --- conditions -----------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, (list, tuple)):
        return len(value) == 0
    return False


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().casefold()


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def condition_holds(cond: Condition, value: Any) -> bool:
    """True when a lead whose field holds ``value`` meets ``cond``.

    1. ``present``/``missing`` look at emptiness only (None, NaN, blank text, empty list).
    2. A list value (tags) meets a text condition when any element does.
    3. Text compares case-insensitively and trimmed; whole numbers compare as integers.
    4. Number conditions on a missing or non-numeric value are false.
    5. ``ne`` and ``not_in`` are the negations of ``eq`` and ``in`` (so missing meets them).
    """
    if cond.op is Op.PRESENT:
        return not _is_missing(value)
    if cond.op is Op.MISSING:
        return _is_missing(value)
    items = [v for v in (value if isinstance(value, (list, tuple)) else [value])
             if not _is_missing(v)]
    op = cond.op
    if op in (Op.EQ, Op.NE, Op.IN, Op.NOT_IN):
        targets = {_text(v) for v in (cond.value if isinstance(cond.value, list)
                                      else [cond.value])}
        hit = any(_text(i) in targets for i in items)
        return hit if op in (Op.EQ, Op.IN) else not hit
    if op is Op.CONTAINS:
        keywords = [_text(k) for k in cond.value]
        return any(k in _text(i) for i in items for k in keywords)
    numbers = [n for n in (_to_float(i) for i in items) if n is not None]
    if op is Op.GTE:
        return any(n >= cond.value for n in numbers)
    if op is Op.LTE:
        return any(n <= cond.value for n in numbers)
    low, high = cond.value
    return any((low is None or n >= low) and (high is None or n <= high) for n in numbers)


def condition_mask(
    cond: Condition, column: pd.Series | None, n: int, codes: ColumnCodes | None = None
) -> np.ndarray:
    """``condition_holds`` over a whole column.

    Numbers compared with numbers, and emptiness of numbers, are plain array operations
    (they mean the same as in :func:`condition_holds`: NaN is missing, and missing fails a
    comparison); any other condition is answered once per distinct value and spread back.
    ``codes`` keeps each column's distinct values for the next condition on it.
    """
    if column is None:
        return np.full(n, condition_holds(cond, None), dtype=bool)
    numeric = column.dtype.kind in "iuf"
    if numeric and cond.op in (Op.PRESENT, Op.MISSING):
        missing = column.isna().to_numpy()
        return missing if cond.op is Op.MISSING else ~missing
    if numeric and cond.op in (Op.GTE, Op.LTE, Op.BETWEEN):
        values = column.to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            if cond.op is Op.GTE:
                return values >= cond.value
            if cond.op is Op.LTE:
                return values <= cond.value
            low, high = cond.value
            hit = ~np.isnan(values)
            if low is not None:
                hit &= values >= low
            if high is not None:
                hit &= values <= high
            return hit
    value_codes, uniques = factorize_column(column, codes)
    answers = np.fromiter((condition_holds(cond, u) for u in uniques), dtype=bool,
                          count=len(uniques))
    when_missing = condition_holds(cond, None)
    if len(answers) == 0:
        return np.full(n, when_missing, dtype=bool)
    return np.where(value_codes >= 0, answers[np.maximum(value_codes, 0)], when_missing)


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- fit ------------------------------------------------------------------------------------


def fit_score(config: FitConfig, facts: Mapping[str, Any]) -> tuple[float, list[Reason]]:
    """Fit on 0..100: the points of every rule the lead meets, clamped to ``0..max``."""
    total = 0.0
    reasons: list[Reason] = []
    for rule in config.rules:
        value = facts.get(rule.field)
        if condition_holds(rule, value):
            total += rule.points
            label = rule.label or rule.field
            shown = _shown(value) if not _is_missing(value) else "—"
            reasons.append(Reason("fit", rule.field, shown, rule.points,
                                  f"{label}: {rule.field} = {shown} ({rule.points:+g})",
                                  label=rule.label))
    return _fit_percent(config, total), reasons


def _fit_percent(config: FitConfig, total: float) -> float:
    return min(max(total, 0.0), config.max) / config.max * 100.0


def fit_scores(
    config: FitConfig, frame: pd.DataFrame, codes: ColumnCodes | None = None
) -> np.ndarray:
    """Fit of every row of ``frame`` (columns named like the fact keys)."""
    n = len(frame)
    total = np.zeros(n)
    codes = {} if codes is None else codes
    for rule in config.rules:
        column = frame[rule.field] if rule.field in frame.columns else None
        total += np.where(condition_mask(rule, column, n, codes), rule.points, 0.0)
    return np.clip(total, 0.0, config.max) / config.max * 100.0


# --- engagement -----------------------------------------------------------------------------


def decay(age_days: float, half_life_days: float) -> float:
    """Weight of an event ``age_days`` old: 1 now, ½ after one half-life (future counts as now)."""
    return float(0.5 ** (max(age_days, 0.0) / half_life_days))


def event_points(rule: ActivityPoints, value: float | None, ref: str | None) -> float:
    """Points of one event before decay: a matching page's points, times the value if asked."""
    points = rule.points
    if ref and rule.pages:
        lowered = ref.casefold()
        for page, page_points in rule.pages.items():
            if page.casefold() in lowered:
                points = page_points
                break
    if rule.per_value and value is not None and not math.isnan(value):
        points *= value
    return points


def kind_totals(
    config: EngagementConfig, events: Iterable[EngagementEvent], now: datetime
) -> dict[str, tuple[int, float]]:
    """Per activity kind: how many events and their decayed points now, before the cap
    (steps 1 and 2 of :func:`engagement_score`; kinds without points count 0 points)."""
    totals: dict[str, tuple[int, float]] = {}
    for event in events:
        count, points = totals.get(event.kind, (0, 0.0))
        rule = config.activities.get(event.kind)
        if rule is not None:
            age = (now - event.occurred_at).total_seconds() / SECONDS_PER_DAY
            points += event_points(rule, event.value, event.ref) * decay(
                age, config.half_life_days)
        totals[event.kind] = (count + 1, points)
    return totals


def engagement_score(
    config: EngagementConfig, events: Iterable[EngagementEvent], now: datetime
) -> tuple[float, list[Reason], dict[str, int]]:
    """Engagement points now, the reasons per activity kind, and how many of each kind.

    1. Each event earns its kind's points (or its page's), times its value when per-value.
    2. Points decay by half every ``half_life_days``.
    3. Each kind's total is bounded by its cap (both signs), then all kinds are summed.
    4. The sum is clamped to ``min_total..max_total``.
    """
    return engagement_from_kinds(config, kind_totals(config, events, now))


def engagement_from_kinds(
    config: EngagementConfig, per_kind: Mapping[str, tuple[int, float]]
) -> tuple[float, list[Reason], dict[str, int]]:
    """Steps 3 and 4 of :func:`engagement_score` on :func:`kind_totals`' result."""
    total = 0.0
    reasons: list[Reason] = []
    for kind, (n, points) in per_kind.items():
        if kind not in config.activities:
            continue
        cap = config.activities[kind].cap
        if cap is not None:
            points = min(max(points, -cap), cap)
        total += points
        singular, plural = ACTIVITY_PHRASES.get(kind, (kind, f"{kind} ×{{n}}"))
        words = (singular if n == 1 else plural).format(n=n)
        reasons.append(Reason("engagement", kind, str(n), round(points, 1),
                              f"{words} ({points:+.0f})", count=n))
    counts = {kind: n for kind, (n, _) in per_kind.items()}
    return _clamp_engagement(config, total), reasons, counts


def _clamp_engagement(config: EngagementConfig, total: float) -> float:
    return min(max(total, config.min_total), config.max_total)


@dataclass(frozen=True, slots=True)
class KindSums:
    """Many leads' events summed per (lead, kind): ``row`` is the lead's position in the
    batch, ``points`` the decayed points of those events (computed where the events are)."""

    row: np.ndarray  # int
    kind: np.ndarray  # object (str)
    count: np.ndarray  # int
    points: np.ndarray  # float


def engagement_scores(
    config: EngagementConfig, sums: KindSums, n: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Engagement of ``n`` leads from their per-kind sums (steps 3 and 4 of
    :func:`engagement_score`), and how many events of each kind each lead has."""
    kinds, counts, totals = kind_matrix(sums, n)
    by_kind = {kind: counts[:, i].astype(np.int64) for i, kind in enumerate(kinds)}
    return engagement_from_totals(config, kinds, totals), by_kind


def kind_matrix(sums: KindSums, n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The kinds present in ``sums`` and two ``n × kinds`` matrices: each lead's event count
    and decayed points (before caps) per kind."""
    kind_codes, kinds = pd.factorize(sums.kind)
    k = max(len(kinds), 1)
    flat = sums.row.astype(np.int64) * k + kind_codes
    if not len(flat):
        return [], np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0))
    counts = np.bincount(flat, weights=sums.count, minlength=n * k).reshape(n, k)
    totals = np.bincount(flat, weights=sums.points, minlength=n * k).reshape(n, k)
    return [str(kind) for kind in kinds], counts.astype(np.int64), totals


def engagement_from_totals(
    config: EngagementConfig, kinds: Sequence[str], totals: np.ndarray
) -> np.ndarray:
    """Engagement from per-kind decayed points: each kind capped, summed, then clamped."""
    if not len(kinds):
        return np.clip(np.zeros(totals.shape[0]), config.min_total, config.max_total)
    caps = np.array([_cap(config, kind) for kind in kinds])
    totals = np.clip(totals, -caps, caps)
    return np.clip(totals.sum(axis=1), config.min_total, config.max_total)


def _cap(config: EngagementConfig, kind: str) -> float:
    rule = config.activities.get(kind)
    return math.inf if rule is None or rule.cap is None else rule.cap


# --- combining and grading ------------------------------------------------------------------


def combine(
    document: RulesetDocument, fit: float, engagement: float, model_percentile: float | None
) -> float:
    """The 0..100 score: a weighted mean of fit, engagement and the model's percentile.

    Without a model (cold start) its weight drops out and the rules carry the score.
    """
    weights = document.grading.weights
    engagement_percent = engagement / document.engagement.max_total * 100.0
    total = weights.fit * fit + weights.engagement * engagement_percent
    weight = weights.fit + weights.engagement
    if model_percentile is not None and weights.model > 0:
        total += weights.model * model_percentile
        weight += weights.model
    return min(max(total / weight, 0.0), 100.0)


def combine_array(
    document: RulesetDocument, fit: np.ndarray, engagement: np.ndarray,
    model_percentile: np.ndarray | None,
) -> np.ndarray:
    """:func:`combine` over arrays."""
    weights = document.grading.weights
    total = weights.fit * fit + weights.engagement * (
        engagement / document.engagement.max_total * 100.0
    )
    weight = weights.fit + weights.engagement
    if model_percentile is not None and weights.model > 0:
        total = total + weights.model * model_percentile
        weight += weights.model
    return np.clip(total / weight, 0.0, 100.0)


def grade_for_score(grading: GradingConfig, score: float) -> str:
    """The best grade whose threshold the score reaches; D below C's."""
    for grade in GRADES[:-1]:
        if score >= grading.thresholds[grade]:
            return grade
    return GRADES[-1]


def grades_for_scores(grading: GradingConfig, scores: np.ndarray) -> np.ndarray:
    """:func:`grade_for_score` over an array (rank codes 0 = A+ … 4 = D)."""
    ranks = np.full(len(scores), len(GRADES) - 1, dtype=np.int8)
    for rank in reversed(range(len(GRADES) - 1)):
        ranks[scores >= grading.thresholds[GRADES[rank]]] = rank
    return ranks


def _overridden(override: Override, rank: int) -> int:
    target = grade_rank(override.grade)
    if override.mode == "set":
        return target
    if override.mode == "floor":
        return min(rank, target)
    return max(rank, target)


def apply_overrides(
    overrides: Sequence[Override], facts: Mapping[str, Any], grade: str
) -> tuple[str, Override | None]:
    """The grade after the first override whose conditions all hold, and that override."""
    for override in overrides:
        if all(condition_holds(c, facts.get(c.field)) for c in override.when):
            return GRADES[_overridden(override, grade_rank(grade))], override
    return grade, None


def apply_overrides_array(
    overrides: Sequence[Override], frame: pd.DataFrame, ranks: np.ndarray,
    codes: ColumnCodes | None = None,
) -> np.ndarray:
    """:func:`apply_overrides` over a batch (first matching override wins)."""
    n = len(frame)
    codes = {} if codes is None else codes
    result = ranks.copy()
    pending = np.ones(n, dtype=bool)
    for override in overrides:
        hit = pending.copy()
        for cond in override.when:
            column = frame[cond.field] if cond.field in frame.columns else None
            hit &= condition_mask(cond, column, n, codes)
        if not hit.any():
            continue
        target = grade_rank(override.grade)
        if override.mode == "set":
            result[hit] = target
        elif override.mode == "floor":
            result[hit] = np.minimum(result[hit], target)
        else:
            result[hit] = np.maximum(result[hit], target)
        pending &= ~hit
    return result


def next_grade(grading: GradingConfig, decision: ScoreDecision) -> tuple[str, float] | None:
    """The next grade up and how many score points it needs (none for A+ or an override)."""
    if decision.override is not None or decision.grade == GRADES[0]:
        return None
    better = GRADES[GRADES.index(decision.grade) - 1]
    return better, max(grading.thresholds[better] - decision.score, 0.0)


def is_mql(grading: GradingConfig, grade: str) -> bool:
    """True when ``grade`` is at or above the MQL line."""
    return grade_rank(grade) <= grade_rank(grading.mql_grade)


def decide(
    document: RulesetDocument,
    facts: Mapping[str, Any],
    events: Sequence[EngagementEvent],
    now: datetime,
    *,
    probability: float | None = None,
    model_percentile: float | None = None,
    model_reasons: Sequence[Reason] = (),
) -> ScoreDecision:
    """Score and grade one lead.

    1. Fit from the profile rules; engagement from its events with decay and caps.
    2. The score mixes fit, engagement and (when a model is in force) its percentile.
    3. The score's grade, then the first override that matches (it sees ``fit``,
       ``engagement``, ``score``, ``probability`` and ``activity.<kind>`` counts).
    4. MQL when the final grade is at or above the line.
    """
    fit, fit_reasons = fit_score(document.fit, facts)
    per_kind = kind_totals(document.engagement, events, now)
    engagement, engagement_reasons, counts = engagement_from_kinds(document.engagement, per_kind)
    score = combine(document, fit, engagement, model_percentile)
    full_facts = dict(facts)
    full_facts.update({f"{ACTIVITY_PREFIX}{kind}": n for kind, n in counts.items()})
    full_facts.update(fit=fit, engagement=engagement, score=score, probability=probability)
    grade, override = apply_overrides(
        document.grading.overrides, full_facts, grade_for_score(document.grading, score)
    )
    reasons: list[Reason] = []
    if override is not None:
        reasons.append(Reason("override", "grade", grade, 0.0,
                              f"{override.label} → {grade}", label=override.label))
    reasons.extend(sorted([*fit_reasons, *engagement_reasons, *model_reasons],
                          key=lambda r: -abs(r.points)))
    return ScoreDecision(
        fit=round(fit, 2), engagement=round(engagement, 2), probability=probability,
        score=round(score, 2), grade=grade, is_mql=is_mql(document.grading, grade),
        reasons=tuple(reasons), override=override.label if override else None,
        kind_totals=per_kind,
    )
