"""What scoring knows about leads: their fields, their campaign's channel, their events.

One lead is read with one query that aggregates its events too (the request path); a batch
is read as columns by id range, with event ages computed in SQL so a million timestamps never
become Python objects.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    ColumnClause,
    Select,
    bindparam,
    literal,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from leadflow.campaigns.models import Campaign
from leadflow.leads.models import ENGAGEMENT_KINDS, Activity, Lead, LeadStatus, Touchpoint
from leadflow.scoring import totals
from leadflow.scoring.models import LeadScore
from leadflow.scoring.rules import ACTIVITY_PREFIX, EngagementEvent, KindSums
from leadflow.scoring.schemas import GRADES, Condition, EngagementConfig, Op

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


class _JsonRows(FunctionElement[Any]):
    """Rows aggregated into one JSON array of arrays (``json_agg`` / ``json_group_array``),
    so a lead's events come back in the same round trip as the lead."""

    name = "json_rows"
    inherit_cache = True


@compiles(_JsonRows, "postgresql")
def _json_rows_postgresql(element: _JsonRows, compiler: Any, **kw: Any) -> str:
    return f"json_agg(json_build_array({compiler.process(element.clauses, **kw)}))"


@compiles(_JsonRows, "sqlite")
def _json_rows_sqlite(element: _JsonRows, compiler: Any, **kw: Any) -> str:
    return f"json_group_array(json_array({compiler.process(element.clauses, **kw)}))"


# The engagement kinds as an SQL list in the statement's text (our own enum values, quoted):
# an IN of bound values is expanded at every execution, a cost on the one-lead path.
_ENGAGEMENT_KIND_LIST: ColumnClause[Any] = literal_column(
    "(" + ", ".join(f"'{k.value}'" for k in sorted(ENGAGEMENT_KINDS)) + ")")
_EVENTS = union_all(
    select(Activity.kind.label("kind"), Activity.occurred_at.label("at"), Activity.value,
           Activity.ref)
    .where(Activity.lead_id == Lead.id, Activity.kind.op("IN")(_ENGAGEMENT_KIND_LIST))
    .correlate(Lead),
    select(literal("captured"), Touchpoint.received_at, literal(None), literal(None))
    .where(Touchpoint.lead_id == Lead.id).correlate(Lead),
).subquery("e")
# Built once: the request path should not pay for constructing statements.
_LEAD_FACTS = (
    select(*(getattr(Lead, c) for c in LEAD_FACT_COLUMNS), Lead.custom_fields,
           Campaign.channel, LeadScore.grade, LeadScore.is_mql, LeadScore.first_grade,
           select(_JsonRows(*_EVENTS.c)).scalar_subquery().correlate(Lead))
    .outerjoin(Campaign, Campaign.id == Lead.campaign_id)
    .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
    .where(Lead.id == bindparam("lead_id"), Lead.status != LeadStatus.MERGED)
)


def lead_facts_query(*extra: Any) -> Select[Any]:
    """The one-lead facts query with ``extra`` columns (scalar subqueries) added, to be built
    once and passed to :func:`read_lead`."""
    return _LEAD_FACTS.add_columns(*extra)


def read_lead(
    *, session: Session, lead_id: int, query: Select[Any] = _LEAD_FACTS, extra: int = 0
) -> tuple[LeadFacts | None, tuple[Any, ...]]:
    """Facts, events and previous score of one lead (``None`` if it is gone or merged), and
    the values of the ``extra`` last columns of ``query`` (read in the same round trip)."""
    row = _one_row(session, query, lead_id)
    if row is None:
        return None, ()
    values = list(row)
    extras = tuple(values[len(values) - extra:]) if extra else ()
    values = values[:len(values) - extra]
    facts: dict[str, Any] = dict(zip(LEAD_FACT_COLUMNS, values, strict=False))
    custom, channel, grade, mql, first_grade, event_rows = values[len(LEAD_FACT_COLUMNS):]
    facts["channel"] = channel
    for name, value in (custom or {}).items():
        facts[f"custom.{name}"] = value
    if isinstance(event_rows, str):  # SQLite hands back the JSON text, psycopg parses it
        event_rows = json.loads(event_rows)
    events = [EngagementEvent(str(k), _aware(at), v, r) for k, at, v, r in event_rows or ()]
    return LeadFacts(lead_id, _with_flags(facts), events,
                     PreviousScore(grade, bool(mql), first_grade)), extras


