"""Legacy API keys: keyed hashes, the one-query lookup, live status, revocation (RFC 8693 subject).

A key is found by ``hash_api_key``: the HMAC (server pepper, see ``hashing``) of its hex
SHA-256. Legacy systems often store exactly that SHA-256, so an import can take either
the clear key or its digest and both land on the same indexed value. Equality on a keyed
hash is safe to do in the database: timing tells an attacker nothing about a value they
cannot compute without the pepper.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from .. import events
from ..db import PreparedRead, Reader
from ..hashing import SecretHasher
from ..models import LegacyKey, Tenant, User
from ..policy import OwnerStatus, Refusal, check_credential, check_issued_after, check_owner
from ..status_lists import revoke_blocks
from ..storage import NotFound

#: Tokens exchanged from a legacy key carry ``client_id = legacy:<key id>``.
CLIENT_ID_PREFIX = "legacy:"
#: The private claim marking a token as exchanged from a legacy key; its value is the key id.
LEGACY_CLAIM = "ks_legacy_key"
LEGACY_KEY_IMPORTED = "legacy_key.imported"
LEGACY_KEY_REVOKED = "legacy_key.revoked"
LEGACY_KEY_SUNSET = "legacy_key.sunset_set"

_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


def new_key_id() -> str:
    """Return a fresh public key id (it names the key; it is not a secret)."""
    return f"lk_{secrets.token_hex(8)}"


def sha256_hex(api_key: str) -> str:
    """Return the lowercase hex SHA-256 of a clear key."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def is_sha256_hex(value: str) -> bool:
    """Tell whether ``value`` is a hex SHA-256 digest (64 hex characters)."""
    return bool(_SHA256_HEX.match(value))


def hash_digest(hasher: SecretHasher, digest: str) -> str:
    """Return the stored lookup value for a key's hex SHA-256."""
    return hasher.hash(digest.lower())


def hash_api_key(hasher: SecretHasher, api_key: str) -> str:
    """Return the stored lookup value for a clear key."""
    return hash_digest(hasher, sha256_hex(api_key))


@dataclass(frozen=True, slots=True)
class LegacyRecord:
    """A legacy key with its owner's and tenant's live status, read in one query."""

    key_id: str
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    expires_at: datetime | None
    sunset_at: datetime | None
    revoked_at: datetime | None
    tokens_revoked_before: datetime | None
    #: When the key was imported: the date its use became deprecated.
    deprecated_at: datetime
    owner: OwnerStatus

    @property
    def client_id(self) -> str:
        """Return the ``client_id`` of tokens exchanged from this key."""
        return CLIENT_ID_PREFIX + self.key_id


@dataclass(frozen=True)
class KeyRetired(Refusal):
    """The key is past its sunset date."""

    at: datetime
    reason = "api_key_retired"


_RECORD_QUERY = (
    select(
        LegacyKey.id,
        LegacyKey.scopes,
        LegacyKey.audiences,
        LegacyKey.expires_at,
        LegacyKey.sunset_at,
        LegacyKey.revoked_at,
        LegacyKey.tokens_revoked_before.label("key_cutoff"),
        LegacyKey.created_at,
        User.id.label("user_id"),
        User.status.label("user_status"),
        User.tokens_revoked_before.label("user_cutoff"),
        Tenant.name.label("tenant"),
        Tenant.status.label("tenant_status"),
        Tenant.tokens_revoked_before.label("tenant_cutoff"),
    )
    .join(User, User.id == LegacyKey.owner_id)
    .join(Tenant, Tenant.id == User.tenant_id)
)
# The exchange's lookup, built once and run as a prepared read (see ``db.PreparedRead``).
_BY_HASH = _RECORD_QUERY.where(LegacyKey.key_hash == bindparam("key_hash"))
_BY_HASH_READ = PreparedRead(_BY_HASH)
_BY_ID = _RECORD_QUERY.where(LegacyKey.id == bindparam("key_id"))
_BY_ID_READ = PreparedRead(_BY_ID)


