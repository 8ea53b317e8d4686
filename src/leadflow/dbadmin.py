"""Creating and migrating the database (``leadflow db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from leadflow.config import get_settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["database_url"] = database_url or get_settings().database_url
    return cfg


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    """Create or migrate the database to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    """Migrate down to ``revision``."""
    command.downgrade(alembic_config(database_url), revision)


# Indexes on expressions (``rank DESC``) that autogenerate cannot compare: the migrations
# write them by hand, and schema comparisons leave them out.
HAND_WRITTEN_INDEXES = frozenset({"ix_task_queue"})


def include_object(obj: object, name: str | None, type_: str, reflected: bool,
                   compare_to: object) -> bool:
    """Alembic's filter for autogenerate and schema comparisons (see HAND_WRITTEN_INDEXES)."""
    return not (type_ == "index" and name in HAND_WRITTEN_INDEXES)
