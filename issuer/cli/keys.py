"""``keyswap keys``: rotate the signing key and list keys with their states and dates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click
from flask.cli import AppGroup

from keyswap.jwks import ALGORITHMS

from ..app import current_keyswap
from ..db import utcnow
from ..keyring import is_published
from ..models import SigningKey
from ..rotation import rotate_now
from ..storage import list_signing_keys
from .context import actor, session
from .output import json_option

group = AppGroup("keys", help="Manage token signing keys.")


def key_view(row: SigningKey, max_token_ttl: int) -> dict[str, Any]:
    """Return what commands print about a key (never private material)."""
    now = utcnow()
    published_until = (
        row.retired_at + timedelta(seconds=max_token_ttl) if row.retired_at is not None else None
    )
    return {
        "kid": row.kid,
        "alg": row.alg,
        "state": row.state,
        "published": is_published(row, now, max_token_ttl),
        "created_at": row.created_at,
        "activates_at": row.activates_at,
        "activated_at": row.activated_at,
        "retired_at": row.retired_at,
        "published_until": published_until,
    }


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
