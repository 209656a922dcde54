"""clients.introspect_any_tenant: introspectors that may see every tenant's tokens

Revision ID: 20261130_auth
Revises: 0003
Create Date: 2026-11-30 07:15:45.648516
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_auth"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    # Existing introspectors become tenant-bound (issue 10 item 5): a platform-wide one is
    # re-created with --any-tenant.
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "introspect_any_tenant",
                sa.Boolean(),
                server_default=sa.text("false"),
                nullable=False,
            )
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("introspect_any_tenant")
