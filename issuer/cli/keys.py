"""``keyswap keys``: rotate, revoke and list the signing keys (the key-compromise runbook)."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import AppGroup

from keyswap.jwks import ALGORITHMS

from ..context import current_keyswap
from ..representations import key_view
from ..rotation import revoke_key, rotate_now
from ..storage import list_signing_keys
from .context import actor, session
from .output import json_option

group = AppGroup("keys", help="Manage token signing keys.")


@group.command("rotate")
@click.option(
    "--alg", type=click.Choice(ALGORITHMS), help="Algorithm of the new key [default: the setting]."
)
@click.option(
    "--now",
    "immediate",
    is_flag=True,
    help="Skip the pre-publication window: the key signs as soon as every server publishes it "
    "(twice KEYSWAP_KEY_REFRESH_INTERVAL, plus a second). A key already waiting is brought "
    "forward instead.",
)
@json_option
def keys_rotate(alg: str | None, immediate: bool) -> dict[str, Any]:
    """Publish a new signing key now; it signs once the pre-publication window has passed."""
    keyswap = current_keyswap()
    settings = keyswap.settings
    with session() as s:
        row = rotate_now(
            s,
            keyswap.sealer,
            alg=alg or settings.signing_alg,
            schedule=settings.rotation_schedule,
            immediate=immediate,
            actor=actor(),
            now=keyswap.clock(),
        )
        return key_view(row, settings.max_token_ttl, current_keyswap().clock())


# A kid is a base64url thumbprint and may start with "-": take it as the argument, not as
# an unknown option (the command has no short options to confuse it with).
@group.command("revoke", context_settings={"ignore_unknown_options": True})
@click.argument("kid")
@click.option("--reason", help="Why, for the audit log (e.g. 'private key leaked').")
@json_option
def keys_revoke(kid: str, reason: str | None) -> dict[str, Any]:
    """Withdraw a compromised key from the JWKS; its tokens stop verifying at introspection.

    The active key can be revoked only once another key waits to take over (run
    `keys rotate --now` first); that key is then brought forward.
    """
    keyswap = current_keyswap()
    settings = keyswap.settings
    with session() as s:
        row = revoke_key(
            s, kid, settings.rotation_schedule, actor=actor(), reason=reason, now=keyswap.clock()
        )
        return key_view(row, settings.max_token_ttl, current_keyswap().clock())


@group.command("list")
@json_option
def keys_list() -> list[dict[str, Any]]:
    """List signing keys, newest first, with their states and dates."""
    max_ttl = current_keyswap().settings.max_token_ttl
    with session() as s:
        return [key_view(row, max_ttl, current_keyswap().clock()) for row in list_signing_keys(s)]
