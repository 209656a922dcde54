"""Token endpoint grants: client credentials (RFC 6749 §4.4) and token exchange (RFC 8693)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import OWNER_INACTIVE, TENANT_SUSPENDED, InvalidGrant, InvalidRequest
from ..policy import OwnerNotActive, OwnerStatus, Refusal, TenantSuspended
from ..tokens import IssuedToken, clamp_ttl, mint_access_token

if TYPE_CHECKING:
    from ..server import KeyswapServer

# RFC 8707 §2 allows several "resource" parameters; every other one appears at most once.
REPEATABLE = frozenset({"resource"})


def reject_repeated(
    datalist: Mapping[str, Sequence[str]], repeatable: frozenset[str] = REPEATABLE
) -> None:
    """Refuse a request that repeats a parameter (RFC 6749 §3.2: MUST NOT ... more than once)."""
    for name, values in datalist.items():
        if len(values) > 1 and name not in repeatable:
            raise InvalidRequest(f"parameter {name} is repeated")


def refuse_owner(fact: Refusal, cls: type[InvalidGrant] | type[InvalidRequest]) -> Exception:
    """Map an owner or tenant fact to ``cls`` with the contract's description (every grant)."""
    if isinstance(fact, OwnerNotActive):
        return cls(OWNER_INACTIVE.format(status=fact.status.value), reason=fact.reason)
    if isinstance(fact, TenantSuspended):
        return cls(TENANT_SUSPENDED.format(tenant=fact.tenant), reason=fact.reason)
    raise TypeError(f"not an owner fact: {fact!r}")  # pragma: no cover


def sign_for_owner(
    server: KeyswapServer,
    *,
    owner: OwnerStatus,
    client_id: str,
    audience: str,
    scopes: Sequence[str],
    token_ttl: int | None,
    credential_cutoff: datetime | None = None,
    extra: Mapping[str, Any] | None = None,
) -> IssuedToken:
    """Sign an access token for ``owner`` with the server's cached signer, at the server's time.

    The token gets a status list entry from this process's leased block for the
    credential and key; ``credential_cutoff`` is the credential's revocation cutoff, as
    read with it (a changed cutoff means the block may have been revoked whole).
    """
    settings = server.settings
    now = server.clock()
    signer = server.keyring.signer()
    entry = server.status_leases.entry(
        client_id=client_id,
        owner_id=owner.user_id,
        tenant=owner.tenant,
        kid=signer.kid,
        cutoffs=(credential_cutoff, owner.tokens_revoked_before),
        now=now,
    )
    return mint_access_token(
        signer=signer,
        issuer=settings.issuer,
        subject=owner.user_id,
        audience=audience,
        client_id=client_id,
        scopes=scopes,
        tenant=owner.tenant,
        now=int(now.timestamp()),
        ttl=clamp_ttl(token_ttl, settings.default_token_ttl, settings.max_token_ttl),
        extra=extra,
        status=entry,
    )
