"""Authorization server metadata (RFC 8414 §2), also served as OIDC discovery.

The document lists only what keyswap really supports, and omits members that would be
empty (RFC 8414 §3.2). ``scopes_supported`` is derived from the registered clients, so
``Discovery`` re-reads it at most every ``ttl`` seconds, on a discovery request: the
token endpoint never waits on it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from .config import Settings

log = logging.getLogger(__name__)

GRANT_TYPES = [
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
]
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
ASSERTION_ALGS = ["ES256", "ES384", "RS256", "PS256", "Ed25519", "EdDSA"]
SIGNING_ALGS = ["ES256", "RS256", "EdDSA"]
#: Seconds a process serves the scopes it last read before reading them again.
SCOPES_TTL = 30.0


def build_metadata(settings: Settings, scopes: Sequence[str] = ()) -> dict[str, Any]:
    """Return the RFC 8414 metadata document for ``settings.issuer``.

    keyswap has no authorization endpoint, so no ``response_types_supported``: RFC 8414
    §3.2 says members with zero elements MUST be omitted.
    """
    issuer = settings.issuer
    document: dict[str, Any] = {
        "issuer": issuer,
        "token_endpoint": settings.token_endpoint,
        "jwks_uri": f"{issuer}/jwks.json",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "scopes_supported": sorted(set(scopes)),
        # RFC 9068 access tokens are signed with the active key's algorithm.
        "access_token_signing_alg_values_supported": list(SIGNING_ALGS),
        # draft-ietf-oauth-status-list-21 §9.3: every list's uri, for verifiers that prefetch.
        "status_list_aggregation_endpoint": f"{issuer}/statuslists",
        "service_documentation": "https://github.com/keyswap/keyswap#readme",
    }
    return {name: value for name, value in document.items() if value != []}


def metadata_bytes(settings: Settings, scopes: Sequence[str] = ()) -> bytes:
    """Return the metadata document serialised compactly."""
    return json.dumps(build_metadata(settings, scopes), separators=(",", ":")).encode()


class Discovery:
    """The serialised metadata document, rebuilt when its scopes are older than ``ttl``.

        ``read_scopes`` reads the scopes registered clients may request. If it fails, the last
        document is served (its scopes a little stale) and the next request tries again; with
        no document yet, the error propagates (a 503 for the database being down). Reading
    happens outside any lock: two requests may both read, and the last one's answer wins.
    """

    def __init__(
        self,
        settings: Settings,
        read_scopes: Callable[[], Sequence[str]],
        *,
        ttl: float = SCOPES_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._read_scopes = read_scopes
        self._ttl = ttl
        self._clock = clock
        self._cached: tuple[float, bytes] | None = None

    def document(self) -> bytes:
        """Return the current document, reading the scopes again if they are stale."""
        cached = self._cached
        now = self._clock()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            scopes = self._read_scopes()
        except SQLAlchemyError:
            if cached is None:
                raise
            log.warning("cannot read scopes for discovery; serving the last document")
            # Try again after another ttl, not on every request while the database is down.
            self._cached = (now, cached[1])
            return cached[1]
        # One assignment: concurrent requests see the old or the new pair, never a mix.
        self._cached = (now, metadata_bytes(self._settings, scopes))
        return self._cached[1]
