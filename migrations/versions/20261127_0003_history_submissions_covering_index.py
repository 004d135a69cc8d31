"""score_history: a covering index of the submissions, for the anomaly rules

The rules read each user's latest submissions (type and delta) and count those within
the rate window, for every user of every batch. This partial index holds exactly those
columns, newest first, so both reads are index-only scans where the table is vacuumed:
about three times faster than through (user_id, created_at) and the table (measured
with bench/).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 06:30:00
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_score_history_submissions_recent ON score_history (user_id, created_at DESC)"
        " INCLUDE (action_type, score_change) WHERE reason = 'submission'"
    )


def downgrade() -> None:
    op.drop_index('ix_score_history_submissions_recent', table_name='score_history')
