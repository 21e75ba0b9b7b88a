"""batches: the original of a table upload (CSV, XLSX, ODS), kept for merging results back

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 12:00:00

A batch uploaded with the ``column`` extension field keeps the uploaded original
(``source_path``, a storage locator like ``file_path``) beside the derived one-value-per-line
file that the parse reads (``file_path``, unchanged). ``source_format`` is NULL for a plain
upload, else ``csv``, ``xlsx`` or ``ods``; ``source_options`` records how the original was
read (delimiter, BOM, header row, header names, chosen column, sheet, data rows), so its rows
can be read back in the same order (``batches/sources``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as table:
        table.add_column(sa.Column("source_format", sa.String(length=8), nullable=True))
        table.add_column(sa.Column("source_path", sa.String(length=1024), nullable=True))
        table.add_column(sa.Column("source_options", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches") as table:
        table.drop_column("source_options")
        table.drop_column("source_path")
        table.drop_column("source_format")
