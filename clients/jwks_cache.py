"""Remote JWK Sets (RFC 7517), fetched guarded and cached per ``Cache-Control: max-age``.

One implementation for every remote key set: the issuer's keys in ``Verifier``
(``JWKSCache``, by ``kid``) and a client's registered ``jwks_uri`` at the issuer
(``RemoteKeySet`` with the issuer's own parser, one per uri in ``RemoteKeySets``).

One cache per uri, shared by every thread; a set is parsed once per fetch. A lookup in a
fresh cache is a dict lookup and a clock read. Fetches happen only when the cache has
expired (RFC 9111 ``max-age`` minus ``Age``; revalidated with ``If-None-Match``) or when a
token names an unknown ``kid``, one in flight per uri (other uris are never held up), and
never more than once per ``min_refresh_interval``: a flood of forged kids costs the issuer
at most one request per interval. A failed fetch is remembered: the next attempt waits
``min_refresh_interval``, doubling with each further failure up to ``max_backoff``. Each
fetch goes through ``outbound.fetch_json``: a total deadline, a byte cap, no redirects;
a set with more than ``max_keys`` keys is refused.

Only signature keys of asymmetric types are kept, each bound to one algorithm: the JWK's
``alg``, or the one its key type and curve imply. Symmetric (``oct``) keys are dropped, so
no JWK Set can make a verifier accept an HMAC token (RFC 8725 §2.1, §3.1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import jwt
import requests

from .errors import IssuerUnavailable, UnknownKey
from .outbound import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BYTES,
    Fetched,
    OutboundError,
    fetch_json,
    outbound_session,
)

log = logging.getLogger(__name__)

#: Algorithms a published key may be bound to: asymmetric signatures only (RFC 8725 §3.1).
ASYMMETRIC_ALGS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
_ASYMMETRIC_KTYS = frozenset({"EC", "RSA", "OKP"})


#: The most keys a remote JWK Set may hold; real ones hold two or three.
DEFAULT_MAX_KEYS = 32

T = TypeVar("T")
#: Turns a fetched set's JWKs (JSON objects, at most ``max_keys``) into the cached value;
#: a ValueError means the set is unusable (a failed fetch).
Parse = Callable[[list[dict[str, Any]]], T]


@dataclass(frozen=True, slots=True)
class _Snapshot(Generic[T]):
    """One fetched JWK Set: its parsed keys, when it goes stale, and its validator."""

    keys: T
    expires_at: float
    etag: str | None


def parse_max_age(headers: Mapping[str, str], default: float) -> float:
    """Return how many seconds a response stays fresh (RFC 9111 §4.2.1, §5.1, §5.2.2).

    ``no-store`` and ``no-cache`` mean zero; without ``max-age`` the ``default`` applies.
    The ``Age`` a shared cache reports is subtracted.
    """
    directives = {}
    for part in headers.get("Cache-Control", "").split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    try:
        max_age = float(directives["max-age"])
    except (KeyError, ValueError):
        return default
    try:
        age = float(headers.get("Age", "0"))
    except ValueError:
        age = 0.0
    return max(0.0, max_age - age)


def load_key(jwk: Mapping[str, Any]) -> jwt.PyJWK | None:
    """Return ``jwk`` as a PyJWK bound to its algorithm, or None if it is unfit to verify."""
    if not isinstance(jwk.get("kid"), str) or jwk.get("kty") not in _ASYMMETRIC_KTYS:
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    alg = jwk.get("alg")
    if alg is not None and alg not in ASYMMETRIC_ALGS:
        return None
    try:
        key = jwt.PyJWK(dict(jwk))
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        log.warning("skipping unusable JWK %s", jwk.get("kid"))
        return None
    # PyJWK infers the algorithm when "alg" is absent; keep only asymmetric ones.
    return key if key.algorithm_name in ASYMMETRIC_ALGS else None


def load_keys(jwks: list[dict[str, Any]]) -> dict[str, jwt.PyJWK]:
    """Return the set's usable signature keys by kid (``load_key`` drops the others)."""
    keys = {}
    for jwk in jwks:
        key = load_key(jwk)
        if key is not None:
            keys[jwk["kid"]] = key
    return keys


