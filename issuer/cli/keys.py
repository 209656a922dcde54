"""``keyswap keys``: rotate the signing key and list keys with their states and dates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click
from flask.cli import AppGroup

from jwks import ALGORITHMS

from ..app import current_keyswap
from ..representations import key_view
from ..rotation import rotate_now
from ..storage import list_signing_keys
from .context import actor, session
from .output import json_option

group = AppGroup("keys", help="Manage token signing keys.")


@group.command("rotate")
@click.option(
    "--alg", type=click.Choice(ALGORITHMS), help="Algorithm of the new key [default: the setting]."
)
@json_option
def keys_rotate(alg: str | None) -> dict[str, Any]:
    """Publish a new signing key now; it signs once the pre-publication window has passed."""
    keyswap = current_keyswap()
    settings = keyswap.settings
    with session() as s:
        row = rotate_now(
            s,
            keyswap.sealer,
            alg=alg or settings.signing_alg,
            prepublish=timedelta(seconds=settings.key_prepublish),
            actor=actor(),
        )
        return key_view(row, settings.max_token_ttl)


@group.command("list")
@json_option
def keys_list() -> list[dict[str, Any]]:
    """List signing keys, newest first, with their states and dates."""
    max_ttl = current_keyswap().settings.max_token_ttl
    with session() as s:
        return [key_view(row, max_ttl) for row in list_signing_keys(s)]
