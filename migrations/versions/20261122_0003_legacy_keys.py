"""legacy keys: imported static API keys, stored hashed, for RFC 8693 exchange

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 16:02:53.076672
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "legacy_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("audiences", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sunset_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tokens_revoked_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("use_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_legacy_keys_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legacy_keys")),
    )
    # The exchange looks a key up by its keyed hash: one unique index probe per request,
    # whatever the number of keys.
    op.create_index(op.f("ix_legacy_keys_key_hash"), "legacy_keys", ["key_hash"], unique=True)
    op.create_index(op.f("ix_legacy_keys_owner_id"), "legacy_keys", ["owner_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_legacy_keys_owner_id"), table_name="legacy_keys")
    op.drop_index(op.f("ix_legacy_keys_key_hash"), table_name="legacy_keys")
    op.drop_table("legacy_keys")
