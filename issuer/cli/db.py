"""``keyswap db``: schema migrations."""

from __future__ import annotations

from flask.cli import AppGroup

from ..context import current_keyswap
from ..db import upgrade_schema
from .output import json_option

group = AppGroup("db", help="Manage the database schema.")


@group.command("upgrade")
@json_option
def db_upgrade() -> dict[str, str]:
    """Apply every pending schema migration."""
    keyswap = current_keyswap()
    upgrade_schema(keyswap.engine)
    return {"status": "upgraded", "database": keyswap.engine.url.render_as_string()}
