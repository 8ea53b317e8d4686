"""Engine, metadata and the one place that opens sessions."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    MetaData,
    Table,
    create_engine,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from leadflow.config import get_settings

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# JSONB on PostgreSQL (indexable, compact); plain JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; leadflow stores UTC-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base for every domain model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def is_sqlite(url: str) -> bool:
    """True when ``url`` names an SQLite database."""
    return url.startswith("sqlite")


def make_engine(url: str) -> Engine:
    """Create an engine with the pragmas and pool settings leadflow expects."""
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # 128 MiB of page cache: imports insert into several indexes on random keys
            # (phone, email, blocking keys); the 2 MiB default thrashes at a million leads.
            cur.execute("PRAGMA cache_size=-131072")
            cur.close()

        return engine
    settings = get_settings()
    return create_engine(url, pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow, pool_pre_ping=True)


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for ``LEADFLOW_DATABASE_URL``."""
    return make_engine(get_settings().database_url)


def forget_inherited_connections() -> None:
    """In a forked child process: drop the parent's pooled connections without closing them
    (they still serve the parent); the child opens its own."""
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=False)


@lru_cache
def _session_factory() -> sessionmaker[Session]:
    # Every mapper must be known before the first flush resolves foreign keys.
    import leadflow.models  # noqa: F401

    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """Open a session, commit on success, roll back on error. Services only flush."""
    session = _session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


Commit = Callable[[Session], None]


