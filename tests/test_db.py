"""The bulk write paths every batch job relies on, on the engine under test."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from leadflow.db import (
    bulk_insert,
    bulk_insert_columns,
    bulk_upsert,
    checkpoints_in_background,
    session_scope,
)
from leadflow.leads.models import Activity, Lead
from leadflow.scoring.models import LeadScore


def _leads(session: Session, now: datetime, n: int) -> list[int]:
    leads = [Lead(created_at=now, updated_at=now, tags=[], custom_fields={}, name=f"L{i}")
             for i in range(n)]
    session.add_all(leads)
    session.flush()
    return [lead.id for lead in leads]


def _columns(ids: list[int], now: datetime, grade: str, mql: list[bool]) -> dict[str, list]:
    n = len(ids)
    return {
        "lead_id": ids, "fit": [10.5] * n, "engagement": [2.25] * n,
        "probability": [None if i % 2 else 0.125 for i in range(n)],
        "score": [float(i) for i in range(n)], "grade": [grade] * n, "is_mql": mql,
        "mql_at": [now if m else None for m in mql], "first_grade": [grade] * n,
        "ruleset_version": [3] * n, "model_id": [None] * n, "scored_at": [now] * n,
        "engagement_totals": [bytes([i % 256]) * 13 for i in range(n)],
    }


def _split(columns: dict[str, list], constant: bool) -> tuple[dict[str, list], dict[str, Any]]:
    """``columns`` with the one-value ones moved to ``same_for_all`` when ``constant``."""
    if not constant:
        return columns, {}
    fixed = {name: columns.pop(name)[0] for name in ("ruleset_version", "model_id", "scored_at")}
    return columns, fixed


@pytest.mark.parametrize("constant", [False, True], ids=["per-row", "same-for-all"])
def test_bulk_upsert_inserts_updates_and_keeps_first_facts(
    session: Session, now: datetime, constant: bool
) -> None:
    """Staged (COPY) and small paths alike: every kind of value survives the round trip,
    ``update_only`` touches only stored keys, ``keep_existing`` keeps stored non-nulls;
    columns given once for all rows (a NULL among them) land like per-row ones."""
    for n in (3, 120):  # below and above the staging-table threshold
        ids = _leads(session, now, n + 1)
        stored, fresh = ids[:n], ids[n]
        columns, fixed = _split(_columns(stored, now, "B", [i == 0 for i in range(n)]),
                                constant)
        bulk_upsert(session, LeadScore.__table__,  # type: ignore[arg-type]
                    columns, key="lead_id", same_for_all=fixed)
        later = now + timedelta(days=1)
        update = _columns([*stored, fresh], later, "A", [True] * (n + 1))
        del update["first_grade"]
        update, fixed = _split(update, constant)
        bulk_upsert(session, LeadScore.__table__, update,  # type: ignore[arg-type]
                    key="lead_id", update_only=True, keep_existing=("mql_at",),
                    same_for_all=fixed)
        session.expire_all()
        rows = {r.lead_id: r for r in session.scalars(
            select(LeadScore).where(LeadScore.lead_id.in_(ids)))}
        assert set(rows) == set(stored)  # update_only inserted nothing
        for i, lead_id in enumerate(stored):
            row = rows[lead_id]
            assert (row.grade, row.first_grade, row.is_mql) == ("A", "B", True)
            assert row.scored_at == later and row.score == float(i)
            assert row.mql_at == (now if i == 0 else later)  # the first crossing is kept
            assert row.probability == (None if i % 2 else 0.125)
            assert row.engagement_totals == bytes([i % 256]) * 13
            assert (row.fit, row.engagement, row.ruleset_version) == (10.5, 2.25, 3)
            assert row.model_id is None


def test_bulk_upsert_constants_keep_their_text_and_first_values(
    session: Session, now: datetime
) -> None:
    """Values given once for all rows (written into SQLite's statement as literals) keep a
    quote in their text, and ``keep_existing`` leaves stored values alone."""
    ids = _leads(session, now, 4)
    table: Any = Lead.__table__
    bulk_upsert(session, table, {"id": ids[:2], "source": ["form", "api"]}, key="id",
                update_only=True)
    later = now + timedelta(hours=3)
    bulk_upsert(session, table, {"id": ids, "title": ["t"] * 4},
                key="id", update_only=True, keep_existing=("source",),
                same_for_all={"name": "O'Brien 张", "source": "import", "updated_at": later,
                              "headcount": None})
    session.expire_all()
    rows = {r.id: r for r in session.scalars(select(Lead).where(Lead.id.in_(ids)))}
    assert [rows[i].source for i in ids] == ["form", "api", "import", "import"]
    assert {(r.name, r.updated_at, r.headcount, r.title) for r in rows.values()} == {
        ("O'Brien 张", later, None, "t")}


def test_bulk_insert_rows_and_columns_land_alike(session: Session, now: datetime) -> None:
    """Rows given as dicts and as columns (fed to the driver one at a time) both land, with
    JSON and times converted; a duplicate key fails the way SQLAlchemy reports it."""
    lead_id = _leads(session, now, 1)[0]
    n = 120  # above the PostgreSQL COPY threshold
    bulk_insert(session, Activity.__table__, [  # type: ignore[arg-type]
        {"lead_id": lead_id, "kind": "note", "occurred_at": now, "summary": f"row {i}",
         "detail": {"i": i}} for i in range(n)])
    bulk_insert_columns(session, Activity.__table__, {  # type: ignore[arg-type]
        "lead_id": [lead_id] * n, "kind": ["note"] * n, "occurred_at": [now] * n,
        "summary": [f"column {i}" for i in range(n)], "detail": [f'{{"i": {i}}}' for i in range(n)]})
    rows = session.execute(select(Activity.summary, Activity.detail, Activity.occurred_at)
                           .where(Activity.lead_id == lead_id)).all()
    assert len(rows) == 2 * n
    assert {(r.summary, r.detail["i"]) for r in rows} == {
        *((f"row {i}", i) for i in range(n)), *((f"column {i}", i) for i in range(n))}
    assert {r.occurred_at for r in rows} == {now}
    # Columns with one value for all rows (SQLite: literals in the statement).
    later = now + timedelta(minutes=5)
    bulk_insert_columns(session, Activity.__table__, {  # type: ignore[arg-type]
        "lead_id": [lead_id] * n, "detail": [f'{{"i": {i}}}' for i in range(n)]},
        same_for_all={"kind": "note", "occurred_at": later, "summary": "it's the same",
                      "actor_id": None})
    fixed = session.execute(select(Activity.summary, Activity.detail, Activity.actor_id)
                            .where(Activity.lead_id == lead_id, Activity.occurred_at == later)
                            ).all()
    assert sorted(r.detail["i"] for r in fixed) == list(range(n))
    assert {(r.summary, r.actor_id) for r in fixed} == {("it's the same", None)}
    if session.get_bind().dialect.name == "sqlite":
        taken = session.scalar(select(Activity.id).where(Activity.lead_id == lead_id).limit(1))
        with pytest.raises(IntegrityError), session.begin_nested():
            bulk_insert_columns(session, Activity.__table__, {  # type: ignore[arg-type]
                "id": [taken], "lead_id": [lead_id], "kind": ["note"], "occurred_at": [now],
                "summary": ["again"], "detail": ["{}"]})


def test_background_checkpoints_commit_and_checkpoint(db: Engine, now: datetime) -> None:
    """A job's commits land; on SQLite the connection's own checkpoint setting is back after
    each, and what they wrote reaches the database file (not only the WAL) once the job's
    checkpoint thread is done."""
    with checkpoints_in_background() as commit:
        for name in ("first", "second"):
            with session_scope() as session:
                lead = Lead(created_at=now, updated_at=now, tags=[], custom_fields={},
                            name=name)
                session.add(lead)
                if db.dialect.name == "sqlite":
                    raw = session.connection().connection.driver_connection
                    raw.execute("PRAGMA wal_autocheckpoint=777")
                commit(session)
                if db.dialect.name == "sqlite":
                    assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 777
                    raw.execute("PRAGMA wal_autocheckpoint=1000")
    assert not any(t.name == "wal-checkpoint" for t in threading.enumerate())
    with session_scope() as session:
        assert set(session.scalars(select(Lead.name))) == {"first", "second"}
    if db.dialect.name == "sqlite":
        # Read the database file alone, as if the WAL were lost: the rows are there.
        path = db.url.database
        with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as file_only:
            names = {r[0] for r in file_only.execute("SELECT name FROM lead")}
        assert names == {"first", "second"}


def test_background_checkpoints_roll_back_a_failed_chunk(db: Engine, now: datetime) -> None:
    with pytest.raises(RuntimeError), checkpoints_in_background() as commit:
        with session_scope() as session:
            session.add(Lead(created_at=now, updated_at=now, tags=[], custom_fields={},
                             name="kept"))
            commit(session)
        with session_scope() as session:
            session.add(Lead(created_at=now, updated_at=now, tags=[], custom_fields={},
                             name="lost"))
            session.flush()
            raise RuntimeError("the job fails half way")
    assert not any(t.name == "wal-checkpoint" for t in threading.enumerate())
    with session_scope() as session:
        assert set(session.scalars(select(Lead.name))) == {"kept"}
