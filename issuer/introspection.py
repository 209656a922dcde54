"""Token introspection (RFC 7662): is this token active **now**?

The answer starts inactive and becomes active only when every check passes: a published
key's signature, the caller's own tenant (unless it may introspect any tenant's), not
expired, not revoked by jti, no revocation cutoff of its client, owner or tenant after its
``iat``, its client enabled, and its owner and tenant active.
An inactive answer carries nothing but ``{"active": false}`` (RFC 7662 §2.2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .db import Reader
from .policy import Refusal, check_credential, check_issued_after, check_owner
from .revocation import is_revoked
from .storage import load_client_record

INACTIVE: dict[str, Any] = {"active": False}

# Claims echoed back for an active token (RFC 7662 §2.2 names most of them).
_ECHOED = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "tenant")

#: Looks up the live status of a credential that is not a registered client (legacy keys):
#: given a reader, the token's client_id and claims, raise a ``Refusal`` if it is not
#: live, return True if it is, None if the client_id is not its kind.
CredentialCheck = Callable[[Reader, str, Mapping[str, Any], datetime], bool | None]


def introspect(
    reader: Reader,
    claims: Mapping[str, Any] | None,
    now: datetime,
    *,
    tenant: str | None,
    other_credentials: tuple[CredentialCheck, ...] = (),
) -> dict[str, Any]:
    """Return the RFC 7662 answer for a token whose signature check gave ``claims``.

    ``tenant`` is the introspecting client's tenant: a token of any other tenant is
    inactive to it (RFC 7662 §4: the server may answer inactive to a caller not entitled
    to the token). None means a platform-wide introspector (``--any-tenant``).
    """
    if claims is None or (tenant is not None and claims.get("tenant") != tenant):
        return dict(INACTIVE)
    try:
        if is_revoked(reader, str(claims["jti"])):
            return dict(INACTIVE)
        if not _credential_is_live(reader, claims, now, other_credentials):
            return dict(INACTIVE)
    except Refusal:
        return dict(INACTIVE)
    answer: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    answer.update({name: claims[name] for name in _ECHOED if name in claims})
    return answer


def _credential_is_live(
    reader: Reader,
    claims: Mapping[str, Any],
    now: datetime,
    other_credentials: tuple[CredentialCheck, ...],
) -> bool:
    client_id = str(claims["client_id"])
    for check in other_credentials:
        verdict = check(reader, client_id, claims, now)
        if verdict is not None:
            return verdict
    record = load_client_record(reader, client_id)
    if record is None or record.owner.user_id != claims["sub"]:
        return False
    check_credential(
        now=now,
        expires_at=None,
        revoked_at=None,
        client_enabled=record.enabled,
        client_disabled_at=record.disabled_at,
    )
    check_owner(record.owner)
    check_issued_after(
        int(claims["iat"]), record.tokens_revoked_before, record.owner.tokens_revoked_before
    )
    return True
