"""``keyswap audit``: the lifecycle events, newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from flask.cli import with_appcontext

from ..representations import audit_event_view
from ..storage import list_audit_events
from .context import session
from .output import json_option


@click.command("audit")
@with_appcontext
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"]),
    help="Only events at or after this UTC time (2026-01-31 or 2026-01-31T12:00:00).",
)
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@json_option
def audit(since: datetime | None, limit: int) -> list[dict[str, Any]]:
    """Show who did what to whom, when, and why."""
    cutoff = since.replace(tzinfo=UTC) if since is not None else None
    with session() as s:
        return [audit_event_view(event) for event in list_audit_events(s, cutoff, limit)]
