"""Feedback: the answers visitors give, the quota's usage row, shared secrets, rate-limit counters.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the four tables and the usage row."""
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=False, unique=True),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("predicted", sa.String(200), nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("other", sa.String(100), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("image", sa.LargeBinary, nullable=False),
        sa.Column("image_bytes", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
    )
    op.create_index("feedback_created_at", "feedback", ["created_at"])
    usage = op.create_table(
        "feedback_usage",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entries", sa.BigInteger, nullable=False),
        sa.Column("total_bytes", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(usage, [{"id": 1, "entries": 0, "total_bytes": 0}])
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop them."""
    for table in ("rate_limits", "secrets", "feedback_usage", "feedback"):
        op.drop_table(table)
