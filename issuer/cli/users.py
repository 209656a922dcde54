"""``keyswap users``: create and list users and service accounts, and change their status."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import AppGroup

from ..lifecycle import DEFAULT_TENANT, add_user, set_user_status
from ..models import UserKind, UserStatus
from ..representations import user_view
from ..storage import list_users
from .context import actor, now, session
from .output import json_option

group = AppGroup("users", help="Manage users and service accounts.")


@group.command("create")
@click.argument("name")
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True, help="Created if missing.")
@click.option("--service-account", is_flag=True, help="A non-human owner of credentials.")
@json_option
def users_create(name: str, tenant: str, service_account: bool) -> dict[str, Any]:
    """Create user NAME; its id is the `sub` of its credentials' tokens."""
    kind = UserKind.SERVICE_ACCOUNT if service_account else UserKind.USER
    with session() as s:
        return user_view(add_user(s, name, tenant=tenant, kind=kind, actor=actor()))


@group.command("list")
@click.option("--tenant", help="Only this tenant's users.")
@json_option
def users_list(tenant: str | None) -> list[dict[str, Any]]:
    """List every user and service account (deleted ones too, as tombstones)."""
    with session() as s:
        return [user_view(u) for u in list_users(s, tenant)]


def _status_command(verb: str, status: UserStatus, help_text: str) -> None:
    @group.command(verb, help=help_text)
    @click.argument("name")
    @click.option("--reason", help="Why, for the audit log.")
    @json_option
    def command(name: str, reason: str | None) -> dict[str, Any]:
        with session() as s:
            return user_view(
                set_user_status(s, name, status, now=now(), actor=actor(), reason=reason)
            )


_status_command("suspend", UserStatus.SUSPENDED, "Suspend user NAME: no new tokens.")
_status_command("deactivate", UserStatus.DEACTIVATED, "Deactivate user NAME: no new tokens.")
_status_command("activate", UserStatus.ACTIVE, "Reactivate user NAME.")
_status_command(
    "delete", UserStatus.DELETED, "Delete user NAME, keeping a tombstone so refusals say why."
)
