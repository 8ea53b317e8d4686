"""Shared pieces of the benchmarks: fresh databases, timing, output."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

PG_ADMIN_URL = os.environ.get("LEADFLOW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
console = Console(stderr=True)


@dataclass
class Database:
    """A benchmark database: its SQLAlchemy URL and how to copy or drop it."""

    engine: str
    url: str
    name: str
    path: Path | None = None

    def clone(self, suffix: str) -> Database:
        """A copy of this database (file copy for SQLite, TEMPLATE for PostgreSQL)."""
        if self.engine == "sqlite":
            assert self.path is not None
            target = self.path.with_name(f"{self.path.stem}_{suffix}.db")
            shutil.copyfile(self.path, target)
            return Database("sqlite", f"sqlite:///{target}", target.stem, target)
        name = f"{self.name}_{suffix}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
        return Database("postgres", self.url.rsplit("/", 1)[0] + f"/{name}", name)

    def drop(self) -> None:
        """Remove the database."""
        if self.engine == "sqlite":
            assert self.path is not None
            for p in self.path.parent.glob(self.path.name + "*"):
                p.unlink(missing_ok=True)
            return
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def fresh_database(engine: str, name: str, workdir: Path) -> Database:
    """An empty, migrated database on ``engine``."""
    from leadflow import dbadmin

    if engine == "sqlite":
        path = workdir / f"{name}.db"
        for p in workdir.glob(path.name + "*"):
            p.unlink()
        db = Database("sqlite", f"sqlite:///{path}", name, path)
    else:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        db = Database("postgres", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name)
    dbadmin.upgrade(db.url)
    return db


@contextmanager
def use_database(url: str) -> Iterator[None]:
    """Point leadflow's settings and engine at ``url`` for the block."""
    from leadflow.config import get_settings
    from leadflow.db import reset_engine_cache

    old = os.environ.get("LEADFLOW_DATABASE_URL")
    os.environ["LEADFLOW_DATABASE_URL"] = url
    get_settings.cache_clear()
    reset_engine_cache()
    try:
        yield
    finally:
        reset_engine_cache()
        if old is None:
            os.environ.pop("LEADFLOW_DATABASE_URL", None)
        else:
            os.environ["LEADFLOW_DATABASE_URL"] = old
        get_settings.cache_clear()


def analyze(url: str) -> None:
    """Fresh planner statistics after bulk changes (``VACUUM ANALYZE`` on PostgreSQL,
    ``ANALYZE`` on SQLite)."""
    from sqlalchemy import text

    from leadflow.db import get_engine

    with use_database(url):
        engine = get_engine()
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        else:
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))


def workdir() -> Path:
    """Scratch space for generated files and SQLite databases."""
    base = Path(os.environ.get("LEADFLOW_BENCH_DIR", tempfile.gettempdir())) / "leadflow-bench"
    base.mkdir(parents=True, exist_ok=True)
    return base


def median(values: list[float]) -> float:
    """Median of a non-empty list."""
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


class Timer:
    """Wall-clock seconds of a block."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def emit(result: dict[str, Any], *, as_json: bool, title: str, rows: list[list[str]],
         headers: list[str]) -> None:
    """Print a table on stderr and, with ``--json``, one JSON object on stdout."""
    table = Table(*headers, title=title)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
