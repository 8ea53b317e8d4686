"""Capturing records set-at-a-time: clean, skip what was seen, dedup, enrich, write.

Every path (API, form webhook, file import, demo) goes through :func:`capture_batch`, so a
record is cleaned and deduplicated the same way wherever it comes from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, bindparam, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from leadflow.cleaning import normalise
from leadflow.cleaning.enrich import (
    ENRICHED_FIELDS,
    EnrichmentProvider,
    FirmographicTableProvider,
    facts_for,
)
from leadflow.cleaning.rules import (
    FILLABLE_FIELDS,
    MatchRecord,
    MatchResult,
    MatchThresholds,
    MergeOutcome,
    best_match,
    blocking_keys,
    survivorship,
)
from leadflow.db import bulk_insert, lock_for_writing
from leadflow.leads.models import Activity, ActivityKind, Lead, LeadStatus, Touchpoint
from leadflow.leads.rules import CleanRecord, clean_record
from leadflow.routing import service as routing_service
from leadflow.scoring import batch as scoring_batch

_lead = cast(Table, Lead.__table__)
_touch = cast(Table, Touchpoint.__table__)
_activity = cast(Table, Activity.__table__)
# Columns loaded for candidates: enough to compare and to apply survivorship.
_CANDIDATE_COLUMNS = ("id", *FILLABLE_FIELDS, "key_name_company", "key_name_place")
_KEY_COLUMNS = ("phone", "email", "wechat_id", "key_name_company", "key_name_place")
# In-batch leads get provisional ids above any real id, so ties go to stored (earlier) leads.
_PROVISIONAL = 10**15
_IN_CHUNK = 2000
# Advisory locks share PostgreSQL's lock table (64 per connection by default): lock one
# per record only for small batches, the webhook and API case.
_LOCKED_BATCH = 32


class Outcome(StrEnum):
    """What happened to one captured record."""

    CREATED = "created"
    MERGED = "merged"
    SKIPPED = "skipped"  # seen before: same (source, external_id)
    REJECTED = "rejected"


@dataclass(slots=True)
class IncomingRecord:
    """One record from a source, with canonical keys (see ``leads.files.LEAD_FIELDS``)."""

    external_id: str
    record: dict[str, str]
    raw: dict[str, Any]
    row_number: int | None = None
    received_at: datetime | None = None
    # Set when a prepare stage (see ``leads.imports``) already cleaned the record and
    # serialised its raw payload in another process.
    cleaned: CleanRecord | None = None
    raw_json: str | None = None

    def raw_dict(self) -> dict[str, Any]:
        """The raw record (decoded from ``raw_json`` when only that travelled)."""
        if not self.raw and self.raw_json:
            self.raw = json.loads(self.raw_json)
        return self.raw


@dataclass(frozen=True, slots=True)
class Reject:
    """Why a record was not captured."""

    row_number: int | None
    external_id: str
    field: str
    reason: str
    raw: dict[str, Any]


@dataclass(slots=True)
class RecordResult:
    """Outcome of one record, for API answers."""

    external_id: str
    outcome: Outcome
    lead_id: int | None = None
    match: MatchResult | None = None


@dataclass(slots=True)
class CaptureResult:
    """Counts and per-record outcomes of one batch."""

    created: int = 0
    merged: int = 0
    skipped: int = 0
    rejects: list[Reject] = field(default_factory=list)
    results: list[RecordResult] = field(default_factory=list)


class _Target:
    """A lead records merge into: stored (real id) or created in this batch (provisional id).

    Identity semantics (no dataclass ``__eq__``): targets sit in index buckets, and
    comparing them field by field would make every lookup slow.
    """

    __slots__ = ("_match", "fields", "filled", "id", "stored")

    def __init__(self, id: int, fields: dict[str, Any], stored: bool) -> None:
        self.id = id
        self.fields = fields
        self.stored = stored
        self.filled: dict[str, Any] = {}
        self._match: MatchRecord | None = None

    @property
    def match(self) -> MatchRecord:
        """What dedup compares, built on first use (most candidates are never compared)."""
        if self._match is None:
            self._match = MatchRecord.from_fields(self.id, self.fields)
        return self._match

    def fill(self, values: dict[str, Any]) -> None:
        """Apply survivorship gains and refresh the derived keys."""
        self.fields.update(values)
        self.filled.update(values)
        keys = _keys_of(self.fields)
        self.fields.update(keys)
        self.filled.update(keys)
        self._match = None


# (key column, value) → targets by id: O(1) to add, insertion-ordered to read.
_Index = dict[tuple[str, str], dict[int, _Target]]


def capture_batch(
    *,
    session: Session,
    records: Sequence[IncomingRecord],
    source: str,
    campaign_id: int | None,
    now: datetime,
    thresholds: MatchThresholds,
    import_job_id: int | None = None,
    default_region: str = "CN",
    provider: EnrichmentProvider | None = None,
    actor_id: int | None = None,
) -> CaptureResult:
    """Capture ``records`` from ``source``; flushes, the caller commits.

    0. On SQLite, take the write lock first: what is read below must still hold at write.
    1. Clean each record (unless a prepare stage did); invalid ones become rejects.
    2. Skip records whose (source, external_id) is already a touchpoint (retries, re-runs).
    3. Load stored candidates sharing an exact or blocking key, in a few indexed queries.
    4. In file order, match each record against stored candidates and the leads this batch
       created; merge into the best match (survivorship) or create a new lead.
    5. Enrich new leads from the provider (company key, then email domain).
    6. Write leads, touchpoints, survivor updates and merge activities in bulk.
    """
    lock_for_writing(session)
    result = CaptureResult()
    seen_ids = _seen_external_ids(session, source, [r.external_id for r in records])
    # One slot per input record so outcomes come back in input order.
    slots: list[RecordResult | None] = [None] * len(records)
    accepted: list[tuple[int, IncomingRecord, dict[str, Any]]] = []
    batch_ids: set[str] = set()
    for i, rec in enumerate(records):
        if rec.external_id in seen_ids or rec.external_id in batch_ids:
            result.skipped += 1
            slots[i] = RecordResult(rec.external_id, Outcome.SKIPPED, seen_ids.get(rec.external_id))
            continue
        cleaned = rec.cleaned or clean_record(rec.record, default_region=default_region)
        if not cleaned.ok:
            fld, reason = cleaned.errors[0]
            more = "; ".join(f"{f}: {r}" for f, r in cleaned.errors[1:])
            result.rejects.append(
                Reject(rec.row_number, rec.external_id, fld,
                       reason + (f" (also {more})" if more else ""), rec.raw_dict())
            )
            slots[i] = RecordResult(rec.external_id, Outcome.REJECTED)
            continue
        batch_ids.add(rec.external_id)
        accepted.append((i, rec, cleaned.fields))
    if not accepted:
        result.results = [r for r in slots if r is not None]
        return result

    stored = _load_candidates(session, [f for _, _, f in accepted])
    index: _Index = {}
    for target in stored.values():
        _index_target(index, target)
    new_targets: list[_Target] = []
    # (input position, record, target lead, match, what survivorship changed) per record.
    assignments: list[tuple[int, IncomingRecord, _Target, MatchResult | None,
                            MergeOutcome | None]] = []
    for i, rec, fields in accepted:
        candidates = _candidates(index, fields)
        match = (
            best_match(MatchRecord.from_fields(None, fields), [c.match for c in candidates],
                       thresholds)
            if candidates else None
        )
        if match is None:
            target = _Target(_PROVISIONAL + len(new_targets), dict(fields), stored=False)
            new_targets.append(target)
            _index_target(index, target)
            assignments.append((i, rec, target, None, None))
            continue
        target = next(c for c in candidates if c.id == match.lead_id)
        outcome = survivorship(target.fields, fields)
        if outcome.filled:
            target.fill(outcome.filled)
            _index_target(index, target)
        assignments.append((i, rec, target, match, outcome))

    enriched = _enrich(session, new_targets, provider)
    real_ids = _insert_leads(session, new_targets, source, campaign_id, now)
    _update_survivors(session, [t for t in stored.values() if t.filled], now)

    touch_rows: list[dict[str, Any]] = []
    activity_rows: list[dict[str, Any]] = []
    for i, rec, target, match, changes in assignments:
        lead_id = real_ids.get(target.id, target.id)
        meta: dict[str, Any] = {}
        if match is None:
            result.created += 1
            slots[i] = RecordResult(rec.external_id, Outcome.CREATED, lead_id)
            if target.id in enriched:
                meta["enriched"] = enriched[target.id]
        else:
            result.merged += 1
            match = MatchResult(lead_id, match.keys, match.similarity)
            slots[i] = RecordResult(rec.external_id, Outcome.MERGED, lead_id, match)
            meta["match"] = {"keys": list(match.keys), "similarity": match.similarity}
            activity_rows.append(
                _merge_activity(lead_id, rec, source, match, changes, now, actor_id)
            )
        touch_rows.append(
            {
                "lead_id": lead_id,
                "original_lead_id": lead_id,
                "source": source,
                "external_id": rec.external_id,
                "campaign_id": campaign_id,
                "received_at": rec.received_at or now,
                "import_job_id": import_job_id,
                "payload": _payload(rec, meta),
            }
        )
    result.results = [r for r in slots if r is not None]
    bulk_insert(session, _touch, touch_rows)
    if activity_rows:
        bulk_insert(session, _activity, activity_rows)
    return result


def _payload(rec: IncomingRecord, meta: dict[str, Any]) -> dict[str, Any] | str:
    """The touchpoint payload; pre-serialised JSON is spliced in rather than re-encoded."""
    if rec.raw_json is None:
        return {"raw": rec.raw, **meta}
    extra = "".join(f', "{k}": {json.dumps(v, ensure_ascii=False)}' for k, v in meta.items())
    return '{"raw": ' + rec.raw_json + extra + "}"


def _seen_external_ids(session: Session, source: str, external_ids: list[str]) -> dict[str, int]:
    """Records of ``source`` already captured, and their leads: plain driver SQL, like
    :func:`_load_candidates`, because compiling thousands of bound values costs more than
    the index lookups."""
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    seen: dict[str, int] = {}
    for start in range(0, len(external_ids), _IN_CHUNK):
        chunk = external_ids[start:start + _IN_CHUNK]
        if sqlite:
            sql = ('SELECT external_id, lead_id FROM touchpoint WHERE source = ? AND '
                   f'external_id IN ({", ".join("?" * len(chunk))})')
            rows = conn.exec_driver_sql(sql, (source, *chunk))
        else:
            rows = conn.exec_driver_sql(
                "SELECT external_id, lead_id FROM touchpoint WHERE source = %s "
                "AND external_id = ANY(%s)", (source, chunk))
        seen.update({ext: lead_id for ext, lead_id in rows})
    return seen


def _load_candidates(session: Session, drafts: list[dict[str, Any]]) -> dict[int, _Target]:
    """Stored leads sharing any key with the drafts: one indexed query per key column.

    Plain driver SQL: rendering thousands of bound values through the SQL compiler costs
    more than the index lookups themselves on this, the import's hottest query.
    """
    conn = session.connection()
    columns = ", ".join(f'"{c}"' for c in _CANDIDATE_COLUMNS)
    sqlite = conn.dialect.name == "sqlite"
    found: dict[int, _Target] = {}

    def collect(sql: str, params: tuple[Any, ...]) -> None:
        for row in conn.exec_driver_sql(sql, params):
            if row[0] not in found:
                found[row[0]] = _Target(row[0], dict(zip(_CANDIDATE_COLUMNS, row, strict=True)),
                                        stored=True)

    values_by_key = {key: list({v for d in drafts if (v := d.get(key))}) for key in _KEY_COLUMNS}
    if not sqlite and len(drafts) <= _IN_CHUNK:
        # One round trip: PostgreSQL combines the five index scans (BitmapOr).
        present = [k for k in _KEY_COLUMNS if values_by_key[k]]
        if present:
            where = " OR ".join(f'"{k}" = ANY(%s)' for k in present)
            collect(f"SELECT {columns} FROM lead WHERE ({where}) AND status != %s",
                    (*(values_by_key[k] for k in present), LeadStatus.MERGED.value))
        return found
    for key, values in values_by_key.items():
        for start in range(0, len(values), _IN_CHUNK):
            chunk = values[start:start + _IN_CHUNK]
            if sqlite:
                sql = (f'SELECT {columns} FROM lead WHERE "{key}" IN '
                       f'({", ".join("?" * len(chunk))}) AND status != ?')
                collect(sql, (*chunk, LeadStatus.MERGED.value))
            else:
                collect(f'SELECT {columns} FROM lead WHERE "{key}" = ANY(%s) AND status != %s',
                        (chunk, LeadStatus.MERGED.value))
    return found


def _keys_of(fields: dict[str, Any]) -> dict[str, Any]:
    keys = blocking_keys(
        name=fields.get("name"), company_key=fields.get("company_key"), city=fields.get("city")
    )
    return {"key_name_company": keys.name_company, "key_name_place": keys.name_place}


def _index_target(index: _Index, target: _Target) -> None:
    for key in _KEY_COLUMNS:
        value = target.fields.get(key)
        if value:
            index.setdefault((key, value), {})[target.id] = target


def _candidates(index: _Index, fields: dict[str, Any]) -> list[_Target]:
    found: dict[int, _Target] | None = None
    for key in _KEY_COLUMNS:
        value = fields.get(key)
        if value:
            bucket = index.get((key, value))
            if bucket:
                if found is None:
                    found = dict(bucket)
                else:
                    found.update(bucket)
    return list(found.values()) if found else []


def _enrich(
    session: Session, targets: list[_Target], provider: EnrichmentProvider | None
) -> dict[int, dict[str, Any]]:
    """Fill firmographic gaps on new leads; returns what was filled, per provisional id."""
    wanting = [t for t in targets if any(t.fields.get(f) is None for f in ENRICHED_FIELDS)]
    if not wanting:
        return {}
    provider = provider or FirmographicTableProvider()
    by_key, _ = provider.lookup(
        session=session,
        company_keys={k for t in wanting if (k := t.fields.get("company_key"))}, domains=(),
    )
    # Email domains only for leads whose company did not match: one query fewer per
    # webhook in the common case.
    domains = {t.id: normalise.email_domain(t.fields.get("email")) for t in wanting
               if t.fields.get("company_key") not in by_key}
    _, by_domain = provider.lookup(
        session=session, company_keys=(), domains={d for d in domains.values() if d},
    )
    filled: dict[int, dict[str, Any]] = {}
    for target in wanting:
        facts = facts_for(company_key=target.fields.get("company_key"),
                          domain=domains.get(target.id), by_key=by_key, by_domain=by_domain)
        if facts is None:
            continue
        gained = {
            f: v for f, v in facts.values.items()
            if v is not None and target.fields.get(f) is None
        }
        if gained:
            target.fields.update(gained)
            filled[target.id] = {"provider": provider.name, "company": facts.company,
                                 "matched_on": facts.matched_on, "fields": sorted(gained)}
    return filled


_LEAD_INSERT_FIELDS = (
    *FILLABLE_FIELDS, "tags", "custom_fields", "consent", "key_name_company", "key_name_place",
)


def _insert_leads(
    session: Session, targets: list[_Target], source: str, campaign_id: int | None, now: datetime
) -> dict[int, int]:
    """Insert new leads with ids reserved up front, so the insert is a plain executemany."""
    if not targets:
        return {}
    rows = []
    for t in targets:
        row = {name: t.fields.get(name) for name in _LEAD_INSERT_FIELDS}
        row["tags"] = row["tags"] or []
        row["custom_fields"] = row["custom_fields"] or {}
        row.update(
            status=LeadStatus.NEW.value, source=source, campaign_id=campaign_id,
            do_not_contact=False, created_at=now, updated_at=now, route_due_at=now,
            recycle_count=0,
        )
        rows.append(row)
    if len(rows) == 1 and session.get_bind().dialect.name == "postgresql":
        # One round trip for the interactive path (API, webhook).
        return {targets[0].id: bulk_insert(session, _lead, rows, returning_id=True)[0]}
    ids = _reserve_lead_ids(session, rows)
    for row, lead_id in zip(rows, ids, strict=True):
        row["id"] = lead_id
    remaining = rows[1:] if session.get_bind().dialect.name == "sqlite" else rows
    if remaining:
        bulk_insert(session, _lead, remaining)
    return {t.id: real for t, real in zip(targets, ids, strict=True)}


def _reserve_lead_ids(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Ids for ``rows``.

    PostgreSQL: a block of values from the id sequence. SQLite: the first row is inserted
    to learn its id; that insert takes the database's single write lock, held until commit,
    so the following ids are free for this transaction alone.
    """
    if session.get_bind().dialect.name == "sqlite":
        bulk_insert(session, _lead, rows[:1])
        first = session.execute(text("SELECT last_insert_rowid()")).scalar_one()
        return list(range(first, first + len(rows)))
    return list(
        session.execute(
            text("SELECT nextval('lead_id_seq') FROM generate_series(1, :n)"), {"n": len(rows)}
        ).scalars()
    )


