"""scoring

Revision ID: 2e6105db4211
Revises: 2a6ea0fce228
Create Date: 2026-11-26 09:22:38.837761
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import leadflow.db

revision: str = '2e6105db4211'
down_revision: str | None = '2a6ea0fce228'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('scoring_model',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('target', sa.String(length=120), nullable=False),
    sa.Column('id_column', sa.String(length=120), nullable=True),
    sa.Column('spec', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('blob', sa.LargeBinary(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('n_rows', sa.Integer(), nullable=False),
    sa.Column('n_positive', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_scoring_model_created_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scoring_model'))
    )
    op.create_table('scoring_ruleset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_scoring_ruleset_created_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scoring_ruleset')),
    sa.UniqueConstraint('version', name=op.f('uq_scoring_ruleset_version'))
    )
    op.create_table('grade_flag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('grade', sa.String(length=2), nullable=False),
    sa.Column('suggested_grade', sa.String(length=2), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], name=op.f('fk_grade_flag_lead_id_lead')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_grade_flag_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grade_flag'))
    )
    with op.batch_alter_table('grade_flag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_grade_flag_lead_id'), ['lead_id'], unique=False)

    op.create_table('lead_score',
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('fit', sa.Double(), nullable=False),
    sa.Column('engagement', sa.Double(), nullable=False),
    sa.Column('probability', sa.Double(), nullable=True),
    sa.Column('score', sa.Double(), nullable=False),
    sa.Column('grade', sa.String(length=2), nullable=False),
    sa.Column('is_mql', sa.Boolean(), nullable=False),
    sa.Column('mql_at', leadflow.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('first_grade', sa.String(length=2), nullable=False),
    sa.Column('ruleset_version', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=True),
    sa.Column('scored_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], name=op.f('fk_lead_score_lead_id_lead')),
    sa.PrimaryKeyConstraint('lead_id', name=op.f('pk_lead_score'))
    )
    if op.get_bind().dialect.name == "postgresql":
        # Free space on each page lets a re-score update rows in place (HOT updates).
        op.execute("ALTER TABLE lead_score SET (fillfactor = 70)")
    op.create_table('outbox_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('handled_at', leadflow.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], name=op.f('fk_outbox_event_lead_id_lead')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_event'))
    )
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_event_handled_at_id', ['handled_at', 'id'], unique=False)

    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.add_column(sa.Column('value', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('ref', sa.String(length=300), nullable=True))

    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_column('grade')
        batch_op.drop_column('score')



def downgrade() -> None:
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.add_column(sa.Column('score', sa.DOUBLE(), nullable=True))
        batch_op.add_column(sa.Column('grade', sa.VARCHAR(length=4), nullable=True))

    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.drop_column('ref')
        batch_op.drop_column('value')

    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_event_handled_at_id')

    op.drop_table('outbox_event')
    op.drop_table('lead_score')
    with op.batch_alter_table('grade_flag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grade_flag_lead_id'))

    op.drop_table('grade_flag')
    op.drop_table('scoring_ruleset')
    op.drop_table('scoring_model')
