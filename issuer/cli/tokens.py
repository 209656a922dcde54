"""``keyswap tokens``: revoke one token, or every token of a client or user."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import AppGroup

from ..context import current_keyswap
from ..lifecycle import InvalidValue, revoke_client_tokens, revoke_token_id, revoke_user_tokens
from .context import actor, now, session
from .output import json_option

group = AppGroup("tokens", help="Revoke access tokens.")


@group.command("revoke")
@click.option("--jti", help="Revoke the one token with this jti.")
@click.option("--client", "client_id", help="Revoke every token issued so far to this client.")
@click.option("--user", help="Revoke every token issued so far to this user's credentials.")
@click.option("--reason", help="Why, for the audit log.")
@json_option
def tokens_revoke(
    jti: str | None, client_id: str | None, user: str | None, reason: str | None
) -> dict[str, Any]:
    """Revoke tokens: they are inactive at introspection from now on."""
    chosen = [
        name for name, value in (("jti", jti), ("client", client_id), ("user", user)) if value
    ]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --jti, --client, --user")
    who, at = actor(), now()
    with session() as s:
        if jti:
            max_ttl = current_keyswap().settings.max_token_ttl
            added = revoke_token_id(s, jti, max_token_ttl=max_ttl, now=at, actor=who, reason=reason)
            return {"revoked": "token", "jti": jti, "already_revoked": not added}
        if client_id:
            client = revoke_client_tokens(s, client_id, now=at, actor=who, reason=reason)
            return {
                "revoked": "client",
                "client_id": client.id,
                "before": client.tokens_revoked_before,
            }
        if user:
            owner = revoke_user_tokens(s, user, now=at, actor=who, reason=reason)
            return {"revoked": "user", "user": owner.name, "before": owner.tokens_revoked_before}
    raise InvalidValue("nothing to revoke")  # pragma: no cover - the usage check above
