"""Authorization server metadata (RFC 8414 §2), also served as OIDC discovery.

The document lists only what keyswap really supports. It is built once per app; the
view serves prebuilt bytes.
"""

from __future__ import annotations

import json
from typing import Any

from .config import Settings

GRANT_TYPES = ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"]
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
ASSERTION_ALGS = ["ES256", "ES384", "RS256", "PS256", "Ed25519", "EdDSA"]
SIGNING_ALGS = ["ES256", "RS256", "EdDSA"]


def build_metadata(settings: Settings) -> dict[str, Any]:
    """Return the RFC 8414 metadata document for ``settings.issuer``."""
    issuer = settings.issuer
    return {
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
        # keyswap has no authorization endpoint, so no response type is supported.
        "response_types_supported": [],
        "scopes_supported": [],
        # RFC 9068 access tokens are signed with the active key's algorithm.
        "access_token_signing_alg_values_supported": list(SIGNING_ALGS),
        "service_documentation": "https://github.com/keyswap/keyswap#readme",
    }


def metadata_bytes(settings: Settings) -> bytes:
    """Return the metadata document serialised once."""
    return json.dumps(build_metadata(settings), separators=(",", ":")).encode()
