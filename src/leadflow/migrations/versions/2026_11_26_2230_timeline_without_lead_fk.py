"""timeline and outbox rows name their lead without a foreign key

Revision ID: 3b8f0c6e2a17
Revises: 7c1e5a2d9f40
Create Date: 2026-11-26 22:30:00

PostgreSQL checks a foreign key on every inserted row by locking the referenced lead row,
which writes to the lead's page and the WAL: that check cost more than the insert itself
for the events and re-grades the timeline takes in bulk. Leads are never deleted (a merge
keeps the merged lead's row), and every writer of these rows has just read the lead.
See docs/decisions.md.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3b8f0c6e2a17"
down_revision: str | None = "7c1e5a2d9f40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("activity") as batch_op:
        batch_op.drop_constraint("fk_activity_lead_id_lead", type_="foreignkey")
    with op.batch_alter_table("outbox_event") as batch_op:
        batch_op.drop_constraint("fk_outbox_event_lead_id_lead", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("outbox_event") as batch_op:
        batch_op.create_foreign_key("fk_outbox_event_lead_id_lead", "lead", ["lead_id"], ["id"])
    with op.batch_alter_table("activity") as batch_op:
        batch_op.create_foreign_key("fk_activity_lead_id_lead", "lead", ["lead_id"], ["id"])
