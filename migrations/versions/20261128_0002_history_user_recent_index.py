"""score_history: index (user_id, created_at) for the anomaly rules

Replaces the index on user_id alone: the new one leads with user_id, so it serves the
same lookups, and it also reads a user's recent history newest first.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 09:00:00
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_score_history_user_recent', 'score_history', ['user_id', 'created_at'], unique=False)
    op.drop_index('ix_score_history_user_id', table_name='score_history')


def downgrade() -> None:
    op.create_index('ix_score_history_user_id', 'score_history', ['user_id'], unique=False)
    op.drop_index('ix_score_history_user_recent', table_name='score_history')
