"""legacy key refusals: per key and reason, how often and when last, written coalesced

Revision ID: 20261130_ledger
Revises: 20261130_auth
Create Date: 2026-11-30 07:15:45.068091
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_ledger"
down_revision: str | None = "20261130_auth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "legacy_key_refusals",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_refused_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["legacy_keys.id"],
            name=op.f("fk_legacy_key_refusals_key_id_legacy_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", "reason", name=op.f("pk_legacy_key_refusals")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("legacy_key_refusals")
