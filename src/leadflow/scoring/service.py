"""Scoring services: the rule set in force, model versions, scoring one lead, grade flags."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import TextClause, bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from leadflow.audit import service as audit
from leadflow.db import JSONType, UTCDateTime, bulk_insert, bulk_upsert
from leadflow.errors import Conflict, DomainError, NotFound
from leadflow.events.models import EventKind, OutboxEvent
from leadflow.leads.models import ENGAGEMENT_KINDS, Activity, ActivityKind, Lead
from leadflow.routing import service as routing_service
from leadflow.scoring import learning, totals
from leadflow.scoring.facts import (
    MODEL_COLUMNS,
    LeadFacts,
    lead_facts_query,
    read_lead,
    with_counts,
)
from leadflow.scoring.models import GradeFlag, LeadScore, ScoringModel, ScoringRuleset
from leadflow.scoring.rules import (
    ACTIVITY_PHRASES,
    ACTIVITY_PREFIX,
    Reason,
    ScoreDecision,
    decide,
    next_grade,
)
from leadflow.scoring.schemas import ActivityIn, FlagIn, RulesetDocument

# Log-odds are shown as points, ×10, so "+0.9 log-odds" reads "+9".
POINTS_PER_LOG_ODDS = 10.0


class InvalidRuleset(DomainError):
    """A rule set that does not validate; the message lists every problem."""

    status_code = 422


# --- the rule set ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ruleset:
    """The rule set in force: version 0 is the built-in default until an admin saves one."""

    version: int
    document: RulesetDocument


@lru_cache(maxsize=1)
def default_document() -> RulesetDocument:
    """The rule set shipped with leadflow (``default_ruleset.yaml``)."""
    text = resources.files("leadflow.scoring").joinpath("default_ruleset.yaml").read_text("utf-8")
    return parse_ruleset_yaml(text)


def parse_ruleset_yaml(text: str) -> RulesetDocument:
    """A rule set from YAML, or :class:`InvalidRuleset` saying where it is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidRuleset(f"not valid YAML: {exc}") from None
    return validate_ruleset(data or {})


def validate_ruleset(data: Any) -> RulesetDocument:
    """A rule set from plain data, or :class:`InvalidRuleset` listing each problem."""
    try:
        return RulesetDocument.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'document'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidRuleset(f"invalid rule set: {problems}") from None


def ruleset_yaml(document: RulesetDocument) -> str:
    """The rule set as YAML, for export and the editor."""
    data = document.model_dump(mode="json", exclude_defaults=False)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)


_parsed: dict[str, RulesetDocument] = {}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def current_ruleset(*, session: Session) -> Ruleset:
    """The newest saved rule set, else the default (version 0)."""
    row = session.execute(
        select(ScoringRuleset.id, ScoringRuleset.version, ScoringRuleset.digest)
        .order_by(ScoringRuleset.version.desc()).limit(1)
    ).one_or_none()
    return _ruleset(session, *(row or (None, 0, None)))


def _ruleset(session: Session, row_id: int | None, version: int, digest: str | None) -> Ruleset:
    if row_id is None or digest is None:
        return Ruleset(0, default_document())
    if digest not in _parsed:
        document = session.scalar(
            select(ScoringRuleset.document).where(ScoringRuleset.id == row_id))
        _parsed[digest] = RulesetDocument.model_validate(document)
    return Ruleset(version, _parsed[digest])


_newest = select(ScoringRuleset).order_by(ScoringRuleset.version.desc()).limit(1)
_active = select(ScoringModel).where(ScoringModel.is_active).limit(1)
# The rule set and model in force, in one round trip (the one-lead path runs per event).
_IN_FORCE_COLUMNS = (
    _newest.with_only_columns(ScoringRuleset.id).scalar_subquery(),
    _newest.with_only_columns(ScoringRuleset.version).scalar_subquery(),
    _newest.with_only_columns(ScoringRuleset.digest).scalar_subquery(),
    _active.with_only_columns(ScoringModel.id).scalar_subquery(),
    _active.with_only_columns(ScoringModel.digest).scalar_subquery(),
)
_IN_FORCE = select(*_IN_FORCE_COLUMNS)
# A lead's facts and the rules and model in force, in one round trip.
_LEAD_AND_STATE = lead_facts_query(*_IN_FORCE_COLUMNS)
InForce = tuple[Ruleset, tuple[int, learning.ConversionModel] | None]


