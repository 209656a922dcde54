"""Token Status Lists (draft-ietf-oauth-status-list-21): entries, blocks and revocation.

Every access token names one entry of a status list (§4): ``status.status_list`` holds
the list's ``uri`` and the entry's ``idx``. Entries are handed out in blocks leased to a
process for one credential and signing key (``status_leases``), so issuance writes one
row per block, never one per token. A revocation flips bits in those rows:

- one token (RFC 7009, ``tokens revoke --jti``): one bit of its block;
- a cascade (a client, user, tenant, legacy key or signing key): every live block of it,
  whole, including entries not handed out yet (the leasing process notices the changed
  cutoff and leases a fresh block, so tokens issued after a reactivation are valid).

Bits are never cleared while a block is live: reactivation does not revive a token. A
slot is leased again, cleared, only after every token that used it has expired.
See ``docs/status-lists.md`` for the design and its trade-offs.
"""

from __future__ import annotations

import zlib
from base64 import urlsafe_b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import StatusBlock

#: Entries per block: one lease, one row, 128 bytes of bits.
BLOCK_SIZE = 1024
#: Blocks per list: a list covers 1,048,576 entries (128 KiB before compression).
BLOCKS_PER_LIST = 1024
#: §5.1: "bits" is 1, 2, 4 or 8; keyswap only says valid (0) or invalid (1).
BITS = 1
#: §5.1 / IANA: the header "typ" and the media type of a Status List Token.
STATUS_LIST_TYP = "statuslist+jwt"
STATUS_LIST_MEDIA_TYPE = "application/statuslist+jwt"
_EMPTY_BITS = bytes(BLOCK_SIZE // 8)
_FULL_BITS = b"\xff" * (BLOCK_SIZE // 8)


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """One entry of one list: what a token's ``status`` claim points at."""

    list_id: int
    idx: int

    @classmethod
    def of(cls, slot: int, offset: int) -> StatusEntry:
        """Return the entry at ``offset`` of block ``slot``."""
        return cls(slot // BLOCKS_PER_LIST, (slot % BLOCKS_PER_LIST) * BLOCK_SIZE + offset)

    @property
    def slot(self) -> int:
        """Return the block holding this entry."""
        return self.list_id * BLOCKS_PER_LIST + self.idx // BLOCK_SIZE

    @property
    def offset(self) -> int:
        """Return the entry's position inside its block."""
        return self.idx % BLOCK_SIZE

    def claim(self, issuer: str) -> dict[str, Any]:
        """Return the token's ``status`` claim (§6.1)."""
        return {"status_list": {"idx": self.idx, "uri": list_uri(issuer, self.list_id)}}

    def jti_suffix(self) -> str:
        """Return what ends the token's ``jti``, so revoking by jti alone finds the entry."""
        return f".{self.list_id}.{self.idx}"


def list_uri(issuer: str, list_id: int) -> str:
    """Return the URL a list is served at (CONTRACT.md: ``/statuslists/{id}``)."""
    return f"{issuer}/statuslists/{list_id}"


def entry_of_jti(jti: str) -> StatusEntry | None:
    """Return the entry a keyswap ``jti`` names (``<random>.<list>.<idx>``), else None."""
    parts = jti.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    list_id, idx = int(parts[1]), int(parts[2])
    if idx >= BLOCK_SIZE * BLOCKS_PER_LIST or len(parts[1]) > 9:
        return None
    return StatusEntry(list_id, idx)


def entry_of_claims(claims: Mapping[str, Any], issuer: str) -> StatusEntry | None:
    """Return the entry a verified token's ``status`` claim names on this issuer, else None."""
    status = claims.get("status")
    inner = status.get("status_list") if isinstance(status, dict) else None
    if not isinstance(inner, dict):
        return None
    idx, uri = inner.get("idx"), inner.get("uri")
    prefix = list_uri(issuer, 0)[:-1]
    if not isinstance(idx, int) or not isinstance(uri, str) or not uri.startswith(prefix):
        return None
    list_id = uri[len(prefix) :]
    return StatusEntry(int(list_id), idx) if list_id.isdigit() else None


def encode_bits(bits: bytes) -> str:
    """Return §4.1's ``lst``: the bytes ZLIB-compressed (RFC 1950), base64url without padding."""
    return urlsafe_b64encode(zlib.compress(bits, 9)).rstrip(b"=").decode("ascii")


# --- leasing -------------------------------------------------------------------------------


def lease_block(
    session: Session,
    *,
    client_id: str,
    owner_id: str,
    tenant: str,
    kid: str,
    now: datetime,
    expires_at: datetime,
    attempts: int = 8,
) -> int:
    """Lease a block and return its slot: the lowest slot free again, else a new one.

    Runs in its own transaction and commits. Several processes may race for a slot: a
    reused slot is taken by a guarded UPDATE and a new one by INSERT on the primary key,
    so exactly one wins and the others try again.
    """
    values = {
        "client_id": client_id,
        "owner_id": owner_id,
        "tenant": tenant,
        "kid": kid,
        "leased_at": now,
        "expires_at": expires_at,
        "revoked": False,
        "bits": _EMPTY_BITS,
    }
    for _ in range(attempts):
        free = session.scalar(
            select(StatusBlock.slot)
            .where(StatusBlock.expires_at <= now)
            .order_by(StatusBlock.slot)
            .limit(1)
        )
        if free is not None:
            taken = session.execute(
                update(StatusBlock)
                .where(StatusBlock.slot == free, StatusBlock.expires_at <= now)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            session.commit()
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return int(free)
            continue
        highest = session.scalar(select(func.max(StatusBlock.slot)))
        slot = 0 if highest is None else int(highest) + 1
        session.add(StatusBlock(slot=slot, **values))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            continue
        return int(slot)
    raise RuntimeError("could not lease a status list block (too much contention)")


# --- revocation ----------------------------------------------------------------------------


def revoke_entry(
    session: Session, entry: StatusEntry, now: datetime, *, tenant: str | None = None
) -> bool:
    """Set one token's bit; False when its block is not live (or not in ``tenant``)."""
    query = (
        select(StatusBlock)
        .where(StatusBlock.slot == entry.slot, StatusBlock.expires_at > now)
        .with_for_update()
    )
    block = session.scalar(query)
    if block is None or (tenant is not None and block.tenant != tenant):
        return False
    bits = bytearray(block.bits)
    # §4.1: entry i is byte i // 8, bit i % 8 counted from the least significant.
    bits[entry.offset // 8] |= 1 << (entry.offset % 8)
    block.bits = bytes(bits)
    session.flush()
    return True


def revoke_blocks(
    session: Session,
    now: datetime,
    *,
    client_id: str | None = None,
    owner_id: str | None = None,
    tenant: str | None = None,
    kid: str | None = None,
) -> int:
    """Mark every live block of a client, owner, tenant or signing key revoked; return how many."""
    conditions = [
        column == value
        for column, value in (
            (StatusBlock.client_id, client_id),
            (StatusBlock.owner_id, owner_id),
            (StatusBlock.tenant, tenant),
            (StatusBlock.kid, kid),
        )
        if value is not None
    ]
    if not conditions:
        raise ValueError("revoke_blocks needs a client, owner, tenant or key")
    result = session.execute(
        update(StatusBlock)
        .where(StatusBlock.expires_at > now, StatusBlock.revoked.is_(False), *conditions)
        .values(revoked=True)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- reading -------------------------------------------------------------------------------


def list_count(session: Session) -> int:
    """Return how many lists exist (slots are dense from 0, so lists are 0 .. n - 1)."""
    highest = session.scalar(select(func.max(StatusBlock.slot)))
    return 0 if highest is None else int(highest) // BLOCKS_PER_LIST + 1


def read_list_bits(session: Session, list_id: int) -> bytes | None:
    """Return list ``list_id``'s bytes, up to its highest leased block; None if it has none."""
    first = list_id * BLOCKS_PER_LIST
    rows = session.execute(
        select(StatusBlock.slot, StatusBlock.revoked, StatusBlock.bits)
        .where(StatusBlock.slot >= first, StatusBlock.slot < first + BLOCKS_PER_LIST)
        .order_by(StatusBlock.slot)
    ).all()
    if not rows:
        return None
    size = BLOCK_SIZE // 8
    out = bytearray((rows[-1].slot - first + 1) * size)
    for slot, revoked, bits in rows:
        start = (slot - first) * size
        out[start : start + size] = _FULL_BITS if revoked else bits
    return bytes(out)