def _update_survivors(session: Session, targets: list[_Target], now: datetime) -> None:
    """Write filled gaps of stored leads, grouped by the set of columns each fills."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for t in targets:
        cols = tuple(sorted(t.filled))
        groups.setdefault(cols, []).append({"_id": t.id, **t.filled, "updated_at": now})
    for cols, params in groups.items():
        stmt = (
            update(_lead)
            .where(_lead.c.id == bindparam("_id"))
            .values({c: bindparam(c) for c in (*cols, "updated_at")})
        )
        session.connection().execute(stmt, params)


def _merge_activity(
    lead_id: int,
    rec: IncomingRecord,
    source: str,
    match: MatchResult,
    outcome: MergeOutcome | None,
    now: datetime,
    actor_id: int | None,
) -> dict[str, Any]:
    outcome = outcome or MergeOutcome()
    conflicts = {k: [str(a), str(b)] for k, (a, b) in outcome.conflicts.items()}
    return {
        "lead_id": lead_id,
        "kind": ActivityKind.MERGED.value,
        "occurred_at": now,
        "actor_id": actor_id,
        "channel": None,
        "summary": f"{source}/{rec.external_id} merged: {match.explain()}",
        "detail": {
            "source": source,
            "external_id": rec.external_id,
            "keys": list(match.keys),
            "similarity": match.similarity,
            "filled": sorted(outcome.filled),
            "conflicts": conflicts,
        },
    }


def capture_retrying(
    *,
    session: Session,
    records: Sequence[IncomingRecord],
    source: str,
    campaign_id: int | None,
    now: datetime,
    thresholds: MatchThresholds,
    actor_id: int | None = None,
) -> CaptureResult:
    """:func:`capture_batch` for concurrent callers (API, webhooks), then score the leads.

    Two deliveries of the same record can race. On PostgreSQL, small batches first take a
    transaction-scoped advisory lock per (source, external_id), so the second delivery
    waits and then skips. Otherwise the loser hits the unique (source, external_id)
    constraint: its savepoint is rolled back and the batch captured again, which now finds
    the winner's touchpoint and skips it. Either way nothing is created twice.

    Scoring and routing in the request mean a new or newly hot lead has its grade and its
    owner (or pool) before the webhook answers.
    """
    def capture() -> CaptureResult:
        return capture_batch(
            session=session, records=records, source=source, campaign_id=campaign_id,
            now=now, thresholds=thresholds, actor_id=actor_id,
        )

    if session.get_bind().dialect.name == "postgresql" and len(records) <= _LOCKED_BATCH:
        # Cheaper than a savepoint on the hot webhook path: deliveries of one record wait
        # for each other, and the later one finds the earlier one's touchpoint.
        session.execute(
            text("SELECT pg_advisory_xact_lock(k) FROM "
                 "(SELECT DISTINCT hashtextextended(:source || chr(31) || e, 0) AS k "
                 "FROM unnest(CAST(:ids AS text[])) AS e ORDER BY k) AS keys"),
            {"source": source, "ids": [r.external_id for r in records]},
        )
        result = capture()
    else:
        lock_for_writing(session)
        for attempt in range(3):
            try:
                with session.begin_nested():
                    result = capture()
                break
            except IntegrityError:
                if attempt == 2:
                    raise
    touched = [r.lead_id for r in result.results
               if r.lead_id is not None and r.outcome in (Outcome.CREATED, Outcome.MERGED)]
    scoring_batch.rescore_leads(session=session, lead_ids=touched, now=now, actor_id=actor_id)
    routing_service.route_due(session=session, now=now, lead_ids=touched, actor_id=actor_id)
    return result