def totals_versions(*, session: Session, document: RulesetDocument) -> frozenset[int]:
    """Rule-set versions with the same engagement configuration as ``document``: stored
    engagement totals scored under them still hold (see :mod:`leadflow.scoring.totals`)."""
    wanted = document.engagement.model_dump(mode="json")
    same = {0} if default_document().engagement.model_dump(mode="json") == wanted else set()
    for version, data in session.execute(
            select(ScoringRuleset.version, ScoringRuleset.document)):
        if (data or {}).get("engagement") == wanted:
            same.add(version)
    return frozenset(same)


def in_force(*, session: Session) -> InForce:
    """The rule set and the active model (if any), read with one query."""
    return _in_force(session, tuple(session.execute(_IN_FORCE).one()))


def _in_force(session: Session, values: tuple[Any, ...]) -> InForce:
    ruleset_id, version, digest, model_id, model_digest = values
    ruleset = _ruleset(session, ruleset_id, version or 0, digest)
    if model_id is None:
        return ruleset, None
    return ruleset, (model_id, _model(session, model_id, model_digest))


def save_ruleset(
    *, session: Session, document: RulesetDocument, note: str, actor_id: int | None,
    now: datetime,
) -> ScoringRuleset:
    """Record ``document`` as the next version; leads pick it up when re-scored."""
    latest = session.scalar(select(func.max(ScoringRuleset.version))) or 0
    data = document.model_dump(mode="json")
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
    row = ScoringRuleset(version=latest + 1, document=data, digest=_digest(canonical),
                         note=note, created_by_id=actor_id, created_at=now)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict("another rule-set version was saved at the same moment; "
                       "reload it and apply your change again") from None
    audit.record(session=session, actor_id=actor_id, action="scoring.ruleset_saved",
                 detail={"version": row.version, "note": note}, now=now)
    return row


def ruleset_history(*, session: Session, limit: int = 50) -> list[ScoringRuleset]:
    """Saved rule-set versions, newest first."""
    return list(session.scalars(
        select(ScoringRuleset).order_by(ScoringRuleset.version.desc()).limit(limit)
    ))


# --- model versions -------------------------------------------------------------------------

_loaded: dict[str, learning.ConversionModel] = {}
MODELS_KEPT = 4


def load_model(row: ScoringModel) -> learning.ConversionModel:
    """The model of a stored version (deserialised once per process)."""
    if row.digest not in _loaded:
        if len(_loaded) >= MODELS_KEPT:  # a long-lived process trains many versions
            _loaded.pop(next(iter(_loaded)))
        _loaded[row.digest] = learning.ConversionModel.load(
            kind=row.kind, spec=row.spec, blob=row.blob, metrics=row.metrics
        )
    return _loaded[row.digest]


def model_by_id(*, session: Session, model_id: int | None) -> learning.ConversionModel | None:
    """A stored model by id (cached per process), or ``None`` for ``None``."""
    if model_id is None:
        return None
    digest = session.scalar(select(ScoringModel.digest).where(ScoringModel.id == model_id))
    if digest is None:
        raise NotFound(f"model {model_id} not found")
    return _model(session, model_id, digest)


def _model(session: Session, model_id: int, digest: str) -> learning.ConversionModel:
    if digest not in _loaded:
        stored = session.get(ScoringModel, model_id)
        assert stored is not None
        load_model(stored)
    return _loaded[digest]


