"""SCIM credentials: fixed bearer tokens for identity providers that cannot fetch an OAuth token.

A credential belongs to one tenant and is accepted only at ``/scim/v2``. It is shown once,
stored as a keyed hash (``keyswap.issuer.hashing``) and found by that hash in one indexed query;
it can expire, and is rotated (the old value stops at once) or revoked, each audited.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import events
from ..hashing import SecretHasher, new_secret
from ..lifecycle import InvalidValue
from ..models import ScimCredential
from ..policy import Refusal, check_credential
from ..storage import NotFound, get_tenant

#: Marks the token as a SCIM credential in logs and secret scanners; not a security feature.
TOKEN_PREFIX = "ksscim_"


@dataclass(frozen=True)
class NewScimCredential:
    """A credential and its token, which is shown once and never stored in clear."""

    credential: ScimCredential
    token: str


def _new_token() -> str:
    return TOKEN_PREFIX + new_secret()


def _expiry(ttl: int | None, now: datetime) -> datetime | None:
    if ttl is None:
        return None
    if ttl < 1:
        raise InvalidValue("a SCIM credential's lifetime must be at least 1 second")
    return now + timedelta(seconds=ttl)


def create_scim_credential(
    session: Session,
    hasher: SecretHasher,
    *,
    tenant: str,
    ttl: int | None = None,
    now: datetime,
    actor: str,
) -> NewScimCredential:
    """Create a SCIM credential for ``tenant`` (which must exist); a ``ttl`` counts from ``now``."""
    owner = get_tenant(session, tenant)
    token = _new_token()
    credential = ScimCredential(
        id=f"scim_{secrets.token_hex(8)}",
        tenant=owner,
        secret_hash=hasher.hash(token),
        expires_at=_expiry(ttl, now),
    )
    session.add(credential)
    session.flush()
    events.record(
        session,
        events.SCIM_CREDENTIAL_CREATED,
        f"scim_credential:{credential.id}",
        actor=actor,
        tenant=tenant,
        expires_at=credential.expires_at.isoformat() if credential.expires_at else None,
    )
    return NewScimCredential(credential, token)


def _get(session: Session, credential_id: str) -> ScimCredential:
    credential = session.get(ScimCredential, credential_id)
    if credential is None:
        raise NotFound(f"no SCIM credential {credential_id!r}")
    return credential


def rotate_scim_credential(
    session: Session,
    hasher: SecretHasher,
    credential_id: str,
    *,
    ttl: int | None = None,
    now: datetime,
    actor: str,
) -> NewScimCredential:
    """Give a credential a new token at ``now``; the old one stops at once."""
    credential = _get(session, credential_id)
    if credential.revoked_at is not None:
        raise InvalidValue(f"SCIM credential {credential_id!r} is revoked; create a new one")
    token = _new_token()
    credential.secret_hash = hasher.hash(token)
    credential.rotated_at = now
    credential.expires_at = _expiry(ttl, now)
    events.record(
        session, events.SCIM_CREDENTIAL_ROTATED, f"scim_credential:{credential_id}", actor=actor
    )
    return NewScimCredential(credential, token)


def revoke_scim_credential(
    session: Session, credential_id: str, *, now: datetime, actor: str, reason: str | None = None
) -> ScimCredential:
    """Refuse a credential from ``now`` on."""
    credential = _get(session, credential_id)
    if credential.revoked_at is None:
        credential.revoked_at = now
        events.record(
            session,
            events.SCIM_CREDENTIAL_REVOKED,
            f"scim_credential:{credential_id}",
            actor=actor,
            reason=reason,
        )
    return credential


def find_scim_credential(
    session: Session, hasher: SecretHasher, token: str, now: datetime
) -> ScimCredential | None:
    """Return the live credential ``token`` proves, or None (unknown, expired or revoked)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    credential = session.scalar(
        select(ScimCredential).where(ScimCredential.secret_hash == hasher.hash(token))
    )
    if credential is None:
        return None
    try:
        check_credential(
            now=now, expires_at=credential.expires_at, revoked_at=credential.revoked_at
        )
    except Refusal:
        return None
    return credential


def credential_view(credential: ScimCredential) -> dict[str, object]:
    """Return what is shown about a credential (never its token)."""
    return {
        "id": credential.id,
        "tenant": credential.tenant.name,
        "created_at": credential.created_at,
        "rotated_at": credential.rotated_at,
        "expires_at": credential.expires_at,
        "revoked_at": credential.revoked_at,
    }
