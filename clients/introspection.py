"""Token introspection (RFC 7662) for high-value calls, with a cache of a few seconds.

The answer is cached by the token's SHA-256, never the token itself, for ``cache_ttl``
seconds: long enough to spare the issuer a request per call in a burst, short enough that a
revocation or deactivation is seen within seconds. ``cache_ttl=0`` asks every time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

import requests

from .errors import IssuerUnavailable, TokenRefused


class Introspector:
    """Asks the issuer's introspection endpoint whether a token is active now."""

    def __init__(
        self,
        endpoint: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 5.0,
        cache_ttl: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Introspect at ``endpoint`` as a client created with ``--can-introspect``."""
        self.endpoint = endpoint
        self._auth = (client_id, client_secret)
        self._session = session or requests.Session()
        self._timeout = timeout
        self._ttl = cache_ttl
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: dict[bytes, tuple[bool, float]] = {}

    def is_active(self, token: str) -> bool:
        """Return the issuer's ``active`` answer for ``token``, from the cache when fresh.

        Raises ``IssuerUnavailable`` when the issuer cannot answer, and ``TokenRefused``
        when it refuses this client (a configuration error): never a guess.
        """
        digest = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        cached = self._answers.get(digest)
        if cached is not None and now < cached[1]:
            return cached[0]
        active = self._ask(token)
        if self._ttl > 0:
            with self._lock:
                if len(self._answers) >= self._max_entries:
                    self._evict(now)
                self._answers[digest] = (active, now + self._ttl)
        return active

    def _evict(self, now: float) -> None:
        self._answers = {k: v for k, v in self._answers.items() if now < v[1]}
        if len(self._answers) >= self._max_entries:
            self._answers.clear()

    def _ask(self, token: str) -> bool:
        try:
            response = self._session.post(
                self.endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise IssuerUnavailable(
                "temporarily_unavailable", f"cannot reach {self.endpoint}: {type(exc).__name__}"
            ) from exc
        if response.status_code in (400, 401, 403):
            body = _json(response)
            description = body.get("error_description")
            raise TokenRefused(
                str(body.get("error", "invalid_client")),
                description if isinstance(description, str) else None,
                status=response.status_code,
            )
        if response.status_code != 200:
            raise IssuerUnavailable(
                "temporarily_unavailable",
                f"{self.endpoint} answered {response.status_code}",
                status=response.status_code,
            )
        # RFC 7662 §2.2: "active" is REQUIRED; anything but true is inactive.
        return _json(response).get("active") is True


def _json(response: requests.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