def store_model(
    *, session: Session, result: learning.TrainResult, source: str, target: str,
    id_column: str | None, activate: bool, actor_id: int | None, now: datetime,
) -> ScoringModel:
    """Keep a trained model as a new version; ``activate`` makes it score the leads."""
    metrics = result.metrics
    row = ScoringModel(
        kind=result.kind, source=source[:255], target=target, id_column=id_column,
        spec=result.spec.to_json(), metrics=metrics, blob=result.blob,
        digest=_digest(result.blob), is_active=False,
        n_rows=int(metrics.get("n_rows", 0)), n_positive=int(metrics.get("n_positive", 0)),
        created_by_id=actor_id, created_at=now,
    )
    session.add(row)
    session.flush()
    if activate:
        activate_model(session=session, model_id=row.id, actor_id=actor_id, now=now)
    audit.record(session=session, actor_id=actor_id, action="scoring.model_trained",
                 detail={"model_id": row.id, "kind": row.kind, "source": row.source}, now=now)
    return row


def activate_model(
    *, session: Session, model_id: int | None, actor_id: int | None, now: datetime
) -> None:
    """Make ``model_id`` the one model scoring leads (``None``: rules alone)."""
    if model_id is not None and session.get(ScoringModel, model_id) is None:
        raise NotFound(f"model {model_id} not found")
    session.execute(update(ScoringModel).where(ScoringModel.is_active).values(is_active=False))
    if model_id is not None:
        session.execute(update(ScoringModel).where(ScoringModel.id == model_id)
                        .values(is_active=True))
    audit.record(session=session, actor_id=actor_id, action="scoring.model_activated",
                 detail={"model_id": model_id}, now=now)


def model_versions(*, session: Session, limit: int = 50) -> list[ScoringModel]:
    """Trained models, newest first."""
    return list(session.scalars(
        select(ScoringModel).order_by(ScoringModel.id.desc()).limit(limit)
    ))


def get_model(*, session: Session, model_id: int | None = None) -> ScoringModel:
    """A model version by id; without an id the newest."""
    if model_id is not None:
        row = session.get(ScoringModel, model_id)
    else:
        row = session.scalar(select(ScoringModel).order_by(ScoringModel.id.desc()).limit(1))
    if row is None:
        raise NotFound("no trained model yet: run `leadflow scoring train` first"
                       if model_id is None else f"model {model_id} not found")
    return row


# --- scoring one lead -----------------------------------------------------------------------

# What a re-score writes to the lead's score row (besides the first-time facts).
_SCORE_ROW_COLUMNS = ("fit", "engagement", "probability", "score", "grade", "is_mql",
                      "ruleset_version", "model_id", "scored_at", "engagement_totals",
                      "totals_at")


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """A lead's new score and what changed."""

    lead_id: int
    decision: ScoreDecision
    ruleset_version: int
    model_id: int | None
    previous_grade: str | None
    crossed_mql: bool


def model_features(facts: LeadFacts) -> dict[str, Any]:
    """The learned model's view of a lead: its fields and activity counts."""
    counted = with_counts(facts.facts, facts.events)
    return {column: counted.get(column) for column in MODEL_COLUMNS}


def _read(session: Session, lead_id: int) -> tuple[LeadFacts, InForce]:
    """The lead's facts and the rules and model in force, in the same round trip."""
    facts, values = read_lead(session=session, lead_id=lead_id, query=_LEAD_AND_STATE,
                              extra=len(_IN_FORCE_COLUMNS))
    if facts is None:
        raise NotFound(f"lead {lead_id} not found")
    return facts, _in_force(session, values)


def _decide(
    session: Session, facts: LeadFacts, now: datetime, state: InForce, *, explain: bool
) -> tuple[ScoreDecision, Ruleset, int | None]:
    ruleset, model = state
    probability = percentile = None
    model_reasons: list[Reason] = []
    model_id = None
    if model is not None:
        model_id, conversion = model
        features = model_features(facts)
        probability = conversion.predict_row(features)
        percentile = conversion.percentile(probability)
        if explain:
            model_reasons = [model_reason(c) for c in conversion.explain_row(features)]
    decision = decide(ruleset.document, facts.facts, facts.events, now,
                      probability=probability, model_percentile=percentile,
                      model_reasons=model_reasons)
    return decision, ruleset, model_id


