"""engagement totals carry their own time

Revision ID: 5d2a9c4e7b31
Revises: 3b8f0c6e2a17
Create Date: 2026-11-27 01:30:00

A re-score that reuses a lead's stored engagement totals (a change of the fit rules, the
grading or the model) decays them from the time they were computed, so it need not rewrite
them: ``totals_at`` is that time, apart from ``scored_at``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import leadflow.db

revision: str = "5d2a9c4e7b31"
down_revision: str | None = "3b8f0c6e2a17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("lead_score") as batch_op:
        batch_op.add_column(sa.Column("totals_at", leadflow.db.UTCDateTime(timezone=True),
                                      nullable=True))
    # Until now the totals were always written with the score.
    op.execute("UPDATE lead_score SET totals_at = scored_at "
               "WHERE engagement_totals IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("lead_score") as batch_op:
        batch_op.drop_column("totals_at")
