"""Receipts: answers are told apart by the receipt's signed nonce; ids are never reused, even after a purge.

The ``token_digest`` column becomes ``receipt_nonce`` (rows stored before keep their digests: still
unique). On SQLite the table is rebuilt with AUTOINCREMENT, so a purge that empties the table does
not make the next answer ``feedback-1`` again (PostgreSQL's sequence never goes back anyway).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""
from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Rename the unique column; on SQLite, rebuild the table with AUTOINCREMENT ids."""
    with op.batch_alter_table("feedback", recreate="auto",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("token_digest", new_column_name="receipt_nonce")
    if op.get_bind().dialect.name == "sqlite":
        # recreate="auto" renames in place on SQLite >= 3.25; AUTOINCREMENT needs the table made anew.
        with op.batch_alter_table("feedback", recreate="always",
                                  table_kwargs={"sqlite_autoincrement": True}):
            pass


def downgrade() -> None:
    """Give the column its old name (ids stay as they are)."""
    with op.batch_alter_table("feedback") as batch:
        batch.alter_column("receipt_nonce", new_column_name="token_digest")
