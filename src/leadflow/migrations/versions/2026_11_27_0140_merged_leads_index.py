"""a partial index of merged leads

Revision ID: 8e4b1f6a0c52
Revises: 5d2a9c4e7b31
Create Date: 2026-11-27 01:40:00

Live leads are counted as all leads less the merged ones (a re-score's progress total):
counting by status read every lead row, this index holds only the merged leads.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e4b1f6a0c52"
down_revision: str | None = "5d2a9c4e7b31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_lead_merged", "lead", ["id"],
                    sqlite_where=sa.text("status = 'merged'"),
                    postgresql_where=sa.text("status = 'merged'"))


def downgrade() -> None:
    op.drop_index("ix_lead_merged", table_name="lead")
