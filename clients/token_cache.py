"""Cache access tokens until shortly before they expire, one refresh in flight per key.

``TokenCache`` is keyed by anything hashable: ``TokenClient`` uses ``(scope, resource)``; the
legacy-key shim can use ``(key hash, scope, resource)``. A miss runs the caller's ``fetch``
exactly once however many threads ask at the same moment (single flight): the first caller
fetches, the others wait for its result (or its exception) instead of stampeding the issuer.
The cache-wide lock is held only to look up and swap entries, never across a fetch, so a slow
refresh of one key does not hold up another.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AccessToken:
    """An access token and what the issuer said about it (RFC 6749 §5.1)."""

    #: The bearer token itself; kept out of ``repr`` so it never lands in a log by accident.
    access_token: str = field(repr=False)
    token_type: str
    #: Seconds of life the issuer granted (``expires_in``).
    expires_in: float
    #: When it expires, on the clock of the ``TokenClient`` that fetched it.
    expires_at: float
    scope: str | None = None
    #: RFC 8693 §2.2.1; present on token-exchange answers.
    issued_token_type: str | None = None
    #: The ``Deprecation``, ``Sunset`` and ``Link`` fields the issuer sent with it (RFC 9745,
    #: RFC 8594): a legacy key with a sunset date, which the shim passes on to its caller.
    deprecation_headers: tuple[tuple[str, str], ...] = ()

    def is_fresh(self, now: float, margin: float, fraction: float) -> bool:
        """Tell whether the token may still be handed out at ``now``.

        It is retired ``margin`` seconds before ``exp``, or ``fraction`` of its lifetime
        before if that is less, so that a token living under ``margin`` seconds is not
        refreshed on every call.
        """
        return now < self.expires_at - min(margin, self.expires_in * fraction)


Fetch = Callable[[], AccessToken]


class TokenCache:
    """Tokens by key, refreshed near expiry, with one fetch in flight per key."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin: float = 30.0,
        refresh_fraction: float = 0.1,
    ) -> None:
        self._clock = clock
        self._margin = refresh_margin
        self._fraction = refresh_fraction
        self._lock = threading.Lock()
        self._tokens: dict[Hashable, AccessToken] = {}
        self._flights: dict[Hashable, Future[AccessToken]] = {}

    def get(self, key: Hashable, fetch: Fetch) -> AccessToken:
        """Return the cached token for ``key``, or fetch one (once, whoever else is asking)."""
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.is_fresh(self._clock(), self._margin, self._fraction):
                return token
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = Future()
        if not leader:
            # Waiters share the leader's outcome, error included: a refused or unreachable
            # issuer is told once per flight, not once per waiting thread.
            return flight.result()
        try:
            token = fetch()
        except BaseException as exc:
            with self._lock:
                del self._flights[key]
            flight.set_exception(exc)
            raise
        with self._lock:
            self._tokens[key] = token
            del self._flights[key]
        flight.set_result(token)
        return token

    def peek(self, key: Hashable) -> AccessToken | None:
        """Return the token cached for ``key`` if it is fresh, without ever fetching."""
        with self._lock:
            token = self._tokens.get(key)
        if token is not None and token.is_fresh(self._clock(), self._margin, self._fraction):
            return token
        return None

    def invalidate(self, key: Hashable, access_token: str | None = None) -> None:
        """Drop the token cached for ``key``.

        With ``access_token``, drop it only if it is still the cached one: when several
        requests fail with the same rejected token, the first drops it and the others then
        find the refreshed token instead of discarding it again.
        """
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and access_token in (None, token.access_token):
                del self._tokens[key]

    def clear(self) -> None:
        """Drop every cached token."""
        with self._lock:
            self._tokens.clear()