def model_reason(contribution: learning.Contribution) -> Reason:
    """A learned contribution in words, e.g. "attended 3 community classes (+9)"."""
    points = round(contribution.effect * POINTS_PER_LOG_ODDS, 1)
    feature, value = contribution.feature, contribution.value
    if feature.startswith(ACTIVITY_PREFIX):
        kind = feature.removeprefix(ACTIVITY_PREFIX)
        try:
            n = int(float(value))
        except ValueError:
            n = 0
        singular, plural = ACTIVITY_PHRASES.get(kind, (kind, f"{kind} ×{{n}}"))
        words = (singular if n == 1 else plural).format(n=n) if n else f"no {kind}"
        return Reason("model", feature, str(value), points, f"{words} ({points:+.0f})", n)
    return Reason("model", feature, str(value), points, f"{feature} = {value} ({points:+.0f})")


def rescore_lead(
    *, session: Session, lead_id: int, now: datetime, actor_id: int | None = None
) -> ScoreResult:
    """Score one lead now and store it; a grade change or MQL crossing goes on the timeline.

    Crossing the MQL line also writes a ``lead.mql`` outbox event, which routing handles.
    """
    facts, state = _read(session, lead_id)
    decision, ruleset, model_id = _decide(session, facts, now, state, explain=False)
    previous = facts.previous
    score = {"lead_id": lead_id, "fit": decision.fit, "engagement": decision.engagement,
             "probability": decision.probability, "score": decision.score,
             "grade": decision.grade, "is_mql": decision.is_mql,
             "ruleset_version": ruleset.version, "model_id": model_id, "scored_at": now,
             "engagement_totals": totals.encode(decision.kind_totals), "totals_at": now}
    crossed = False
    if decision.is_mql and not previous.is_mql:
        crossed = _store_crossing(session, score, now, scored_before=previous.grade is not None)
    else:
        _store_score(session, score, now)
    timeline = []
    if previous.grade is not None and previous.grade != decision.grade:
        timeline.append(grade_change_activity(lead_id, previous.grade, decision, now, actor_id))
    if crossed:
        timeline.append(mql_activity(lead_id, decision.grade, decision.score, now, actor_id))
    if timeline:
        _write_changes(session, lead_id, timeline, now,
                       event=mql_event(lead_id, decision.grade, decision.score, now)
                       if crossed else None)
    return ScoreResult(lead_id, decision, ruleset.version, model_id, previous.grade, crossed)


def _write_changes(
    session: Session, lead_id: int, timeline: list[dict[str, Any]], now: datetime, *,
    event: dict[str, Any] | None,
) -> None:
    """Timeline rows of a re-score and, past the MQL line (``event``), the ``lead.mql`` event
    and the lead's routing due time (promotion to sales): one statement on PostgreSQL, where
    these round trips are most of a crossing's cost."""
    if event is None:
        bulk_insert(session, Activity.__table__, timeline)  # type: ignore[arg-type]
        return
    if session.get_bind().dialect.name == "postgresql":
        # A re-score's timeline rows share their lead, time (now) and actor.
        params = {"lead_id": lead_id, "now": now, "actor_id": timeline[0]["actor_id"],
                  "event_kind": event["kind"], "payload": event["payload"]}
        for i, row in enumerate(timeline):
            params |= {f"kind_{i}": row["kind"], f"summary_{i}": row["summary"],
                       f"detail_{i}": row["detail"]}
        session.execute(_handover(len(timeline)), params)
        return
    bulk_insert(session, Activity.__table__, timeline)  # type: ignore[arg-type]
    session.execute(insert(OutboxEvent), [event])
    session.execute(update(Lead).where(Lead.id == lead_id).values(route_due_at=now))


