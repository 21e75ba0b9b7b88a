"""webhooks: endpoints an account registers and the deliveries of batch events to them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00

``webhook_endpoints`` holds an account's receivers. ``secret`` is the signing secret sealed
with the server's secret key (see webhooks/signing.py): the signature needs the secret itself,
so it cannot be hashed like an API key, but a database dump alone does not reveal it.
``events`` is the filter (a JSON list of event types; empty = every event).

``webhook_deliveries`` is one event for one endpoint: ``id`` is the ``webhook-id`` header, the
same on every retry, so a receiver can drop a repeat. It is written in the transaction of the
state change that causes the event; the delivery job is deferred in that transaction too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhook_endpoints") as table:
        table.create_index("ix_webhook_endpoints_account", ["account_id"], unique=False)

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("endpoint_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("batch_uuid", sa.String(length=36), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhook_deliveries") as table:
        table.create_index(
            "ix_webhook_deliveries_endpoint_created", ["endpoint_id", "created_at"], unique=False
        )
        table.create_index("ix_webhook_deliveries_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as table:
        table.drop_index("ix_webhook_deliveries_status")
        table.drop_index("ix_webhook_deliveries_endpoint_created")
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("webhook_endpoints") as table:
        table.drop_index("ix_webhook_endpoints_account")
    op.drop_table("webhook_endpoints")
