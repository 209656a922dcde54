"""``keyswap legacy``: import legacy API keys (for RFC 8693 exchange), report their use, revoke.

``import`` and ``report`` print a summary and a table (or one JSON document with
``--json``), so they render their output here rather than through ``json_option``: an
import with bad rows must print its whole report *and* exit 1.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup

from ..context import current_keyswap
from ..db import transaction
from ..legacy.importing import MIN_KEY_BITS, ImportReport, import_legacy_keys, parse_csv
from ..legacy.keys import revoke_legacy_key, set_legacy_sunset
from ..legacy.report import legacy_report
from .context import actor, now, session
from .output import json_option, render

group = AppGroup(
    "legacy", help="Import legacy API keys, report their use, set sunset dates, revoke them."
)

_JSON = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def _echo_sections(summary: dict[str, Any], table: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        return
    click.echo(render(summary, False))
    if table:
        click.echo()
        click.echo(render(table, False))


@group.command("import")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Report what would happen; change nothing.")
@click.option(
    "--create-missing-owners",
    is_flag=True,
    help="Create unknown owners as service accounts (in the row's tenant, else the default).",
)
@click.option(
    "--allow-weak-keys",
    is_flag=True,
    help=f"Import keys too short to hold {MIN_KEY_BITS} bits (they are still reported).",
)
@_JSON
def legacy_import(
    csv_file: str, dry_run: bool, create_missing_owners: bool, allow_weak_keys: bool, as_json: bool
) -> None:
    """Import the keys in FILE.csv, stored hashed; nothing changes if any row is bad.

    Columns (header row): api_key or api_key_sha256, owner, and optionally scopes,
    audiences, expires_at, sunset_at, tenant. Times are ISO 8601 (UTC if no offset).
    A clear key too short to be secret is a bad row unless --allow-weak-keys; a key
    given as api_key_sha256 cannot be judged.
    """
    path = Path(csv_file)
    with path.open(encoding="utf-8-sig", newline="") as stream:
        parsed = parse_csv(stream)
    keyswap = current_keyswap()
    with keyswap.sessions() as db_session:
        report = import_legacy_keys(
            db_session,
            keyswap.hasher,
            parsed,
            create_missing_owners=create_missing_owners,
            allow_weak_keys=allow_weak_keys,
            dry_run=dry_run,
            now=now(),
            actor=actor(),
            source=path.name,
        )
        if report.ok and not dry_run:
            db_session.commit()
        else:
            db_session.rollback()
    result = report.as_dict()
    if as_json:
        click.echo(render(result, True))
    else:
        rows = result.pop("rows")
        hidden = {"owner_created", "weak_key"}  # shown through the reason and counts
        shown = [{k: v for k, v in row.items() if k not in hidden or v} for row in rows]
        _echo_sections(result, shown, as_json)
        for note in _notes(report):
            click.echo(f"\n{note}")
    if not report.ok:
        errors = report.counts["error"]
        click.echo(f"Error: {errors} bad row(s); nothing was imported.", err=True)
        raise SystemExit(1)


def _notes(report: ImportReport) -> list[str]:
    notes = []
    if report.weak_lines:
        lines = ", ".join(map(str, report.weak_lines))
        notes.append(f"Weak keys (too short to be secret) on line(s) {lines}.")
    if report.unchecked_lines:
        notes.append(
            f"{len(report.unchecked_lines)} key(s) given as api_key_sha256: their strength "
            "cannot be judged from a digest."
        )
    if report.dry_run and report.ok:
        notes.append("Dry run: nothing was changed; key ids are assigned by the real import.")
    return notes


@group.command("report")
@_JSON
def legacy_report_command(as_json: bool) -> None:
    """List every legacy key: owner, tenant, status, last use, uses, sunset, migrated."""
    with transaction(current_keyswap().sessions) as db_session:
        result = legacy_report(db_session, now())
    if as_json:
        click.echo(render(result, True))
    else:
        _echo_sections(result["totals"], result["keys"], as_json)


@group.command("revoke")
@click.argument("key_id")
@click.option("--reason", help="Why, for the audit log.")
@json_option
def legacy_revoke(key_id: str, reason: str | None) -> dict[str, Any]:
    """Refuse KEY_ID from now on and make every token exchanged from it inactive."""
    with session() as s:
        key = revoke_legacy_key(s, key_id, now=now(), actor=actor(), reason=reason)
        return {
            "key_id": key.id,
            "owner": key.owner.name,
            "revoked_at": key.revoked_at,
            "tokens_revoked_before": key.tokens_revoked_before,
        }


def _sunset_time(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 date or time: {value!r}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@group.command("sunset")
@click.argument("key_id")
@click.argument("date", required=False)
@click.option("--clear", is_flag=True, help="Remove the key's sunset date.")
@click.option("--reason", help="Why, for the audit log.")
@json_option
def legacy_sunset(key_id: str, date: str | None, clear: bool, reason: str | None) -> dict[str, Any]:
    """Retire KEY_ID after DATE (ISO 8601, UTC if no offset), or --clear its sunset date.

    Until then its exchanges carry Deprecation and Sunset headers; after it the key is
    refused with "this API key was retired on DATE; use client credentials".
    """
    if clear == (date is not None):
        raise click.UsageError("give either DATE or --clear")
    at = None if clear else _sunset_time(str(date))
    with session() as s:
        key = set_legacy_sunset(s, key_id, at, actor=actor(), reason=reason)
        return {"key_id": key.id, "owner": key.owner.name, "sunset_at": key.sunset_at}
