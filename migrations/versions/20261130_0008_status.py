"""status_blocks: status list entries leased in blocks (draft-ietf-oauth-status-list)

Revision ID: 20261130_status
Revises: 20261130_fed
Create Date: 2026-11-30 08:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_status"
down_revision: str | None = "20261130_fed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "status_blocks",
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("leased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("bits", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_status_blocks")),
    )
    with op.batch_alter_table("status_blocks", schema=None) as batch_op:
        for column in ("client_id", "owner_id", "tenant", "kid", "expires_at"):
            batch_op.create_index(batch_op.f(f"ix_status_blocks_{column}"), [column], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("status_blocks", schema=None) as batch_op:
        for column in ("expires_at", "kid", "tenant", "owner_id", "client_id"):
            batch_op.drop_index(batch_op.f(f"ix_status_blocks_{column}"))
    op.drop_table("status_blocks")
