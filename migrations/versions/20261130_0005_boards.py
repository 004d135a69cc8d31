"""Boards: periods, per-period standings, and what each submission counted on

The all-time board stays ``users.current_score`` (seed flow 7): the existing totals are
the all-time board as they are, so this step needs no data copy and no downtime. The
other boards (daily, weekly, monthly, fixed rounds, seasons) keep one row per board,
period and user in ``board_scores``; ``board_periods`` holds each period's span, whether
an admin defined it (a season), and when it was closed or revised. A history row now
records when its submission was accepted and the board periods it counted on.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 11:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('score_history', sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('score_history', sa.Column('counted_on', postgresql.ARRAY(sa.String(length=65)), nullable=True))
    op.create_table(
        'board_periods',
        sa.Column('board', sa.String(length=32), nullable=False),
        sa.Column('key', sa.String(length=32), nullable=False),
        sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('season', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revised_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('board', 'key', name=op.f('pk_board_periods')),
    )
    op.create_index('ix_board_periods_closed', 'board_periods', ['board', sa.literal_column('starts_at DESC')],
                    unique=False, postgresql_where=sa.text('closed_at IS NOT NULL'))
    op.create_table(
        'board_scores',
        sa.Column('board', sa.String(length=32), nullable=False),
        sa.Column('period', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.BigInteger(), nullable=False),
        sa.Column('score', sa.BigInteger(), nullable=False),
        sa.Column('reached_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('final_rank', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_board_scores_user_id_users')),
        sa.PrimaryKeyConstraint('board', 'period', 'user_id', name=op.f('pk_board_scores')),
    )
    op.create_index('ix_board_scores_order', 'board_scores',
                    ['board', 'period', sa.literal_column('score DESC'), sa.literal_column('reached_at ASC'),
                     sa.literal_column('user_id DESC')], unique=False)
    op.execute("INSERT INTO board_periods (board, key, starts_at) VALUES ('all-time', 'all', 'epoch')")


def downgrade() -> None:
    op.drop_index('ix_board_scores_order', table_name='board_scores')
    op.drop_table('board_scores')
    op.drop_index('ix_board_periods_closed', table_name='board_periods')
    op.drop_table('board_periods')
    op.drop_column('score_history', 'counted_on')
    op.drop_column('score_history', 'accepted_at')