def _one_row(session: Session, query: Select[Any], lead_id: int) -> Sequence[Any] | None:
    """The query's row for ``lead_id``. On PostgreSQL the statement goes to the driver as
    compiled once, and the row comes back as psycopg made it (JSON parsed, times aware):
    SQLAlchemy's execution and result layers took longer than the round trip itself."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return connection.execute(query, {"lead_id": lead_id}).one_or_none()
    sql, params = _driver_statement(query, connection.dialect)
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(sql, params | {"lead_id": lead_id})
        return cursor.fetchone()


@lru_cache(maxsize=8)
def _driver_statement(query: Select[Any], dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """``query`` as the driver's SQL text, with its fixed parameters as plain values (the
    statement's own enum members as their text)."""
    compiled = query.compile(dialect=dialect)
    params = {name: value.value if isinstance(value, Enum) else value
              for name, value in compiled.params.items()}
    return str(compiled), params


def _aware(value: Any) -> datetime:
    # Event times come inside JSON (ISO text); parse what the driver hands back.
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FactsBatch:
    """Many leads as columns (``frame`` indexed by position; ``lead_id`` holds the ids)."""

    frame: pd.DataFrame
    events: KindSums
    previous_grade: np.ndarray  # object: str or None
    previous_mql: np.ndarray  # bool
    # Rows whose engagement comes from their stored totals (not their events): those totals
    # still hold as stored and need no rewrite. ``None``: no row's does.
    stored_totals: np.ndarray | None = None


