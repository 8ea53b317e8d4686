"""Migrations: the models and the migrated schema agree, and every step goes back down."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from leadflow import dbadmin
from leadflow.models import Base


def test_migrated_schema_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    dbadmin.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": dbadmin.include_object})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_downgrade_to_base_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    dbadmin.upgrade(url)
    dbadmin.downgrade(url, "base")
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    dbadmin.upgrade(url)
    engine = create_engine(url)
    assert {"lead", "touchpoint", "activity"} <= set(inspect(engine).get_table_names())
    engine.dispose()