class RemoteKeySet(Generic[T]):
    """A thread-safe cache of one remote JWK Set, parsed by ``parse`` once per fetch."""

    def __init__(
        self,
        uri: str,
        parse: Parse[T],
        *,
        session: requests.Session | None = None,
        timeout: float = 5.0,
        deadline: float = DEFAULT_DEADLINE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_keys: int = DEFAULT_MAX_KEYS,
        min_refresh_interval: float = 10.0,
        max_backoff: float = 300.0,
        default_max_age: float = 300.0,
        max_age_ceiling: float = 86400.0,
        stale_if_error: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Cache the JWK Set at ``uri``; nothing is fetched until keys are needed.

        ``timeout`` bounds each read and ``deadline`` the whole fetch; ``min_refresh_interval``
        bounds fetches caused by unknown kids and by a max-age shorter than it, and starts the
        backoff after a failure; ``stale_if_error`` is how long expired keys keep verifying
        while the uri cannot be fetched (RFC 5861 §4); ``clock`` is monotonic seconds.
        """
        self.uri = uri
        self._parse = parse
        self._session = session or outbound_session(allow_private=True)
        self._timeout = timeout
        self._deadline = deadline
        self._max_bytes = max_bytes
        self._max_keys = max_keys
        self._min_interval = min_refresh_interval
        self._max_backoff = max(max_backoff, min_refresh_interval)
        self._default_max_age = default_max_age
        self._ceiling = max_age_ceiling
        self._stale_if_error = stale_if_error
        self._clock = clock
        # Held only while this uri is fetched: one fetch in flight, never another uri's lock.
        self._lock = threading.Lock()
        self._snapshot: _Snapshot[T] | None = None
        self._next_attempt = float("-inf")
        self._failures = 0
        #: HTTP requests made so far (for metrics and tests).
        self.fetches = 0

    def current(self) -> T:
        """Return the keys, fetching them if the cache is empty or expired."""
        snapshot = self._snapshot
        if snapshot is not None and self._clock() < snapshot.expires_at:
            return snapshot.keys
        return self._refreshed(None)

    def current_lacking(self, lacks: Callable[[T], bool]) -> T:
        """Return the keys; if ``lacks(keys)`` (an unknown kid), fetch at most once per interval."""
        snapshot = self._snapshot
        if snapshot is not None and self._clock() < snapshot.expires_at:
            if not lacks(snapshot.keys):
                return snapshot.keys
        return self._refreshed(lacks)

    def cached_keys(self) -> T | None:
        """Return the keys if the cache is fresh, without fetching."""
        snapshot = self._snapshot
        if snapshot is not None and self._clock() < snapshot.expires_at:
            return snapshot.keys
        return None

    def refresh(self) -> None:
        """Fetch the JWK Set now, whatever the cache's age (for warm-up at start-up)."""
        with self._lock:
            self._next_attempt = self._clock() + self._min_interval
            self._snapshot = self._fetch(self._snapshot)

    def _refreshed(self, lacks: Callable[[T], bool] | None) -> T:
        """Return keys after a fetch if one is due, else from the cache (stale if allowed).

        ``lacks(keys)`` tells a fresh set that misses what the caller needs (an unknown kid),
        which asks for a fetch once per ``min_refresh_interval``.
        """
        with self._lock:
            # Another thread may have fetched while this one waited for the lock.
            now = self._clock()
            snapshot = self._snapshot
            fresh = snapshot is not None and now < snapshot.expires_at
            if fresh and snapshot is not None and (lacks is None or not lacks(snapshot.keys)):
                return snapshot.keys
            if now < self._next_attempt:
                return self._from_stale(snapshot, now, fresh)
            try:
                snapshot = self._snapshot = self._fetch(snapshot)
            except IssuerUnavailable:
                backoff = self._min_interval * 2 ** min(self._failures, 16)
                self._failures += 1
                self._next_attempt = now + min(self._max_backoff, backoff)
                if snapshot is not None and now < self._usable_until(snapshot):
                    log.warning("fetch from %s failed; using the cached copy", self.uri)
                    return snapshot.keys
                raise
            self._failures = 0
            self._next_attempt = now + self._min_interval
            return snapshot.keys

    def _from_stale(self, snapshot: _Snapshot[T] | None, now: float, fresh: bool) -> T:
        """Answer from the cache alone: a fetch was attempted too recently."""
        if snapshot is None:
            raise IssuerUnavailable(
                "temporarily_unavailable", f"the keys at {self.uri} are unavailable"
            )
        if not fresh and now >= self._usable_until(snapshot):
            raise IssuerUnavailable("temporarily_unavailable", f"the keys at {self.uri} are stale")
        return snapshot.keys

    def _usable_until(self, snapshot: _Snapshot[T]) -> float:
        """Return until when an expired copy may still be used while fetches fail."""
        return snapshot.expires_at + self._stale_if_error

    def _fetch(self, previous: _Snapshot[T] | None) -> _Snapshot[T]:
        headers = {}
        if previous is not None and previous.etag:
            headers["If-None-Match"] = previous.etag
        self.fetches += 1
        try:
            fetched = fetch_json(
                self._session,
                self.uri,
                headers=headers,
                timeout=self._timeout,
                deadline=self._deadline,
                max_bytes=self._max_bytes,
            )
        except OutboundError as exc:
            log.warning("cannot fetch JWK Set: %s", exc)
            raise IssuerUnavailable("temporarily_unavailable", str(exc)) from exc
        max_age = min(self._ceiling, parse_max_age(fetched.headers, self._default_max_age))
        expires_at = self._clock() + max_age
        if fetched.status == 304 and previous is not None:
            return _Snapshot(previous.keys, expires_at, previous.etag)
        if fetched.status != 200:
            log.warning("cannot fetch JWK Set: %s answered %s", self.uri, fetched.status)
            raise IssuerUnavailable(
                "temporarily_unavailable",
                f"{self.uri} answered {fetched.status}",
                status=fetched.status,
            )
        try:
            keys = self._parse(self._jwks(fetched))
        except ValueError as exc:
            log.warning("JWK Set at %s is unusable: %s", self.uri, exc)
            raise IssuerUnavailable("temporarily_unavailable", f"{self.uri}: {exc}") from exc
        return _Snapshot(keys, expires_at, fetched.headers.get("ETag"))

    def _jwks(self, fetched: Fetched) -> list[dict[str, Any]]:
        document = fetched.document
        jwks = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(jwks, list):
            raise IssuerUnavailable("temporarily_unavailable", f"{self.uri} is not a JWK Set")
        if len(jwks) > self._max_keys:
            log.warning(
                "JWK Set at %s has %d keys; at most %d", self.uri, len(jwks), self._max_keys
            )
            raise IssuerUnavailable(
                "temporarily_unavailable", f"{self.uri} holds more than {self._max_keys} keys"
            )
        return [jwk for jwk in jwks if isinstance(jwk, dict)]


class JWKSCache(RemoteKeySet[dict[str, jwt.PyJWK]]):
    """A thread-safe cache of one issuer's signature keys, by ``kid``."""

    def __init__(self, jwks_uri: str, **options: Any) -> None:
        """Cache the JWK Set at ``jwks_uri`` (options as for ``RemoteKeySet``)."""
        super().__init__(jwks_uri, load_keys, **options)

    @property
    def jwks_uri(self) -> str:
        """Return the URL of the JWK Set."""
        return self.uri

    def get(self, kid: str) -> jwt.PyJWK:
        """Return the key for ``kid``, fetching the JWK Set if needed.

        Raises ``UnknownKey`` when the issuer does not publish ``kid``, and
        ``IssuerUnavailable`` when the keys cannot be fetched and none may be used.
        """
        snapshot = self._snapshot
        if snapshot is not None and self._clock() < snapshot.expires_at:
            key = snapshot.keys.get(kid)
            if key is not None:
                return key
        return self._known(self._refreshed(lambda keys: kid not in keys), kid)

    def cached(self, kid: str) -> jwt.PyJWK | None:
        """Return the key for ``kid`` if the cache is fresh and holds it, without fetching."""
        keys = self.cached_keys()
        return keys.get(kid) if keys is not None else None

    @staticmethod
    def _known(keys: Mapping[str, jwt.PyJWK], kid: str) -> jwt.PyJWK:
        key = keys.get(kid)
        if key is None:
            raise UnknownKey("the token's signing key is unknown")
        return key


class RemoteKeySets(Generic[T]):
    """``RemoteKeySet`` caches by uri, for many remote sets (every client's ``jwks_uri``).

    The registry's lock guards only the dict, never a fetch: a slow uri holds up callers
    of that uri alone. At most ``max_uris`` caches are kept (the least recently used goes).
    """

    def __init__(self, parse: Parse[T], *, max_uris: int = 1024, **options: Any) -> None:
        """Make caches parsing with ``parse``; ``options`` are ``RemoteKeySet``'s."""
        self._parse = parse
        self._options = options
        self._max_uris = max_uris
        self._caches: dict[str, RemoteKeySet[T]] = {}
        self._lock = threading.Lock()

    def get(self, uri: str, lacks: Callable[[T], bool] | None = None) -> T:
        """Return the keys at ``uri``; ``IssuerUnavailable`` if they cannot be had.

        ``lacks`` tells a set that misses what the caller needs (``current_lacking``).
        """
        cache = self.cache(uri)
        return cache.current() if lacks is None else cache.current_lacking(lacks)

    def cache(self, uri: str) -> RemoteKeySet[T]:
        """Return the cache of ``uri``, making it on first use."""
        with self._lock:
            cache = self._caches.pop(uri, None)
            if cache is None:
                cache = RemoteKeySet(uri, self._parse, **self._options)
                if len(self._caches) >= self._max_uris:
                    del self._caches[next(iter(self._caches))]
            self._caches[uri] = cache  # re-inserted last: the dict is in recency order
            return cache