def _record(row: Any) -> LegacyRecord:
    (
        key_id, scopes, audiences, expires_at, sunset_at, revoked_at, key_cutoff, created_at,
        user_id, user_status, user_cutoff, tenant, tenant_status, tenant_cutoff,
    ) = row  # fmt: skip
    return LegacyRecord(
        key_id=key_id,
        scopes=tuple(scopes.split()),
        audiences=tuple(audiences or ()),
        expires_at=expires_at,
        sunset_at=sunset_at,
        revoked_at=revoked_at,
        tokens_revoked_before=key_cutoff,
        deprecated_at=created_at,
        owner=OwnerStatus.of(
            user_id, user_status, user_cutoff, tenant, tenant_status, tenant_cutoff
        ),
    )


def load_legacy_key(reader: Reader, key_hash: str) -> LegacyRecord | None:
    """Find a key by its keyed hash, with owner and tenant, in one indexed query."""
    rows = reader.rows(_BY_HASH_READ, key_hash=key_hash)
    return _record(rows[0]) if rows else None


def load_legacy_status(reader: Reader, key_id: str) -> LegacyRecord | None:
    """Read a key's live status (and its owner's and tenant's) by its public id, or None."""
    rows = reader.rows(_BY_ID_READ, key_id=key_id)
    return _record(rows[0]) if rows else None


def check_legacy_key(record: LegacyRecord, now: datetime) -> None:
    """Raise the fact that makes a proved key unusable at ``now``: revoked, expired, retired."""
    check_credential(now=now, expires_at=record.expires_at, revoked_at=record.revoked_at)
    if record.sunset_at is not None and record.sunset_at <= now:
        raise KeyRetired(record.sunset_at)


def check_legacy_token(
    reader: Reader, client_id: str, claims: Mapping[str, Any], now: datetime
) -> bool | None:
    """Tell introspection whether a token exchanged from a legacy key is still live.

    None when ``client_id`` is not a legacy key's; False when the key is gone or belongs to
    someone else; raises a ``Refusal`` when the key is revoked (or the token predates its
    revocation) or the owner or tenant is not active. Like a client secret's expiry, a key's
    expiry or sunset stops new exchanges but leaves already-issued short tokens alone.
    """
    if not client_id.startswith(CLIENT_ID_PREFIX):
        return None
    record = load_legacy_status(reader, client_id[len(CLIENT_ID_PREFIX) :])
    if record is None or record.owner.user_id != claims.get("sub"):
        return False
    check_credential(now=now, expires_at=None, revoked_at=record.revoked_at)
    check_owner(record.owner)
    check_issued_after(
        int(claims["iat"]), record.tokens_revoked_before, record.owner.tokens_revoked_before
    )
    return True


def revoke_legacy_key(
    session: Session, key_id: str, *, now: datetime, actor: str, reason: str | None = None
) -> LegacyKey:
    """Refuse ``key_id`` from ``now`` on; the tokens exchanged from it until then turn inactive."""
    key = session.get(LegacyKey, key_id)
    if key is None:
        raise NotFound(f"no legacy key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = now
        key.tokens_revoked_before = now
        revoke_blocks(session, now, client_id=CLIENT_ID_PREFIX + key_id)
        events.record(
            session, LEGACY_KEY_REVOKED, f"legacy_key:{key_id}", actor=actor, reason=reason
        )
    return key


def set_legacy_sunset(
    session: Session, key_id: str, at: datetime | None, *, actor: str, reason: str | None = None
) -> LegacyKey:
    """Set (or with None, clear) the date after which ``key_id`` is refused as retired."""
    key = session.get(LegacyKey, key_id)
    if key is None:
        raise NotFound(f"no legacy key {key_id!r}")
    key.sunset_at = at
    when = at.isoformat() if at is not None else "none"
    events.record(
        session,
        LEGACY_KEY_SUNSET,
        f"legacy_key:{key_id}",
        actor=actor,
        reason=f"sunset {when}" + (f": {reason}" if reason else ""),
    )
    return key
