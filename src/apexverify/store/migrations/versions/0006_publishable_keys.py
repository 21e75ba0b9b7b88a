"""api keys: publishable keys for browsers and the origins they may be used from

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00

``api_keys.kind`` is ``secret`` (every key so far: the server default fills it) or
``publishable`` (``POST /v1/unit`` only, from the origins the key lists; docs/browser.md).
``public_key`` is the clear value of a publishable key, which is written into web pages and
so shown again; it stays NULL for secret keys, which are stored as a hash only.

``api_key_origins`` lists a publishable key's allowed origins, one row each, indexed by
origin: a CORS preflight carries no key, so it asks whether any active publishable key
lists its origin.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="secret")
        )
        table.add_column(sa.Column("public_key", sa.String(length=64), nullable=True))
    op.create_table(
        "api_key_origins",
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key_id", "origin"),
    )
    with op.batch_alter_table("api_key_origins") as table:
        table.create_index("ix_api_key_origins_origin", ["origin"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_key_origins") as table:
        table.drop_index("ix_api_key_origins_origin")
    op.drop_table("api_key_origins")
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("public_key")
        table.drop_column("kind")
