"""``keyswap tenants``: create, list, suspend and reactivate tenants."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import AppGroup

from ..lifecycle import add_tenant, set_tenant_status
from ..models import TenantStatus
from ..representations import tenant_view
from ..storage import list_tenants
from .context import actor, now, session
from .output import json_option

group = AppGroup("tenants", help="Manage tenants.")


@group.command("create")
@click.argument("name")
@json_option
def tenants_create(name: str) -> dict[str, Any]:
    """Create tenant NAME."""
    with session() as s:
        return tenant_view(add_tenant(s, name, actor=actor()))


@group.command("suspend")
@click.argument("name")
@click.option("--reason", help="Why, for the audit log.")
@json_option
def tenants_suspend(name: str, reason: str | None) -> dict[str, Any]:
    """Suspend tenant NAME: its users' credentials stop getting tokens."""
    with session() as s:
        return tenant_view(
            set_tenant_status(
                s, name, TenantStatus.SUSPENDED, now=now(), actor=actor(), reason=reason
            )
        )


@group.command("activate")
@click.argument("name")
@click.option("--reason", help="Why, for the audit log.")
@json_option
def tenants_activate(name: str, reason: str | None) -> dict[str, Any]:
    """Reactivate tenant NAME."""
    with session() as s:
        return tenant_view(
            set_tenant_status(s, name, TenantStatus.ACTIVE, now=now(), actor=actor(), reason=reason)
        )


@group.command("list")
@json_option
def tenants_list() -> list[dict[str, Any]]:
    """List every tenant with its status."""
    with session() as s:
        return [tenant_view(t) for t in list_tenants(s)]
