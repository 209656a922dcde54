"""``keyswap scim credentials``: fixed bearer tokens for identity providers, per tenant."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import AppGroup

from ..context import current_keyswap
from ..scim.credentials import (
    create_scim_credential,
    credential_view,
    revoke_scim_credential,
    rotate_scim_credential,
)
from .context import actor, now, session
from .output import json_option

group = AppGroup("scim", help="SCIM provisioning from an identity provider.")
credentials = AppGroup("credentials", help="Bearer tokens identity providers send to /scim/v2.")
group.add_command(credentials)

_TTL = click.option("--ttl", type=click.IntRange(min=1), help="Lifetime in seconds (none: never).")


@credentials.command("create")
@click.option("--tenant", required=True, help="The tenant whose users it provisions.")
@_TTL
@json_option
def scim_credentials_create(tenant: str, ttl: int | None) -> dict[str, Any]:
    """Create a SCIM credential for TENANT; its token is printed once and never again."""
    with session() as s:
        created = create_scim_credential(
            s, current_keyswap().hasher, tenant=tenant, ttl=ttl, now=now(), actor=actor()
        )
        return {**credential_view(created.credential), "token": created.token}


@credentials.command("rotate")
@click.argument("credential_id")
@_TTL
@json_option
def scim_credentials_rotate(credential_id: str, ttl: int | None) -> dict[str, Any]:
    """Give CREDENTIAL_ID a new token (printed once); the old one stops at once."""
    with session() as s:
        rotated = rotate_scim_credential(
            s, current_keyswap().hasher, credential_id, ttl=ttl, now=now(), actor=actor()
        )
        return {**credential_view(rotated.credential), "token": rotated.token}


@credentials.command("revoke")
@click.argument("credential_id")
@click.option("--reason", help="Why, for the audit log.")
@json_option
def scim_credentials_revoke(credential_id: str, reason: str | None) -> dict[str, Any]:
    """Refuse CREDENTIAL_ID from now on."""
    with session() as s:
        return credential_view(
            revoke_scim_credential(s, credential_id, now=now(), actor=actor(), reason=reason)
        )
