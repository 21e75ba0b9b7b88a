"""batches: why a running batch cannot move forward, since when, and when it was cancelled

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 19:30:00

A verification pass that decides nothing (every row asked to be retried later) marks the batch
stalled with the engine's reason; the next pass that decides something clears it. The status
endpoints show both, and the sweep ends the rest ``unknown`` once a stall outlives its
deadline. ``cancelled_at`` is set by the cancel extension endpoint.
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
        table.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches") as table:
        table.drop_column("cancelled_at")
        table.drop_column("stalled_since")
        table.drop_column("stall_reason")