@contextmanager
def checkpoints_in_background() -> Iterator[Commit]:
    """Commits for a bulk job that writes chunk after chunk, each in its own transaction.

    Yields ``commit(session)``. On SQLite the commit does not run the WAL checkpoint it
    would otherwise run inline (copying the pages just written into the database file and
    syncing it: about a sixth of a re-score's writing, measured); a thread of this process
    checkpoints after each commit while the job goes on. Elsewhere it is a plain commit.

    The thread starts at the first commit, so that a helper process forked at the job's
    start never inherits it.
    """
    engine = get_engine()
    if engine.dialect.name != "sqlite":
        yield lambda session: session.commit()
        return
    wanted, stop = threading.Event(), threading.Event()
    thread: threading.Thread | None = None

    def checkpoint_when_asked() -> None:
        connection = engine.raw_connection()  # its own, for as long as the job runs
        try:
            last = False
            while not last:
                wanted.wait()
                wanted.clear()
                # Read before checkpointing: a stop asked for meanwhile gets one more pass,
                # which covers the commits made up to it.
                last = stop.is_set()
                try:
                    connection.driver_connection.execute(  # type: ignore[union-attr]
                        "PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:  # the next commit's checkpoint catches up
                    log.warning("background WAL checkpoint failed", exc_info=True)
        finally:
            connection.close()

    def commit(session: Session) -> None:
        nonlocal thread
        session.flush()
        raw = session.connection().connection.driver_connection
        assert raw is not None
        # The driver commits while the session still holds the connection, so the setting
        # is restored before any other thread can take the connection from the pool; the
        # session's own commit then finds nothing left to do.
        automatic = int(raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        raw.execute("PRAGMA wal_autocheckpoint=0")
        try:
            raw.commit()
        finally:
            raw.execute(f"PRAGMA wal_autocheckpoint={automatic}")
        session.commit()
        if thread is None:
            thread = threading.Thread(target=checkpoint_when_asked, daemon=True,
                                      name="wal-checkpoint")
            thread.start()
        wanted.set()

    try:
        yield commit
    finally:
        if thread is not None:
            stop.set()
            wanted.set()  # a last checkpoint, then the thread ends
            thread.join()


def lock_for_writing(session: Session) -> None:
    """Take SQLite's write lock now, for a read-then-write unit of work (no-op elsewhere).

    A deferred SQLite transaction that has read and then wants to write fails at once with
    "database is locked" when another writer committed in between; taking the lock first
    makes such writers queue (busy_timeout) and makes their reads and writes atomic.
    """
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.driver_connection
    if raw is not None and not raw.in_transaction:
        raw.execute("BEGIN IMMEDIATE")


def reset_engine_cache() -> None:
    """Forget the cached engine (tests and CLI switch databases through settings)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    _session_factory.cache_clear()


def _to_json(value: Any) -> str | None:
    if value is None or isinstance(value, str):  # a string is already JSON
        return value
    if not value:  # most tags and custom fields are empty
        return "[]" if isinstance(value, list) else "{}"
    return json.dumps(value, ensure_ascii=False)


class _SqliteTimestamp:
    """UTC datetime → the text SQLAlchemy's SQLite DateTime reads back, memoised because
    the rows of one bulk write share their timestamp."""

    def __init__(self) -> None:
        self._last: datetime | None = None
        self._text: str | None = None

    def __call__(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        if value is not self._last:
            self._last = value
            self._text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return self._text


def _converter(column: Any, sqlite: bool) -> Any:
    type_ = column.type
    if isinstance(type_, UTCDateTime):
        return _SqliteTimestamp() if sqlite else None
    if isinstance(type_, JSON) or getattr(type_, "impl", None).__class__ is JSON:
        return _to_json
    return None


def _driver_rows(
    table: Table, rows: list[dict[str, Any]], names: list[str], sqlite: bool
) -> Iterator[tuple[Any, ...]]:
    """Rows as the driver takes them, converted by column kind (JSON, UTC datetime), one at
    a time: the driver binds each and drops it (see :func:`_sqlite_executemany`)."""
    columns = [table.c[name] for name in names]
    getter = itemgetter(*names)
    converting = [(i, conv) for i, c in enumerate(columns) if (conv := _converter(c, sqlite))]
    for row in rows:
        values = list(getter(row)) if len(names) > 1 else [getter(row)]
        for i, conv in converting:
            values[i] = conv(values[i])
        yield tuple(values)


def _driver_columns(
    table: Table, columns: Mapping[str, Sequence[Any]], sqlite: bool
) -> list[Sequence[Any]]:
    """Columns as the driver takes their values, converted by column kind."""
    converted: list[Sequence[Any]] = []
    for name, values in columns.items():
        conv = _converter(table.c[name], sqlite)
        if isinstance(conv, _SqliteTimestamp):
            # A bulk write's rows share a few instants: format each one once, then look up.
            text = {value: conv(value) for value in dict.fromkeys(values)}
            converted.append(list(map(text.__getitem__, values)))
        else:
            converted.append([conv(v) for v in values] if conv else values)
    return converted


def bulk_insert(
    session: Session, table: Table, rows: list[dict[str, Any]], *, returning_id: bool = False
) -> list[int]:
    """Insert many rows the fastest plain way each engine has.

    SQLite: the driver's ``executemany``; PostgreSQL: ``COPY``. Values are converted by
    column kind (JSON, UTC datetime), skipping SQLAlchemy's per-row bind processing, which
    costs more than the insert itself on bulk paths (import, demo). Enum members must be
    given as their ``.value``. ``returning_id`` (PostgreSQL, one row) returns the new id.
    """
    if not rows:
        return []
    names = list(rows[0])
    sqlite = session.connection().dialect.name == "sqlite"
    return _insert_rows(session, table, names, _driver_rows(table, rows, names, sqlite),
                        len(rows), returning_id=returning_id)


def bulk_insert_columns(
    session: Session, table: Table, columns: Mapping[str, Sequence[Any]], *,
    same_for_all: Mapping[str, Any] | None = None,
) -> None:
    """:func:`bulk_insert` for rows given as columns (plain Python values, one list per
    column): batch jobs that build their rows from arrays skip a dict per row.
    ``same_for_all`` are columns with one value for every row (SQLite writes them into the
    statement instead of binding them per row)."""
    n = len(next(iter(columns.values()))) if columns else 0
    if not n:
        return
    conn = session.connection()
    constants = dict(same_for_all or {})
    if conn.dialect.name != "sqlite":
        columns = {**columns, **{name: [value] * n for name, value in constants.items()}}
        converted = _driver_columns(table, columns, False)
        _insert_rows(session, table, list(columns), zip(*converted, strict=True), n)
        return
    converted = _driver_columns(table, columns, True)
    literals = {name: _sqlite_literal(table.c[name], value) for name, value in constants.items()}
    _sqlite_executemany(conn, _sqlite_insert(table, list(columns), literals),
                        zip(*converted, strict=True))


def _insert_rows(
    session: Session, table: Table, names: list[str], rows: Iterable[Sequence[Any]],
    count: int, *, returning_id: bool = False,
) -> list[int]:
    conn = session.connection()
    col_list = ", ".join(f'"{n}"' for n in names)
    if conn.dialect.name == "sqlite":
        _sqlite_executemany(conn, _sqlite_insert(table, names, {}), rows)
        return []
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        if count < 50:  # COPY's set-up costs more than a few plain inserts
            tuples = list(rows)
            marks = ", ".join(["%s"] * len(names))
            sql = f'INSERT INTO "{table.name}" ({col_list}) VALUES ({marks})'
            if returning_id:
                cur.execute(sql + " RETURNING id", tuples[0])
                row = cur.fetchone()
                assert row is not None
                return [int(row[0])]
            if count == 1:  # executemany pipelines, which costs round trips for one row
                cur.execute(sql, tuples[0])
            else:
                cur.executemany(sql, tuples)
            return []
        with cur.copy(f'COPY "{table.name}" ({col_list}) FROM STDIN') as copy:
            for values in rows:
                copy.write_row(values)
    return []


def _sqlite_executemany(conn: Connection, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """``executemany`` on the driver, fed row by row: a list of 50,000 tuples built first
    cost a third as much again as the statement (each tuple is made, bound and dropped)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        raw.executemany(sql, rows)
    except sqlite3.Error as error:  # as SQLAlchemy raises it (callers catch IntegrityError)
        raise DBAPIError.instance(sql, None, error, sqlite3.Error) from error


def _sqlite_insert(table: Table, names: Sequence[str], literals: Mapping[str, str]) -> str:
    """SQLite's ``INSERT`` of ``names`` as bound values and of ``literals`` (column → SQL
    literal, see :func:`_sqlite_literal`) written into the statement."""
    col_list = ", ".join(f'"{c}"' for c in [*names, *literals])
    row = ", ".join(["?"] * len(names) + list(literals.values()))
    return f'INSERT INTO "{table.name}" ({col_list}) VALUES ({row})'


def _sqlite_literal(column: Any, value: Any) -> str:
    """``value`` of ``column`` as an SQLite literal, converted as a bound value would be."""
    conv = _converter(column, sqlite=True)
    value = conv(value) if conv is not None else value
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQLite literal for {type(value).__name__} (column {column.name})")


def bulk_upsert(
    session: Session, table: Table, columns: Mapping[str, Sequence[Any]], *, key: str,
    update_only: bool = False, keep_existing: Collection[str] = (),
    same_for_all: Mapping[str, Any] | None = None,
) -> None:
    """Insert many rows given as columns, or overwrite the rows whose ``key`` already exists.

    SQLite: ``executemany`` of ``INSERT … ON CONFLICT DO UPDATE``. PostgreSQL: ``COPY`` into
    a temporary table, then one set-based ``INSERT … ON CONFLICT`` (or, with
    ``update_only``, one ``UPDATE … FROM``) — per-row statements cost several times more.
    ``update_only`` skips keys that are not there yet (a plain UPDATE; on PostgreSQL it is
    fastest when the keys are close together, like a chunk of ids). Columns named in
    ``keep_existing`` keep a stored non-null value (first-time facts such as ``mql_at``).
    Values must be plain Python (``ndarray.tolist()``), not numpy scalars. ``same_for_all``
    are columns with one value for every row (a job's timestamp and version): on
    PostgreSQL's staged path they are bound once instead of copied per row.
    """
    n = len(columns[key])
    if n == 0:
        return
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    constants = dict(same_for_all or {})
    if n < 50 and not update_only and not sqlite:  # one statement: a column like any other
        columns = {**columns, **{name: [value] * n for name, value in constants.items()}}
        constants = {}
    names = list(columns)
    converted = _driver_columns(table, columns, sqlite)
    col_list = ", ".join(f'"{c}"' for c in names)
    changed = [c for c in names if c != key]

    def assignment(c: str, new: str, target: str = f'"{table.name}"') -> str:
        if c in keep_existing:
            return f'"{c}" = COALESCE({target}."{c}", {new}."{c}")'
        return f'"{c}" = {new}."{c}"'

    if sqlite:
        # The constants go into the statement's text: binding them again for every row
        # cost a tenth of a re-score's score update.
        literals = {c: _sqlite_literal(table.c[c], value) for c, value in constants.items()}
        if update_only:
            sets = ", ".join(
                [*(f'"{c}" = COALESCE("{c}", ?)' if c in keep_existing else f'"{c}" = ?'
                   for c in changed),
                 *(f'"{c}" = COALESCE("{c}", {v})' if c in keep_existing else f'"{c}" = {v}'
                   for c, v in literals.items())])
            order = [names.index(c) for c in [*changed, key]]
            _sqlite_executemany(conn, f'UPDATE "{table.name}" SET {sets} WHERE "{key}" = ?',
                                zip(*(converted[i] for i in order), strict=True))
            return
        sets = ", ".join(assignment(c, "excluded") for c in [*changed, *literals])
        _sqlite_executemany(conn, _sqlite_insert(table, names, literals)
                            + f' ON CONFLICT ("{key}") DO UPDATE SET {sets}',
                            zip(*converted, strict=True))
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    if n < 50 and not update_only:  # one statement beats a staging table for a few rows
        marks = ", ".join(["%s"] * len(names))
        sets = ", ".join(assignment(c, "EXCLUDED") for c in changed)
        sql = (f'INSERT INTO "{table.name}" ({col_list}) VALUES ({marks}) '
               f'ON CONFLICT ("{key}") DO UPDATE SET {sets}')
        tuples = list(zip(*converted, strict=True))
        with raw.cursor() as cur:
            if n == 1:  # executemany pipelines, which costs round trips for one row
                cur.execute(sql, tuples[0])
            else:
                cur.executemany(sql, tuples)
        return
    # Only the given columns, without the table's NOT NULL constraints; one per column set.
    staging = f"staging_{table.name}_{len(names)}_{abs(hash(col_list)) % 10**8}"
    with raw.cursor() as cur:
        cur.execute(
            f'CREATE TEMP TABLE IF NOT EXISTS "{staging}" ON COMMIT DROP AS '
            f'SELECT {col_list} FROM "{table.name}" WITH NO DATA'
        )
        cur.execute(f'TRUNCATE "{staging}"')
        # Binary COPY halves the cost of wide rows (no number formatting or parsing on
        # either side). JSON travels pre-serialised as text, so tables with it use text.
        binary = not any(_converter(table.c[name], False) is _to_json for name in names)
        if binary:
            cur.execute(f'SELECT {col_list} FROM "{staging}" LIMIT 0')
            types = [column.type_code for column in cur.description or ()]
        with cur.copy(f'COPY "{staging}" ({col_list}) FROM STDIN'
                      + (" (FORMAT BINARY)" if binary else "")) as copy:
            if binary:
                copy.set_types(types)
            for values in zip(*converted, strict=True):
                copy.write_row(values)
        fixed = list(constants)
        fixed_values = [value if (conv := _converter(table.c[name], False)) is None
                        else conv(value) for name, value in constants.items()]
        # Typed: a bound NULL would otherwise be text to the planner.
        bound = {c: f"CAST(%s AS {table.c[c].type.compile(dialect=conn.dialect)})"
                 for c in fixed}
        if update_only:
            sets = ", ".join([*(assignment(c, "s", "t") for c in changed), *(
                f'"{c}" = COALESCE(t."{c}", {bound[c]})' if c in keep_existing
                else f'"{c}" = {bound[c]}' for c in fixed)])
            keys = columns[key]
            # The key range lets the planner read only that stretch of the table's index;
            # without it a join with the staging table scans the whole table each time.
            cur.execute(
                f'UPDATE "{table.name}" t SET {sets} FROM "{staging}" s '
                f'WHERE t."{key}" = s."{key}" AND t."{key}" BETWEEN %s AND %s',
                (*fixed_values, min(keys), max(keys)),
            )
        else:
            every = col_list + "".join(f', "{c}"' for c in fixed)
            sets = ", ".join(assignment(c, "EXCLUDED") for c in [*changed, *fixed])
            cur.execute(
                f'INSERT INTO "{table.name}" ({every}) '
                f'SELECT {col_list}{"".join(", " + bound[c] for c in fixed)} FROM "{staging}" '
                f'ON CONFLICT ("{key}") DO UPDATE SET {sets}', fixed_values,
            )
