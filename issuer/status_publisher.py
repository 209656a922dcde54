"""Serving Status List Tokens (draft-ietf-oauth-status-list-21 §5, §8): signed once per interval.

Each process builds a list from the database and signs it at most once per
``rebuild_interval`` (a sixth of the ``ttl``, at least a second), then serves the same
bytes to every request until the next build: a flood of fetches costs one read and one
signature per list per interval. Revocations written by any process reach every
process's copy within that interval, because the state lives only in the database.

While one thread rebuilds a list, others keep serving the previous copy (no request
waits on the database behind the lock unless there is no copy at all).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from .keyring import KeyRing
from .status_lists import (
    BITS,
    STATUS_LIST_TYP,
    encode_bits,
    list_count,
    list_uri,
    read_list_bits,
)

#: A list's ``exp`` is this many ``ttl`` after its ``iat``: how long a verifier that cannot
#: fetch a newer one may keep using it (keyswap's verifier then fails closed).
LIFETIME_TTLS = 5


@dataclass(frozen=True, slots=True)
class PublishedList:
    """A signed Status List Token, ready to serve."""

    body: bytes
    etag: str
    built_at: datetime


class StatusListPublisher:
    """Per-process cache of signed status lists, rebuilt from the database per interval."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        keyring: KeyRing,
        *,
        issuer: str,
        ttl: int,
        clock: Callable[[], datetime],
    ) -> None:
        """Serve lists of ``issuer`` whose ``ttl`` is ``ttl`` seconds, timed by ``clock``."""
        self._sessions = sessions
        self._keyring = keyring
        self.issuer = issuer
        self.ttl = ttl
        self.rebuild_interval = max(1.0, ttl / 6)
        self._clock = clock
        self._lock = threading.Lock()
        self._lists: dict[int, PublishedList] = {}
        self._count: tuple[int, datetime] | None = None
        #: Lists signed by this process (for metrics and tests).
        self.builds = 0

    def count(self) -> int:
        """Return how many lists exist, re-read at most once per interval."""
        now = self._clock()
        known = self._count
        if known is not None and self._fresh(known[1], now):
            return known[0]
        with self._sessions() as session:
            count = list_count(session)
        self._count = (count, now)
        return count

    def uris(self) -> list[str]:
        """Return every list's uri (the aggregation endpoint, §9.3)."""
        return [list_uri(self.issuer, n) for n in range(self.count())]

    def get(self, list_id: int) -> PublishedList | None:
        """Return list ``list_id`` as served now, or None if there is no such list."""
        now = self._clock()
        current = self._lists.get(list_id)
        if current is not None and self._fresh(current.built_at, now):
            return current
        if current is None and list_id >= self.count():
            return None
        if not self._lock.acquire(blocking=current is None):
            return current  # another thread is rebuilding: serve the previous copy
        try:
            current = self._lists.get(list_id)
            if current is not None and self._fresh(current.built_at, self._clock()):
                return current
            built = self._build(list_id, self._clock())
            if built is not None:
                self._lists[list_id] = built
            return built
        finally:
            self._lock.release()

    def forget(self) -> None:
        """Drop every cached list (tests that empty the database between cases)."""
        self._lists.clear()
        self._count = None

    def max_age(self, published: PublishedList) -> int:
        """Return how long a verifier may still cache ``published``: ``ttl`` minus its age."""
        age = (self._clock() - published.built_at).total_seconds()
        return max(0, int(self.ttl - max(0.0, age)))

    def _fresh(self, built_at: datetime, now: datetime) -> bool:
        return 0 <= (now - built_at).total_seconds() < self.rebuild_interval

    def _build(self, list_id: int, now: datetime) -> PublishedList | None:
        with self._sessions() as session:
            bits = read_list_bits(session, list_id)
        if bits is None:
            return None
        iat = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            # §5.1: "sub" MUST be the uri of the list, as the tokens name it.
            "sub": list_uri(self.issuer, list_id),
            "iat": iat,
            "exp": iat + LIFETIME_TTLS * self.ttl,
            "ttl": self.ttl,
            "status_list": {"bits": BITS, "lst": encode_bits(bits)},
        }
        body = self._keyring.signer().sign(claims, typ=STATUS_LIST_TYP).encode("ascii")
        self.builds += 1
        return PublishedList(body, hashlib.sha256(body).hexdigest()[:32], now)
