"""records: a partial index over the rows still waiting for a verdict

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 16:00:00

Every chunk claim and every "is anything left?" check of a verification looks for the
unverified valid rows of one batch. Without an index each such query scans the batch from its
first row, and the rows already verified pile up in front: quadratic over a batch. The partial
index holds only the rows still waiting (they leave it when they get a verdict), so it stays
small and the parse's inserts append to it in (batch_pk, seq) order.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_WHERE = sa.text("kind = 'valid' AND verdict IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_records_unverified",
        "records",
        ["batch_pk", "seq"],
        sqlite_where=_WHERE,
        postgresql_where=_WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_records_unverified", table_name="records")
