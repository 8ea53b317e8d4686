"""routing

Revision ID: 5bdf63a682c9
Revises: 2e6105db4211
Create Date: 2026-11-26 12:11:42.240356
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import leadflow.db

revision: str = '5bdf63a682c9'
down_revision: str | None = '2e6105db4211'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('lead_pool',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('claim_daily_cap', sa.Integer(), nullable=False),
    sa.Column('holding_cap', sa.Integer(), nullable=False),
    sa.Column('protection_days', sa.Integer(), nullable=False),
    sa.Column('extension_days', sa.Integer(), nullable=False),
    sa.Column('max_protection_days', sa.Integer(), nullable=False),
    sa.Column('warn_days', sa.Integer(), nullable=False),
    sa.Column('reclaim_cooldown_days', sa.Integer(), nullable=False),
    sa.Column('created_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_lead_pool_team_id_team')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_pool')),
    sa.UniqueConstraint('name', name=op.f('uq_lead_pool_name'))
    )
    op.create_table('rep_absence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_rep_absence_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rep_absence'))
    )
    with op.batch_alter_table('rep_absence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rep_absence_user_id'), ['user_id'], unique=False)

    op.create_table('rep_day_load',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('grade', sa.String(length=2), nullable=False),
    sa.Column('assigned', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_rep_day_load_user_id_user_account')),
    sa.PrimaryKeyConstraint('user_id', 'day', 'grade', name=op.f('pk_rep_day_load'))
    )
    op.create_table('rep_pass',
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('pass_value', sa.Double(), nullable=False),
    sa.Column('assigned', sa.Integer(), nullable=False),
    sa.Column('last_assigned_at', leadflow.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_rep_pass_team_id_team')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_rep_pass_user_id_user_account')),
    sa.PrimaryKeyConstraint('team_id', 'user_id', name=op.f('pk_rep_pass'))
    )
    op.create_table('rep_profile',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('presence', sa.String(length=12), nullable=False),
    sa.Column('capacity', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('max_open_leads', sa.Integer(), nullable=True),
    sa.Column('weight', sa.Double(), nullable=False),
    sa.Column('languages', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('product_lines', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('work_start_minute', sa.Integer(), nullable=True),
    sa.Column('work_end_minute', sa.Integer(), nullable=True),
    sa.Column('holiday_calendar', sa.String(length=8), nullable=True),
    sa.Column('updated_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_rep_profile_user_id_user_account')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_rep_profile'))
    )
    op.create_table('routing_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('conditions', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('pool_id', sa.Integer(), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pool_id'], ['lead_pool.id'], name=op.f('fk_routing_rule_pool_id_lead_pool')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_routing_rule_team_id_team')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_routing_rule_updated_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_rule'))
    )
    op.create_table('team_policy',
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('strategy', sa.String(length=16), nullable=False),
    sa.Column('capacity', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('sla_minutes', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('pool_id', sa.Integer(), nullable=True),
    sa.Column('away_policy', sa.String(length=16), nullable=False),
    sa.Column('virtual_pass', sa.Double(), nullable=False),
    sa.Column('updated_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pool_id'], ['lead_pool.id'], name=op.f('fk_team_policy_pool_id_lead_pool')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_team_policy_team_id_team')),
    sa.PrimaryKeyConstraint('team_id', name=op.f('pk_team_policy'))
    )
    op.create_table('notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('read_at', leadflow.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], name=op.f('fk_notice_lead_id_lead')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_notice_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notice'))
    )
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.create_index('ix_notice_user_id_read_at', ['user_id', 'read_at'], unique=False)

    op.create_table('ownership',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('pool_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('grade', sa.String(length=2), nullable=True),
    sa.Column('rule_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('started_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sla_due_at', leadflow.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accepted_at', leadflow.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('breach_level', sa.Integer(), nullable=False),
    sa.Column('ended_at', leadflow.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], name=op.f('fk_ownership_lead_id_lead')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_ownership_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ownership'))
    )
    with op.batch_alter_table('ownership', schema=None) as batch_op:
        batch_op.create_index('ix_ownership_sla_due_at', ['sla_due_at'], unique=False, sqlite_where=sa.text('ended_at IS NULL AND accepted_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL AND accepted_at IS NULL'))
        batch_op.create_index('ix_ownership_user_id_ended_at', ['user_id', 'ended_at'], unique=False)
        batch_op.create_index('uq_ownership_open_lead', ['lead_id'], unique=True, sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))

    op.create_table('sla_breach',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ownership_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('grade', sa.String(length=2), nullable=True),
    sa.Column('minutes_late', sa.Double(), nullable=False),
    sa.Column('breached_at', leadflow.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], name=op.f('fk_sla_breach_lead_id_lead')),
    sa.ForeignKeyConstraint(['ownership_id'], ['ownership.id'], name=op.f('fk_sla_breach_ownership_id_ownership')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_sla_breach_team_id_team')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_sla_breach_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_breach'))
    )
    with op.batch_alter_table('sla_breach', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sla_breach_ownership_id'), ['ownership_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sla_breach_team_id'), ['team_id'], unique=False)

    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pool_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('route_due_at', leadflow.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('owned_at', leadflow.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('protected_until', leadflow.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('recycle_warned_at', leadflow.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('recycle_count', sa.Integer(), nullable=False, server_default=sa.text('0')))
        batch_op.add_column(sa.Column('first_touch_at', leadflow.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_touch_at', leadflow.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('follow_up_on', sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f('ix_lead_pool_id'), ['pool_id'], unique=False)
        batch_op.create_index('ix_lead_company_key_owned', ['company_key'], unique=False, sqlite_where=sa.text('owner_id IS NOT NULL'), postgresql_where=sa.text('owner_id IS NOT NULL'))
        batch_op.create_index('ix_lead_protected_until', ['protected_until'], unique=False, sqlite_where=sa.text('owner_id IS NOT NULL'), postgresql_where=sa.text('owner_id IS NOT NULL'))
        batch_op.create_index('ix_lead_route_due_at', ['route_due_at', 'id'], unique=False, sqlite_where=sa.text('route_due_at IS NOT NULL'), postgresql_where=sa.text('route_due_at IS NOT NULL'))
        batch_op.create_foreign_key(batch_op.f('fk_lead_pool_id_lead_pool'), 'lead_pool', ['pool_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_lead_pool_id_lead_pool'), type_='foreignkey')
        batch_op.drop_index('ix_lead_route_due_at', sqlite_where=sa.text('route_due_at IS NOT NULL'), postgresql_where=sa.text('route_due_at IS NOT NULL'))
        batch_op.drop_index('ix_lead_company_key_owned', sqlite_where=sa.text('owner_id IS NOT NULL'), postgresql_where=sa.text('owner_id IS NOT NULL'))
        batch_op.drop_index('ix_lead_protected_until', sqlite_where=sa.text('owner_id IS NOT NULL'), postgresql_where=sa.text('owner_id IS NOT NULL'))
        batch_op.drop_index(batch_op.f('ix_lead_pool_id'))
        batch_op.drop_column('follow_up_on')
        batch_op.drop_column('last_touch_at')
        batch_op.drop_column('first_touch_at')
        batch_op.drop_column('recycle_count')
        batch_op.drop_column('recycle_warned_at')
        batch_op.drop_column('protected_until')
        batch_op.drop_column('owned_at')
        batch_op.drop_column('route_due_at')
        batch_op.drop_column('pool_id')

    with op.batch_alter_table('sla_breach', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sla_breach_team_id'))
        batch_op.drop_index(batch_op.f('ix_sla_breach_ownership_id'))

    op.drop_table('sla_breach')
    with op.batch_alter_table('ownership', schema=None) as batch_op:
        batch_op.drop_index('uq_ownership_open_lead', sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))
        batch_op.drop_index('ix_ownership_user_id_ended_at')
        batch_op.drop_index('ix_ownership_sla_due_at', sqlite_where=sa.text('ended_at IS NULL AND accepted_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL AND accepted_at IS NULL'))

    op.drop_table('ownership')
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.drop_index('ix_notice_user_id_read_at')

    op.drop_table('notice')
    op.drop_table('team_policy')
    op.drop_table('routing_rule')
    op.drop_table('rep_profile')
    op.drop_table('rep_pass')
    op.drop_table('rep_day_load')
    with op.batch_alter_table('rep_absence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rep_absence_user_id'))

    op.drop_table('rep_absence')
    op.drop_table('lead_pool')
