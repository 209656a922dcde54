"""The admin API's legacy API keys (import, report, sunset, revoke) and signing keys (list, rotate).

Same operations as ``keyswap legacy`` and ``keyswap keys``. Signing keys and imports reach
every tenant, so they need ``keyswap:admin``; a tenant admin sees and changes only its own
tenant's legacy keys.
"""

from __future__ import annotations

import io
from datetime import UTC

from flask import Response, request

from keyswap.jwks import ALGORITHMS

from ..context import current_keyswap, request_session
from ..errors import InvalidRequest
from ..legacy.importing import import_legacy_keys, parse_csv
from ..legacy.keys import revoke_legacy_key, set_legacy_sunset
from ..legacy.report import legacy_report
from ..lifecycle import InvalidValue
from ..models import LegacyKey
from ..representations import key_view
from ..rotation import revoke_key, rotate_now
from ..storage import NotFound, list_signing_keys
from .api import bp, committed, now, principal, reply, require_global
from .bodies import KeyRotation, Reason, Sunset, read_body


def _visible_key(key_id: str) -> LegacyKey:
    key = request_session().get(LegacyKey, key_id)
    if key is None or not principal().sees(key.owner.tenant.name):
        raise NotFound(f"no legacy key {key_id!r}")
    return key


@bp.get("/legacy-keys")
def legacy_keys_report() -> Response:
    """Report every legacy key the caller sees: owner, status, last use, sunset, migrated."""
    report = legacy_report(request_session(), current_keyswap().clock())
    if not principal().is_global:
        keys = [k for k in report["keys"] if principal().sees(k["tenant"])]
        return reply({"keys": keys})
    return reply(report)


@bp.post("/legacy-keys/import")
def legacy_keys_import() -> Response:
    """Import a CSV of legacy keys (``text/csv``); nothing is stored if any row is bad."""
    require_global("importing legacy keys")
    if request.mimetype != "text/csv":
        raise InvalidRequest("the import takes a text/csv body, as `keyswap legacy import`")
    try:
        text = request.get_data().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidValue("the CSV is not UTF-8") from None
    dry_run = request.args.get("dry_run", "false") == "true"
    session = request_session()
    report = import_legacy_keys(
        session,
        current_keyswap().hasher,
        parse_csv(io.StringIO(text, newline="")),
        create_missing_owners=request.args.get("create_missing_owners", "false") == "true",
        dry_run=dry_run,
        now=now(),
        actor=principal().actor,
        source="admin-api",
    )
    if report.ok and not dry_run:
        return committed(report.as_dict())
    session.rollback()
    return reply(report.as_dict(), 200 if report.ok else 422)


@bp.post("/legacy-keys/<key_id>/revoke")
def legacy_keys_revoke(key_id: str) -> Response:
    """Refuse a legacy key from now on, with every token exchanged from it."""
    _visible_key(key_id)
    body = read_body(request, Reason)
    key = revoke_legacy_key(
        request_session(), key_id, now=now(), actor=principal().actor, reason=body.reason
    )
    return committed(
        {
            "key_id": key.id,
            "owner": key.owner.name,
            "revoked_at": key.revoked_at,
            "tokens_revoked_before": key.tokens_revoked_before,
        }
    )


@bp.post("/legacy-keys/<key_id>/sunset")
def legacy_keys_sunset(key_id: str) -> Response:
    """Set (or with null, clear) the date after which a legacy key is refused as retired."""
    _visible_key(key_id)
    body = read_body(request, Sunset)
    at = body.sunset_at
    if at is not None:
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    key = set_legacy_sunset(
        request_session(), key_id, at, actor=principal().actor, reason=body.reason
    )
    return committed({"key_id": key.id, "owner": key.owner.name, "sunset_at": key.sunset_at})


@bp.get("/signing-keys")
def signing_keys_list() -> Response:
    """List signing keys, newest first, with their states and dates."""
    require_global("listing signing keys")
    max_ttl = current_keyswap().settings.max_token_ttl
    return reply(
        {
            "keys": [
                key_view(row, max_ttl, current_keyswap().clock())
                for row in list_signing_keys(request_session())
            ]
        }
    )


@bp.post("/signing-keys/rotate")
def signing_keys_rotate() -> Response:
    """Publish a new signing key; it signs once the pre-publication window has passed."""
    require_global("rotating signing keys")
    body = read_body(request, KeyRotation)
    settings = current_keyswap().settings
    if body.alg is not None and body.alg not in ALGORITHMS:
        raise InvalidValue(f"alg: one of {', '.join(ALGORITHMS)}")
    keyswap = current_keyswap()
    row = rotate_now(
        request_session(),
        keyswap.sealer,
        alg=body.alg or settings.signing_alg,
        schedule=settings.rotation_schedule,
        immediate=body.now,
        actor=principal().actor,
        now=keyswap.clock(),
    )
    return committed(key_view(row, settings.max_token_ttl, keyswap.clock()), 201)


@bp.post("/signing-keys/<kid>/revoke")
def signing_keys_revoke(kid: str) -> Response:
    """Withdraw a compromised key from the JWK Set; its tokens turn inactive (the runbook)."""
    require_global("revoking signing keys")
    body = read_body(request, Reason)
    keyswap = current_keyswap()
    settings = keyswap.settings
    row = revoke_key(
        request_session(),
        kid,
        settings.rotation_schedule,
        actor=principal().actor,
        reason=body.reason,
        now=keyswap.clock(),
    )
    return committed(key_view(row, settings.max_token_ttl, keyswap.clock()))
