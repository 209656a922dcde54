"""``keyswap admin``: bootstrap the first admin client of the admin API."""

from __future__ import annotations

from typing import Any

from flask.cli import AppGroup

from ..context import current_keyswap
from ..lifecycle import bootstrap_admin
from ..representations import client_view
from .context import actor, now, session
from .output import json_option

group = AppGroup("admin", help="Set up access to the admin API.")


@group.command("bootstrap")
@json_option
def admin_bootstrap() -> dict[str, Any]:
    """Create the first client with scope keyswap:admin; its secret is printed once."""
    keyswap = current_keyswap()
    with session() as s:
        created = bootstrap_admin(
            s,
            keyswap.hasher,
            max_token_ttl=keyswap.settings.max_token_ttl,
            now=now(),
            actor=actor(),
        )
        view = client_view(created.client, now())
        return {"client_id": view.pop("client_id"), "client_secret": created.secret, **view}
