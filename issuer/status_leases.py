"""Status list entries for issuance: blocks leased per credential and key, handed out in memory.

The token endpoint asks ``StatusLeases.entry`` for each token. The process keeps one
leased block per (credential, signing key) and hands out its entries under a lock that
guards only memory; one database write leases the next block when the current one is
full, older than the lease period, or may have been revoked as a whole.

A cascade (``status_lists.revoke_blocks``) always moves a cutoff the token endpoint
already reads live with the credential (the client's, legacy key's, owner's or tenant's
``tokens_revoked_before``), or retires the signing key. A lease remembers the cutoffs it
was leased under; when they differ, the block may be all ones and a new one is leased.
So a reactivated owner's new tokens are valid, and nothing extra is read per token.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from .status_lists import BLOCK_SIZE, StatusEntry, lease_block

#: How long one process hands out entries of one block; tokens expire at most
#: ``max_token_ttl`` later, and then the slot may be leased again.
LEASE_PERIOD = timedelta(minutes=5)
#: Leases kept in memory before expired ones are dropped.
_MAX_LEASES = 10_000

Cutoffs = tuple[datetime | None, datetime | None]


@dataclass(slots=True)
class _Lease:
    slot: int
    until: datetime
    cutoffs: Cutoffs
    used: int = 0


class StatusLeases:
    """This process's leased blocks, one per (credential, signing key); shared by threads."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        max_token_ttl: int,
        lease_period: timedelta = LEASE_PERIOD,
    ) -> None:
        """Lease blocks through ``sessions``; a block outlives its lease by ``max_token_ttl``."""
        self._sessions = sessions
        self._lifetime = timedelta(seconds=max_token_ttl)
        self._period = lease_period
        self._lock = threading.Lock()
        self._leases: dict[tuple[str, str], _Lease] = {}
        #: Blocks leased by this process (for metrics and tests).
        self.leased = 0

    def entry(
        self,
        *,
        client_id: str,
        owner_id: str,
        tenant: str,
        kid: str,
        cutoffs: Cutoffs,
        now: datetime,
    ) -> StatusEntry:
        """Return a fresh entry for a token of ``client_id`` signed by ``kid``.

        ``cutoffs`` are the credential's and its owner's (with the tenant's) revocation
        cutoffs as read for this request. Raises the database's error if a needed lease
        cannot be written: no token is issued without a status entry.
        """
        key = (client_id, kid)
        with self._lock:
            lease = self._leases.get(key)
            if lease is not None and self._usable(lease, cutoffs, now):
                lease.used += 1
                return StatusEntry.of(lease.slot, lease.used - 1)
        slot = self._lease(client_id, owner_id, tenant, kid, now)
        lease = _Lease(slot, now + self._period, cutoffs, used=1)
        with self._lock:
            if len(self._leases) >= _MAX_LEASES:
                self._forget_expired(now)
            # A thread that leased meanwhile loses its block's rest: a little waste, no harm.
            self._leases[key] = lease
        return StatusEntry.of(slot, 0)

    @staticmethod
    def _usable(lease: _Lease, cutoffs: Cutoffs, now: datetime) -> bool:
        return lease.used < BLOCK_SIZE and now < lease.until and lease.cutoffs == cutoffs

    def _lease(self, client_id: str, owner_id: str, tenant: str, kid: str, now: datetime) -> int:
        with self._sessions() as session:
            slot = lease_block(
                session,
                client_id=client_id,
                owner_id=owner_id,
                tenant=tenant,
                kid=kid,
                now=now,
                expires_at=now + self._period + self._lifetime,
            )
        with self._lock:
            self.leased += 1
        return slot

    def _forget_expired(self, now: datetime) -> None:
        for key in [k for k, lease in self._leases.items() if lease.until <= now]:
            del self._leases[key]
        if len(self._leases) >= _MAX_LEASES:
            self._leases.clear()

    def forget(self) -> None:
        """Drop every lease (tests; a process after its database was replaced)."""
        with self._lock:
            self._leases.clear()
