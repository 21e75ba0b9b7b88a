"""batches: why a running batch cannot move forward, since when, and when it was cancelled

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 19:30:00

When a batch has rows left but none due (every one waits for a retry the engine asked for),
it is stalled: the reason the engine gave, since when, and when it tries again. The next chunk
that decides something clears the three. The status endpoints show them, and a stall that
outlives its deadline ends the rest ``unknown``. ``cancelled_at`` is set by the cancel
extension endpoint.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as table:
        table.add_column(sa.Column("stall_reason", sa.Text(), nullable=True))
        table.add_column(sa.Column("stalled_since", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("next_attempt_at", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches") as table:
        table.drop_column("cancelled_at")
        table.drop_column("next_attempt_at")
        table.drop_column("stalled_since")
        table.drop_column("stall_reason")
