"""admin and scim: SCIM credentials (keyed hashes) and SCIM profiles of users

Revision ID: 20261130_admin
Revises: 20261130_ledger
Create Date: 2026-11-30 07:26:07.227090
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_admin"
down_revision: str | None = "20261130_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "scim_credentials",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_scim_credentials_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scim_credentials")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_scim_credentials_secret_hash")),
    )
    with op.batch_alter_table("scim_credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scim_credentials_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "scim_profiles",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_scim_profiles_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_scim_profiles")),
    )
    with op.batch_alter_table("scim_profiles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scim_profiles_external_id"), ["external_id"], unique=False
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("scim_profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scim_profiles_external_id"))

    op.drop_table("scim_profiles")
    with op.batch_alter_table("scim_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scim_credentials_tenant_id"))

    op.drop_table("scim_credentials")
