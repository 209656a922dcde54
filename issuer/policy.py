"""Live status policy: may this credential, client, owner and tenant get a token now?

One module decides for every grant and for introspection. It knows no HTTP and no wire
codes: it raises *facts* (``Refusal`` subclasses carrying their data), and each caller
maps them to its wire error, because the same fact is ``invalid_client`` in the client
credentials grant and ``invalid_request`` in token exchange (RFC 8693 §2.2.2).

The order is fixed (STYLE.md): the caller first proves possession of a credential; then
``check_credential`` (the credential's own state), then ``check_owner`` (owner and tenant).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .models import TenantStatus, UserStatus

# Read by storage, decided here: policy depends on what storage reads, never the reverse.
from .storage import OwnerStatus as OwnerStatus  # re-exported


class Refusal(Exception):
    """A fact that forbids issuance; subclasses carry what a precise message needs."""

    reason = "refused"


@dataclass(frozen=True)
class CredentialExpired(Refusal):
    """The proved credential expired at ``at``."""

    at: datetime
    reason = "credential_expired"


@dataclass(frozen=True)
class CredentialRevoked(Refusal):
    """The proved credential was revoked at ``at``."""

    at: datetime
    reason = "credential_revoked"


@dataclass(frozen=True)
class ClientDisabled(Refusal):
    """The client the credential belongs to was disabled at ``at``."""

    at: datetime
    reason = "client_disabled"


@dataclass(frozen=True)
class OwnerNotActive(Refusal):
    """The credential's owner is suspended, deactivated or deleted."""

    status: UserStatus

    @property
    def reason(self) -> str:  # type: ignore[override]
        """Label metrics by the owner's state, e.g. ``owner_deactivated``."""
        return f"owner_{self.status.value}"


@dataclass(frozen=True)
class TenantSuspended(Refusal):
    """The owner's tenant is suspended."""

    tenant: str
    reason = "tenant_suspended"


@dataclass(frozen=True)
class TokenRevoked(Refusal):
    """The token was issued at or before a revocation cutoff of its owner, client or tenant."""

    cutoff: datetime
    reason = "token_revoked"


def check_credential(
    *,
    now: datetime,
    expires_at: datetime | None,
    revoked_at: datetime | None,
    client_disabled_at: datetime | None = None,
    client_enabled: bool = True,
) -> None:
    """Raise the fact that makes a proved credential unusable at ``now``, if any.

    Revocation wins over expiry: it is the more deliberate act and the more useful news.
    """
    if revoked_at is not None and revoked_at <= now:
        raise CredentialRevoked(revoked_at)
    if expires_at is not None and expires_at <= now:
        raise CredentialExpired(expires_at)
    if not client_enabled:
        raise ClientDisabled(client_disabled_at or now)


def check_owner(owner: OwnerStatus) -> None:
    """Raise the fact that makes the owner or its tenant unable to hold tokens, if any."""
    if owner.user_status is not UserStatus.ACTIVE:
        raise OwnerNotActive(owner.user_status)
    if owner.tenant_status is not TenantStatus.ACTIVE:
        raise TenantSuspended(owner.tenant)


def check_issued_after(iat: int, *cutoffs: datetime | None) -> None:
    """Raise TokenRevoked if a token issued at ``iat`` predates any revocation cutoff.

    ``iat`` has whole seconds, so a token issued in the cutoff's own second counts as
    before it: the comparison errs towards inactive, never towards a revived token.
    """
    for cutoff in cutoffs:
        if cutoff is not None and iat <= int(cutoff.timestamp()):
            raise TokenRevoked(cutoff)