@lru_cache
def _handover(timeline_rows: int) -> TextClause:
    """PostgreSQL: a crossing's timeline rows, ``lead.mql`` event and routing due time as one
    statement. Written as SQL: SQLAlchemy does not cache a statement of multi-row INSERTs
    in CTEs, and compiling it for every crossing took longer than running it."""
    rows = ", ".join(f"(:lead_id, :kind_{i}, :now, :actor_id, :summary_{i}, :detail_{i})"
                     for i in range(timeline_rows))
    return text(
        "WITH timeline AS (INSERT INTO activity (lead_id, kind, occurred_at, actor_id, summary, "
        f"detail) VALUES {rows}), "
        "outbox AS (INSERT INTO outbox_event (kind, lead_id, created_at, payload, attempts) "
        "VALUES (:event_kind, :lead_id, :now, :payload, 0)) "
        "UPDATE lead SET route_due_at = :now WHERE id = :lead_id"
    ).bindparams(
        bindparam("now", type_=UTCDateTime()), bindparam("payload", type_=JSONType),
        *(bindparam(f"detail_{i}", type_=JSONType) for i in range(timeline_rows)))


def _store_score(session: Session, score: dict[str, Any], now: datetime) -> None:
    """Insert or overwrite the lead's score row (``mql_at`` and ``first_grade`` keep the
    first value they got)."""
    bulk_upsert(session, LeadScore.__table__,  # type: ignore[arg-type]
                {**{name: [value] for name, value in score.items()},
                 "mql_at": [now if score["is_mql"] else None], "first_grade": [score["grade"]]},
                key="lead_id", keep_existing=("mql_at", "first_grade"))


# The score row locked and read as it stands, then overwritten, in one statement: after
# waiting for a lock the sub-select sees the row as the other transaction left it.
# NO KEY UPDATE is the lock the update itself takes (it changes no key).
_UPDATE_RETURNING_OLD_MQL = (
    "UPDATE lead_score s SET "
    + ", ".join(f"{c} = %({c})s" for c in _SCORE_ROW_COLUMNS)
    + ", mql_at = COALESCE(s.mql_at, %(scored_at)s) "
    "FROM (SELECT lead_id, is_mql FROM lead_score WHERE lead_id = %(lead_id)s "
    "FOR NO KEY UPDATE) old WHERE s.lead_id = old.lead_id RETURNING old.is_mql"
)


def _store_crossing(
    session: Session, score: dict[str, Any], now: datetime, *, scored_before: bool
) -> bool:
    """Store a score that puts the lead over the MQL line; whether this transaction is the
    one that crossed it (another may have since we read the lead).

    Concurrent events for one lead report one crossing between them. On PostgreSQL a lead
    scored before is locked, checked and updated in one statement; a lead never scored has
    no score row to lock yet, so its lead row is locked first and the score read afresh.
    SQLite runs one writer at a time: reading the score again is enough.
    """
    connection = session.connection()
    if scored_before and connection.dialect.name == "postgresql":
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            cursor.execute(_UPDATE_RETURNING_OLD_MQL, score)
            row = cursor.fetchone()
        if row is not None:
            return not row[0]
    lead_id = score["lead_id"]
    read = select(LeadScore.is_mql).where(LeadScore.lead_id == lead_id)
    if scored_before:  # SQLite, or a score row gone since the lead was read
        read = read.with_for_update(key_share=True)
    else:  # NO KEY UPDATE: rows that reference the lead hold key-share locks on it
        session.execute(select(Lead.id).where(Lead.id == lead_id).with_for_update(key_share=True))
    was_mql = bool(session.scalar(read))
    _store_score(session, score, now)
    return not was_mql


def grade_change_activity(
    lead_id: int, previous: str, decision: ScoreDecision, now: datetime, actor_id: int | None
) -> dict[str, Any]:
    """The timeline entry for a grade change, with the top reason."""
    why = decision.override or (decision.reasons[0].text if decision.reasons else "")
    return {"lead_id": lead_id, "kind": ActivityKind.GRADE_CHANGED.value, "occurred_at": now,
            "actor_id": actor_id,
            "summary": f"{previous} → {decision.grade}" + (f": {why}" if why else ""),
            "detail": {"from": previous, "to": decision.grade, "score": decision.score}}


