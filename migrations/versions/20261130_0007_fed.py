"""federation_trusts: external issuers whose workload tokens map to service accounts (issue 15)

Revision ID: 20261130_fed
Revises: 20261130_admin
Create Date: 2026-11-30 07:40:46.809766
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_fed"
down_revision: str | None = "20261130_admin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "federation_trusts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("issuer", sa.String(length=2000), nullable=False),
        sa.Column("jwks_uri", sa.String(length=2000), nullable=True),
        sa.Column("service_account_id", sa.String(length=40), nullable=False),
        sa.Column("audience", sa.String(length=2000), nullable=True),
        sa.Column("subject", sa.String(length=2000), nullable=True),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.Column("token_ttl", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tokens_revoked_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_account_id"],
            ["users.id"],
            name=op.f("fk_federation_trusts_service_account_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_federation_trusts")),
    )
    with op.batch_alter_table("federation_trusts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_federation_trusts_issuer"), ["issuer"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_federation_trusts_service_account_id"),
            ["service_account_id"],
            unique=False,
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("federation_trusts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_federation_trusts_service_account_id"))
        batch_op.drop_index(batch_op.f("ix_federation_trusts_issuer"))

    op.drop_table("federation_trusts")
