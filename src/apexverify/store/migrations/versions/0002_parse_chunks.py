"""parse chunks: byte ranges of a large upload parsed by separate jobs (scale-out)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parse_chunks",
        sa.Column("batch_pk", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("start_byte", sa.BigInteger(), nullable=False),
        sa.Column("end_byte", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(["batch_pk"], ["batches.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("batch_pk", "generation", "first_seq"),
    )


def downgrade() -> None:
    op.drop_table("parse_chunks")
