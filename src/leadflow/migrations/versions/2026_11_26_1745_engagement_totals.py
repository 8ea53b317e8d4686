"""engagement totals beside each lead's score

Revision ID: 7c1e5a2d9f40
Revises: 0196d8a7b200
Create Date: 2026-11-26 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1e5a2d9f40"
down_revision: str | None = "0196d8a7b200"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: existing scores have no totals yet, so their next re-score reads their events.
    with op.batch_alter_table("lead_score") as batch_op:
        batch_op.add_column(sa.Column("engagement_totals", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lead_score") as batch_op:
        batch_op.drop_column("engagement_totals")
