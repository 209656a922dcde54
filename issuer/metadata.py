"""Authorization server metadata (RFC 8414 §2), also served as OIDC discovery.

The document lists only what keyswap really supports, and omits members that would be
empty (RFC 8414 §3.2). Grant types, client authentication methods and algorithms are read
from what is registered on the Authlib server (``Supported.of``), so discovery cannot say
what the token endpoint does not do. ``scopes_supported`` is derived from the registered
clients, so ``Discovery`` re-reads it at most every ``ttl`` seconds, on a discovery
request: the token endpoint never waits on it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer
from sqlalchemy.exc import SQLAlchemyError

from keyswap.jwks import ALGORITHMS

from .client_auth import ASSERTION_ALGORITHMS
from .config import Settings
from .models import AuthMethod

log = logging.getLogger(__name__)

#: Seconds a process serves the scopes it last read before reading them again.
SCOPES_TTL = 30.0


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class Supported:
    """What the token, revocation and introspection endpoints accept, as registered."""

    grant_types: tuple[str, ...]
    token_auth_methods: tuple[str, ...]
    revocation_auth_methods: tuple[str, ...]
    introspection_auth_methods: tuple[str, ...]

    @classmethod
    def of(cls, server: AuthorizationServer) -> Supported:
        """Read the grants and endpoints registered on ``server``, in registration order.

        Authlib keeps them in ``_token_grants`` and ``_endpoints`` (it has no public
        reader); a grant's accepted methods are its ``TOKEN_ENDPOINT_AUTH_METHODS``, an
        endpoint's its ``CLIENT_AUTH_METHODS``.
        """
        grants = [grant for grant, _extensions in server._token_grants]
        endpoints = server._endpoints

        def endpoint_methods(name: str) -> tuple[str, ...]:
            return _unique(m for e in endpoints.get(name, ()) for m in e.CLIENT_AUTH_METHODS)

        return cls(
            grant_types=_unique(grant.GRANT_TYPE for grant in grants),
            token_auth_methods=_unique(
                m for grant in grants for m in grant.TOKEN_ENDPOINT_AUTH_METHODS
            ),
            revocation_auth_methods=endpoint_methods("revocation"),
            introspection_auth_methods=endpoint_methods("introspection"),
        )

    def assertion_algorithms(self) -> list[str]:
        """Return the client assertion algorithms, if any endpoint takes ``private_key_jwt``."""
        methods = {
            *self.token_auth_methods,
            *self.revocation_auth_methods,
            *self.introspection_auth_methods,
        }
        return list(ASSERTION_ALGORITHMS) if AuthMethod.PRIVATE_KEY_JWT in methods else []


def build_metadata(
    settings: Settings, supported: Supported, scopes: Sequence[str] = ()
) -> dict[str, Any]:
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
        "revocation_endpoint_auth_methods_supported": list(supported.revocation_auth_methods),
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "introspection_endpoint_auth_methods_supported": list(supported.introspection_auth_methods),
        "grant_types_supported": list(supported.grant_types),
        "token_endpoint_auth_methods_supported": list(supported.token_auth_methods),
        "token_endpoint_auth_signing_alg_values_supported": supported.assertion_algorithms(),
        "scopes_supported": sorted(set(scopes)),
        # RFC 9068 access tokens are signed with the active key's algorithm.
        "access_token_signing_alg_values_supported": list(ALGORITHMS),
        # draft-ietf-oauth-status-list-21 §9.3: every list's uri, for verifiers that prefetch.
        "status_list_aggregation_endpoint": f"{issuer}/statuslists",
        "service_documentation": "https://github.com/keyswap/keyswap#readme",
    }
    return {name: value for name, value in document.items() if value != []}


def metadata_bytes(settings: Settings, supported: Supported, scopes: Sequence[str] = ()) -> bytes:
    """Return the metadata document serialised compactly."""
    return json.dumps(build_metadata(settings, supported, scopes), separators=(",", ":")).encode()


class Discovery:
    """``server``'s metadata document, serialised, rebuilt when its scopes are older than ``ttl``.

        ``read_scopes`` reads the scopes registered clients may request. If it fails, the last
        document is served (its scopes a little stale) and the next request tries again; with
        no document yet, the error propagates (a 503 for the database being down). Reading
    happens outside any lock: two requests may both read, and the last one's answer wins.
    """

    def __init__(
        self,
        settings: Settings,
        server: AuthorizationServer,
        read_scopes: Callable[[], Sequence[str]],
        *,
        ttl: float = SCOPES_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._server = server
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
        supported = Supported.of(self._server)
        self._cached = (now, metadata_bytes(self._settings, supported, scopes))
        return self._cached[1]
