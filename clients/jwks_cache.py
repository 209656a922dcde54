"""The issuer's public keys (RFC 7517 JWK Set), cached per ``Cache-Control: max-age``.

One ``JWKSCache`` per ``jwks_uri``, shared by every thread. A lookup of a known ``kid`` in a
fresh cache is a dict lookup and a clock read. Fetches happen only when the cache has
expired (RFC 9111 ``max-age`` minus ``Age``; revalidated with ``If-None-Match``) or when a
token names an unknown ``kid``, and never more than once per ``min_refresh_interval``: a
flood of forged kids costs the issuer at most one request per interval.

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
from typing import Any

import jwt
import requests

from .errors import IssuerUnavailable, UnknownKey

log = logging.getLogger(__name__)

#: Algorithms a published key may be bound to: asymmetric signatures only (RFC 8725 §3.1).
ASYMMETRIC_ALGS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
_ASYMMETRIC_KTYS = frozenset({"EC", "RSA", "OKP"})


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One fetched JWK Set: keys by kid, when it goes stale, and its validator."""

    keys: Mapping[str, jwt.PyJWK]
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


class JWKSCache:
    """A thread-safe cache of one issuer's signature keys, by ``kid``."""

    def __init__(
        self,
        jwks_uri: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 5.0,
        min_refresh_interval: float = 10.0,
        default_max_age: float = 300.0,
        max_age_ceiling: float = 86400.0,
        stale_if_error: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Cache the JWK Set at ``jwks_uri``; nothing is fetched until a key is needed.

        ``min_refresh_interval`` bounds fetches caused by unknown kids and by a max-age
        shorter than it; ``stale_if_error`` is how long expired keys keep verifying while
        the issuer cannot be reached (RFC 5861 §4); ``clock`` is monotonic seconds.
        """
        self.jwks_uri = jwks_uri
        self._session = session or requests.Session()
        self._timeout = timeout
        self._min_interval = min_refresh_interval
        self._default_max_age = default_max_age
        self._ceiling = max_age_ceiling
        self._stale_if_error = stale_if_error
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._attempted_at = float("-inf")
        #: HTTP requests made so far (for metrics and tests).
        self.fetches = 0

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
        return self._refresh_for(kid)

    def cached(self, kid: str) -> jwt.PyJWK | None:
        """Return the key for ``kid`` if the cache is fresh and holds it, without fetching."""
        snapshot = self._snapshot
        if snapshot is not None and self._clock() < snapshot.expires_at:
            return snapshot.keys.get(kid)
        return None

    def refresh(self) -> None:
        """Fetch the JWK Set now, whatever the cache's age (for warm-up at start-up)."""
        with self._lock:
            self._attempted_at = self._clock()
            self._snapshot = self._fetch(self._snapshot)

    def _refresh_for(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            # Another thread may have refreshed while this one waited for the lock.
            now = self._clock()
            snapshot = self._snapshot
            fresh = snapshot is not None and now < snapshot.expires_at
            if fresh and snapshot is not None and kid in snapshot.keys:
                return snapshot.keys[kid]
            if now - self._attempted_at < self._min_interval:
                return self._from_stale(snapshot, kid, now, fresh)
            self._attempted_at = now
            try:
                snapshot = self._snapshot = self._fetch(snapshot)
            except IssuerUnavailable:
                if snapshot is not None and now < snapshot.expires_at + self._stale_if_error:
                    log.warning("JWKS fetch from %s failed; using cached keys", self.jwks_uri)
                    return self._known(snapshot, kid)
                raise
            return self._known(snapshot, kid)

    def _from_stale(
        self, snapshot: _Snapshot | None, kid: str, now: float, fresh: bool
    ) -> jwt.PyJWK:
        """Answer from the cache alone: a fetch was attempted less than an interval ago."""
        if snapshot is None:
            raise IssuerUnavailable("temporarily_unavailable", "the issuer's keys are unavailable")
        if not fresh and now >= snapshot.expires_at + self._stale_if_error:
            raise IssuerUnavailable("temporarily_unavailable", "the issuer's keys are stale")
        return self._known(snapshot, kid)

    @staticmethod
    def _known(snapshot: _Snapshot, kid: str) -> jwt.PyJWK:
        key = snapshot.keys.get(kid)
        if key is None:
            raise UnknownKey("the token's signing key is unknown")
        return key

    def _fetch(self, previous: _Snapshot | None) -> _Snapshot:
        headers = {"Accept": "application/json"}
        if previous is not None and previous.etag:
            headers["If-None-Match"] = previous.etag
        self.fetches += 1
        try:
            response = self._session.get(self.jwks_uri, headers=headers, timeout=self._timeout)
        except requests.RequestException as exc:
            raise IssuerUnavailable(
                "temporarily_unavailable", f"cannot fetch {self.jwks_uri}: {type(exc).__name__}"
            ) from exc
        max_age = min(self._ceiling, parse_max_age(response.headers, self._default_max_age))
        expires_at = self._clock() + max_age
        if response.status_code == 304 and previous is not None:
            return _Snapshot(previous.keys, expires_at, previous.etag)
        if response.status_code != 200:
            raise IssuerUnavailable(
                "temporarily_unavailable",
                f"{self.jwks_uri} answered {response.status_code}",
                status=response.status_code,
            )
        try:
            document = response.json()
            jwks = document["keys"]
        except (ValueError, KeyError, TypeError) as exc:
            raise IssuerUnavailable(
                "temporarily_unavailable", f"{self.jwks_uri} is not a JWK Set"
            ) from exc
        keys = {}
        for jwk in jwks if isinstance(jwks, list) else ():
            key = load_key(jwk) if isinstance(jwk, dict) else None
            if key is not None:
                keys[jwk["kid"]] = key
        return _Snapshot(keys, expires_at, response.headers.get("ETag"))
