"""External issuers' signing keys: OIDC discovery → ``jwks_uri`` → keys by ``kid``.

Every fetch goes through ``keyswap.clients.outbound`` (total deadline, byte cap, no redirects, no
private addresses unless ``KEYSWAP_OUTBOUND_ALLOW_PRIVATE``) and every key set through
``keyswap.clients.jwks_cache.RemoteKeySets`` (one fetch in flight per uri, ``max-age`` caching,
backoff after failures, a key cap, asymmetric keys only, each bound to one algorithm).
A ``kid`` the cached set lacks asks for one refetch per interval: an issuer that rotated
is picked up at once, and a flood of forged kids costs it one request per interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import jwt

from keyswap.clients.errors import IssuerUnavailable, UnknownKey
from keyswap.clients.jwks_cache import RemoteKeySets, load_keys, parse_max_age
from keyswap.clients.outbound import (
    DEFAULT_DEADLINE,
    OutboundError,
    check_outbound_url,
    fetch_json,
    outbound_session,
)

#: OpenID Connect Discovery 1.0 §4: the configuration is at the issuer plus this path.
DISCOVERY_PATH = "/.well-known/openid-configuration"


def discovery_url(issuer: str) -> str:
    """Return the URL of ``issuer``'s OIDC discovery document (§4.1: no doubled slash)."""
    return issuer.rstrip("/") + DISCOVERY_PATH


class FederatedKeys:
    """The signing keys of every trusted issuer, fetched guarded and cached."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        deadline: float = DEFAULT_DEADLINE,
        min_refresh_interval: float = 10.0,
        default_max_age: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._allow_private = allow_private
        self._deadline = deadline
        self._min_interval = min_refresh_interval
        self._default_max_age = default_max_age
        self._clock = clock
        self._http = outbound_session(allow_private=allow_private)
        self._sets = RemoteKeySets(
            load_keys,
            session=self._http,
            timeout=deadline,
            deadline=deadline,
            clock=clock,
            min_refresh_interval=min_refresh_interval,
            default_max_age=default_max_age,
        )
        self._lock = threading.Lock()
        #: issuer -> (its jwks_uri, fresh until); one lock per issuer; next discovery attempt
        self._discovered: dict[str, tuple[str, float]] = {}
        self._issuer_locks: dict[str, threading.Lock] = {}
        self._next_attempt: dict[str, float] = {}

    def key(self, issuer: str, jwks_uri: str | None, kid: str) -> jwt.PyJWK:
        """Return ``issuer``'s key ``kid``, from ``jwks_uri`` or its discovery document.

        Raises ``UnknownKey`` when the issuer does not publish ``kid`` (after one refetch
        per interval), and ``IssuerUnavailable`` when its keys cannot be had now.
        """
        uri = jwks_uri or self.jwks_uri(issuer)
        keys = self._sets.get(uri, lambda keys: kid not in keys)
        key = keys.get(kid)
        if key is None:
            raise UnknownKey("the assertion's signing key is not one its issuer publishes")
        return key

    def jwks_uri(self, issuer: str) -> str:
        """Return the ``jwks_uri`` of ``issuer``'s OIDC discovery document (cached)."""
        cached = self._discovered.get(issuer)
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        with self._lock:
            lock = self._issuer_locks.setdefault(issuer, threading.Lock())
        with lock:  # one discovery fetch in flight per issuer; other issuers never wait
            now = self._clock()
            cached = self._discovered.get(issuer)
            if cached is not None and now < cached[1]:
                return cached[0]
            if now < self._next_attempt.get(issuer, float("-inf")):
                if cached is not None:
                    return cached[0]  # stale, but the keys behind it are cached on their own
                raise IssuerUnavailable(
                    "temporarily_unavailable", f"the discovery document of {issuer} is unavailable"
                )
            self._next_attempt[issuer] = now + self._min_interval
            try:
                uri, max_age = self._discover(issuer)
            except IssuerUnavailable:
                if cached is not None:
                    return cached[0]
                raise
            self._discovered[issuer] = (uri, now + max_age)
            return uri

    def _discover(self, issuer: str) -> tuple[str, float]:
        url = discovery_url(issuer)
        try:
            fetched = fetch_json(self._http, url, timeout=self._deadline, deadline=self._deadline)
        except OutboundError as exc:
            raise IssuerUnavailable("temporarily_unavailable", str(exc)) from exc
        document = fetched.document
        if fetched.status != 200 or not isinstance(document, dict):
            raise IssuerUnavailable("temporarily_unavailable", f"{url} answered {fetched.status}")
        # OIDC Discovery §4.3: the issuer value returned MUST be identical to the one used.
        if document.get("issuer") != issuer:
            raise IssuerUnavailable(
                "temporarily_unavailable", f"{url} names issuer {document.get('issuer')!r}"
            )
        uri = document.get("jwks_uri")
        if not isinstance(uri, str):
            raise IssuerUnavailable("temporarily_unavailable", f"{url} has no jwks_uri")
        try:
            check_outbound_url(uri, "the jwks_uri", allow_private=self._allow_private)
        except ValueError as exc:
            raise IssuerUnavailable("temporarily_unavailable", str(exc)) from None
        return uri, parse_max_age(fetched.headers, self._default_max_age)
