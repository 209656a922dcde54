"""``keyswap console link``: a one-time, short-lived login link to the operator console."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import AppGroup

from ..console.links import create_link
from ..context import current_keyswap
from .context import actor, session
from .output import json_option

group = AppGroup("console", help="The operator console at /console.")


@group.command("link")
@click.option("--tenant", default=None, help="Limit the session to this tenant (a tenant admin).")
@json_option
def console_link(tenant: str | None) -> dict[str, Any]:
    """Print a one-time login link to the console (valid a few minutes, used once)."""
    keyswap = current_keyswap()
    settings = keyswap.settings
    with session() as s:
        link = create_link(
            s,
            keyswap.hasher,
            issuer=settings.issuer,
            tenant=tenant,
            ttl=settings.console_link_ttl,
            actor=actor(),
            now=keyswap.clock(),
        )
    if not settings.console:
        click.echo(
            "warning: the console is off on this server: set KEYSWAP_CONSOLE=1 for "
            "`keyswap serve` (`keyswap demo` has it on)",
            err=True,
        )
    return {"url": link.url, "tenant": link.tenant, "expires_at": link.expires_at}