def mql_activity(
    lead_id: int, grade: str, score: float, now: datetime, actor_id: int | None
) -> dict[str, Any]:
    """The timeline entry for crossing the MQL line."""
    return {"lead_id": lead_id, "kind": ActivityKind.MQL_REACHED.value, "occurred_at": now,
            "actor_id": actor_id, "summary": mql_summary(grade, score),
            "detail": mql_detail(grade, score)}


def mql_summary(grade: str, score: float) -> str:
    """How crossing the MQL line reads on the timeline."""
    return f"MQL: {grade} ({score:.0f})"


def mql_detail(grade: str, score: float) -> dict[str, Any]:
    """What a crossing records: the timeline entry's detail and the ``lead.mql`` payload."""
    return {"grade": grade, "score": score}


def mql_event(lead_id: int, grade: str, score: float, now: datetime) -> dict[str, Any]:
    """The outbox row that hands a new MQL to routing."""
    return {"kind": EventKind.LEAD_MQL.value, "lead_id": lead_id, "created_at": now,
            "payload": mql_detail(grade, score), "attempts": 0}


def record_activity(
    *, session: Session, lead: Lead, activity: ActivityIn, actor_id: int | None, now: datetime
) -> tuple[Activity, ScoreResult]:
    """Put an engagement event on the lead's timeline and re-score the lead at once."""
    kinds = {k.value for k in ENGAGEMENT_KINDS} - {ActivityKind.CAPTURED.value}
    if activity.kind not in kinds:
        raise DomainError(f"unknown activity kind {activity.kind!r}; known: {sorted(kinds)}")
    row = Activity(
        lead_id=lead.id, kind=ActivityKind(activity.kind),
        occurred_at=activity.occurred_at or now, actor_id=actor_id, summary=activity.summary,
        detail=activity.detail, value=activity.value, ref=activity.ref,
    )
    session.add(row)
    session.flush()
    result = rescore_lead(session=session, lead_id=lead.id, now=now, actor_id=actor_id)
    if result.crossed_mql:
        routing_service.route_due(session=session, now=now, lead_ids=[lead.id],
                                  actor_id=actor_id)
    return row, result


@dataclass(frozen=True, slots=True)
class Explanation:
    """A lead's score as of now with every reason, and what produced it."""

    decision: ScoreDecision
    ruleset_version: int
    model_id: int | None
    # The next grade up and the score points it needs (none for A+ or an override).
    next_grade: tuple[str, float] | None


def explain(*, session: Session, lead_id: int, now: datetime) -> Explanation:
    """The lead's score as of ``now`` with every reason, learned ones included (not stored)."""
    facts, state = _read(session, lead_id)
    decision, ruleset, model_id = _decide(session, facts, now, state, explain=True)
    return Explanation(decision, ruleset.version, model_id,
                       next_grade(ruleset.document.grading, decision))


# --- feedback -------------------------------------------------------------------------------


def flag_grade(
    *, session: Session, lead: Lead, user_id: int, flag: FlagIn, now: datetime
) -> GradeFlag:
    """Record that a user thinks the lead's grade is wrong (read by the calibration report)."""
    score = session.get(LeadScore, lead.id)
    if score is None:
        raise DomainError(f"lead {lead.id} has no grade yet")
    row = GradeFlag(lead_id=lead.id, user_id=user_id, grade=score.grade,
                    suggested_grade=flag.suggested_grade, reason=flag.reason, created_at=now)
    session.add(row)
    suggested = f" → {flag.suggested_grade}" if flag.suggested_grade else ""
    session.add(Activity(
        lead_id=lead.id, kind=ActivityKind.GRADE_FLAGGED, occurred_at=now, actor_id=user_id,
        summary=f"{score.grade}{suggested}: {flag.reason}",
        detail={"grade": score.grade, "suggested": flag.suggested_grade},
    ))
    session.flush()
    return row