def _raw_rows(session: Session, stmt: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Plain driver tuples: no Row objects for a million rows (bulk path only)."""
    result = session.execute(stmt, params)
    try:
        return list(result.cursor.fetchall())  # type: ignore[attr-defined]
    finally:
        result.close()


_NUMERIC = frozenset({"lead_id", "headcount", "_present", "_campaign_id", "_previous"})
_FLOATS = frozenset({"headcount", "_campaign_id", "_previous"})  # may be NULL
# A lead's stored grade and MQL flag as one small number (NULL when never scored): twice the
# grade's rank, plus one when MQL; no string per lead to make, compare and group.
_PREVIOUS_SQL = ("(CASE s.grade "
                 + " ".join(f"WHEN '{g}' THEN {2 * i}" for i, g in enumerate(GRADES))
                 + " END + CASE WHEN s.is_mql THEN 1 ELSE 0 END)")
_GRADE_NAMES = np.asarray(GRADES, dtype=object)


def _frame(rows: list[tuple[Any, ...]], names: list[str]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    # One 2-D object array, then columns: ``zip(*rows)`` costs far more on 100k rows.
    table = _columns(rows)
    data: dict[str, Any] = {}
    for i, name in enumerate(names):
        if name in _NUMERIC:
            data[name] = pd.Series(table[:, i],
                                   dtype="float64" if name in _FLOATS else "int64")
        else:
            data[name] = pd.Series(table[:, i], dtype=object)
    return pd.DataFrame(data)


def _columns(rows: list[tuple[Any, ...]]) -> np.ndarray:
    table = np.empty((len(rows), len(rows[0])), dtype=object)
    table[:] = rows
    return table


def sql_timestamp(session: Session, now: datetime) -> Any:
    """A timestamp as raw SQL compares it: SQLite stores text, PostgreSQL a timestamptz."""
    if session.get_bind().dialect.name == "sqlite":
        return now.strftime("%Y-%m-%d %H:%M:%S.%f")
    return now


# Text columns a rule may only test for presence: read as a flag instead of the text.
_FLAGGABLE = frozenset({"phone", "email", "wechat_id", "company", "title", "industry",
                        "province", "city", "region", "product_interest", "language", "source"})
# Lead columns the learned model reads (besides channel, contact flags and activity counts).
MODEL_LEAD_FIELDS = frozenset(c for c in MODEL_COLUMNS if c in LEAD_FACT_COLUMNS)


def needed_fields(
    conditions: Sequence[Condition], *, model: bool
) -> tuple[set[str], set[str], set[str]]:
    """What a batch must read for these conditions (and the model): lead columns as values,
    lead columns only as present/missing flags, and custom field names."""
    referenced = {c.field for c in conditions}
    custom = {f.removeprefix("custom.") for f in referenced if f.startswith("custom.")}
    wanted = {f for f in LEAD_FACT_COLUMNS if f in referenced}
    presence_only = {
        f for f in wanted & _FLAGGABLE
        if all(c.op in (Op.PRESENT, Op.MISSING) for c in conditions if c.field == f)
    }
    values = wanted - presence_only
    if model:
        values |= MODEL_LEAD_FIELDS
    return values, presence_only - values, custom


def read_batch(
    *, session: Session, now: datetime, id_range: tuple[int, int] | None = None,
    ids: Sequence[int] | None = None, fields: Collection[str] = LEAD_FACT_COLUMNS,
    flags: Collection[str] = (), custom_fields: Collection[str] = (),
    engagement: EngagementConfig, totals_versions: Collection[int] = (),
) -> FactsBatch:
    """Facts of the live leads with ids in ``[low, high)`` or in ``ids``, as columns.

    ``fields`` are read as values and ``flags`` only as known/unknown (``True``/``None``),
    which is all a presence rule needs and far less to move for a million phone numbers.
    Leads whose stored engagement totals were scored under one of ``totals_versions`` (rule
    sets with the same engagement configuration) are not read event by event: their totals
    are decayed to now instead (see :mod:`leadflow.scoring.totals`).
    """
    sqlite = session.get_bind().dialect.name == "sqlite"
    if not sqlite:
        # Room to group a chunk's events in memory (the default spills to disk); no parallel
        # workers: batches already read ahead in a process of their own, and on a busy
        # machine the workers' coordination costs more CPU than it saves time.
        session.execute(text("SELECT set_config('work_mem', '64MB', true), "
                             "set_config('max_parallel_workers_per_gather', '0', true)"))
    params: dict[str, Any]
    binds: list[Any]
    if ids is not None:
        where, params = "l.id IN :ids", {"ids": list(ids)}
        binds = [bindparam("ids", expanding=True)]
        score_range = ""
    else:
        assert id_range is not None
        where, params = "l.id >= :low AND l.id < :high", {"low": id_range[0], "high": id_range[1]}
        binds = []
        # Bounds the score rows too: otherwise PostgreSQL may hash the whole score table for
        # each chunk, which grows with the database.
        score_range = " AND s.lead_id >= :low AND s.lead_id < :high"
    columns = [c for c in LEAD_FACT_COLUMNS if c in fields]
    flagged = [c for c in LEAD_FACT_COLUMNS if c in flags]
    contact = dict(_CONTACT_FLAGS)
    # Contact details are read as flags anyway (for the model): not twice. Every presence
    # flag travels as one bit of a single number, not as a value per flag.
    present = [*contact, *(c for c in flagged if c not in contact)]
    bits = " + ".join(f"(CASE WHEN l.{c} IS NULL OR l.{c} = '' THEN 0 ELSE {1 << i} END)"
                      for i, c in enumerate(present))
    versions = ", ".join(str(int(v)) for v in sorted(totals_versions))
    selected = [
        "l.id", *(f"l.{c}" for c in columns), bits,
        *(["l.custom_fields"] if custom_fields else []), "l.campaign_id", _PREVIOUS_SQL,
        *((f"CASE WHEN s.ruleset_version IN ({versions}) AND s.totals_at IS NOT NULL "
           "THEN s.engagement_totals END",
           _age_sql(sqlite, "s.totals_at"))
          if totals_versions else ()),
    ]
    select_leads = text(
        f"SELECT {', '.join(selected)} FROM lead l "
        f"LEFT JOIN lead_score s ON s.lead_id = l.id{score_range} "
        f"WHERE {where} AND l.status != 'merged' ORDER BY l.id"
    ).bindparams(*binds)
    rows = _raw_rows(session, select_leads, {**params, "now": sql_timestamp(session, now)}
                     if totals_versions else params)
    names = ["lead_id", *columns, "_present", *(["custom_fields"] if custom_fields else []),
             "_campaign_id", "_previous",
             *(("_totals", "_totals_age") if totals_versions else ())]
    frame = _frame(rows, names)
    present_bits = frame.pop("_present").to_numpy()
    for i, c in enumerate(present):
        known_values = (present_bits & (1 << i)) != 0
        if c in contact:
            frame[contact[c]] = known_values.astype(np.int8)
        if c in flagged:
            flag_values = np.full(len(frame), None, dtype=object)
            flag_values[known_values] = True
            frame[c] = pd.Series(flag_values, dtype=object)
    frame["channel"] = _channels(session, frame.pop("_campaign_id"))
    if "tags" in columns:
        frame["tags"] = frame["tags"].map(_json_list)
    if custom_fields:
        parsed = frame.pop("custom_fields").map(_json_dict)
        for name in custom_fields:
            frame[f"custom.{name}"] = parsed.map(lambda d, n=name: d.get(n))
    previous_grade, previous_mql = _previous(frame.pop("_previous").to_numpy())
    lead_ids = frame["lead_id"].to_numpy()
    if not totals_versions:
        events = _read_events(session, lead_ids, where, params, binds, now, sqlite, engagement)
        return FactsBatch(frame, events, previous_grade, previous_mql)
    stored = frame.pop("_totals").to_numpy(dtype=object)
    ages = frame.pop("_totals_age").to_numpy(dtype=object)
    have = np.flatnonzero(pd.notna(stored))
    # Both drivers hand back ``bytes``; ``decode_rows`` joins them as they are.
    parts = [totals.decode_rows(stored[have].tolist(), have,
                                ages[have].astype(float), engagement.half_life_days)]
    if len(have) < len(frame):  # never scored, or scored under other engagement points
        missing = np.ones(len(frame), dtype=bool)
        missing[have] = False
        read = _read_events(session, lead_ids, where, params, binds, now, sqlite, engagement)
        keep = missing[read.row]
        parts.append(KindSums(read.row[keep], read.kind[keep], read.count[keep],
                              read.points[keep]))
    stored_totals = np.zeros(len(frame), dtype=bool)
    stored_totals[have] = True
    return FactsBatch(frame, totals.concat(parts), previous_grade, previous_mql, stored_totals)


def _previous(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stored grades (``None`` when never scored) and MQL flags from ``_PREVIOUS_SQL``."""
    scored = ~np.isnan(state)
    codes = np.where(scored, state, 0).astype(np.int64)
    grades = np.full(len(state), None, dtype=object)
    grades[scored] = _GRADE_NAMES[codes[scored] // 2]
    return grades, scored & (codes % 2 == 1)


_CHANNELS = text("SELECT id, channel FROM campaign WHERE id IN :ids").bindparams(
    bindparam("ids", expanding=True))


def _channels(session: Session, campaign_ids: pd.Series) -> pd.Series:
    """Each lead's campaign channel (``None`` without a campaign), looked up here rather
    than joined in SQL: a few campaigns, so their channel names are shared objects, cheaper
    to compare and group than a new string per lead. Only the chunk's campaigns are read."""
    wanted = [int(i) for i in campaign_ids.dropna().unique()]
    by_id: dict[int, str] = dict(
        session.execute(_CHANNELS, {"ids": wanted}).tuples().all()) if wanted else {}
    channels = campaign_ids.map(by_id)
    return channels.astype(object).where(channels.notna(), None)


def _age_sql(sqlite: bool, column: str) -> str:
    """Days from ``column`` to the bound ``:now``, as the database computes them."""
    if sqlite:
        return f"julianday(:now) - julianday({column})"
    # As float8: EXTRACT gives numeric, which the driver would turn into Decimal objects.
    return (f"CAST(EXTRACT(EPOCH FROM (CAST(:now AS timestamptz) - {column})) / 86400.0 "
            "AS double precision)")


def _read_events(
    session: Session, lead_ids: np.ndarray, where: str, params: dict[str, Any],
    binds: list[Any], now: datetime, sqlite: bool, config: EngagementConfig,
) -> KindSums:
    """Each event's decayed points, computed by the database.

    The points of an event (its kind's, a matching page's, times its value when per-value)
    and its decay are SQL expressions, so no timestamp or JSON crosses the wire.
    The one-lead path computes the same with :func:`leadflow.scoring.rules.event_points`.
    """
    if sqlite:
        contains, largest = "instr(lower(e.ref), {p}) > 0", "max"
    else:
        contains, largest = "strpos(lower(e.ref), {p}) > 0", "greatest"
    points, point_params = _points_sql(config, contains)
    kinds = ", ".join(f"'{k}'" for k in _ENGAGEMENT)
    lead_where = where.replace("l.id", "x.lead_id")
    sql = text(
        f"SELECT e.lead_id, e.kind, "
        f"{points} * power(0.5, {largest}(e.age, 0) / :half_life) FROM ("
        f"SELECT x.lead_id, x.kind, {_age_sql(sqlite, 'x.occurred_at')} AS age, x.value, x.ref "
        f"FROM activity x WHERE {lead_where} AND x.kind IN ({kinds}) "
        f"UNION ALL SELECT x.lead_id, 'captured', {_age_sql(sqlite, 'x.received_at')}, "
        f"NULL, NULL FROM touchpoint x WHERE {lead_where}"
        ") e"
    ).bindparams(*binds)
    rows = _raw_rows(session, sql, {**params, **point_params, "now": sql_timestamp(session, now),
                                    "half_life": config.half_life_days})
    if not rows:
        empty = np.array([], dtype=object)
        return KindSums(np.array([], dtype=np.int64), empty, np.array([], dtype=np.int64),
                        np.array([]))
    table = _columns(rows)
    event_leads = table[:, 0].astype(np.int64)
    # Events of merged leads are not in the frame: drop them.
    positions = np.searchsorted(lead_ids, event_leads)
    positions = np.minimum(positions, max(len(lead_ids) - 1, 0))
    keep = lead_ids[positions] == event_leads if len(lead_ids) \
        else np.zeros(len(rows), dtype=bool)
    # One row per event: the sums per (lead, kind) are a bincount away (cheaper than the
    # database's hash aggregate, which barely reduces: most leads do each thing once).
    return KindSums(
        row=positions[keep],
        kind=table[keep, 1],
        count=np.ones(int(keep.sum()), dtype=np.int64),
        points=table[keep, 2].astype(float),
    )


def _points_sql(config: EngagementConfig, contains: str) -> tuple[str, dict[str, Any]]:
    """A SQL expression of one event's points under ``config`` (values bound, not inlined)."""
    params: dict[str, Any] = {}
    branches = []
    for i, (kind, rule) in enumerate(sorted(config.activities.items())):
        params[f"k{i}"], params[f"b{i}"] = kind, rule.points
        expr = f":b{i}"
        if rule.pages:
            cases = []
            for j, (page, page_points) in enumerate(rule.pages.items()):
                params[f"p{i}_{j}"], params[f"pp{i}_{j}"] = page.lower(), page_points
                cases.append(f"WHEN {contains.format(p=f':p{i}_{j}')} THEN :pp{i}_{j}")
            expr = f"(CASE {' '.join(cases)} ELSE :b{i} END)"
        if rule.per_value:
            expr = f"{expr} * COALESCE(e.value, 1)"
        branches.append(f"WHEN :k{i} THEN {expr}")
    if not branches:
        return "0", params
    return f"(CASE e.kind {' '.join(branches)} ELSE 0 END)", params


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
