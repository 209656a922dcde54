"""Access tokens: RFC 9068 claims, RFC 8707 resource → ``aud``, scope narrowing, TTL clamp.

Protocol code only: values in, a signed JWT and its claims out.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keyswap.jwks import KeyPair

from .errors import (
    ONE_RESOURCE_ONLY,
    RESOURCE_NOT_ALLOWED,
    SCOPE_NOT_ALLOWED,
    InvalidScope,
    InvalidTarget,
)
from .status_lists import StatusEntry

# RFC 9068 §2.1: the header "typ" MUST be "at+jwt".
ACCESS_TOKEN_TYP = "at+jwt"
ACCESS_TOKEN_TYPE_URN = "urn:ietf:params:oauth:token-type:access_token"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A signed access token, its claims, and its lifetime in seconds."""

    jwt: str
    claims: Mapping[str, Any]
    expires_in: int

    def response_body(self, scope: str) -> dict[str, Any]:
        """Return the RFC 6749 §5.1 success body."""
        return {
            "access_token": self.jwt,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": scope,
        }


def resolve_scopes(requested: str | None, allowed: Sequence[str]) -> list[str]:
    """Return the granted scopes: all allowed when none asked, else the asked subset.

    RFC 6749 §3.3: scope is a space-delimited list; an unknown or disallowed one is
    ``invalid_scope``, and the description names each such scope.
    """
    if requested is None:
        return list(allowed)
    asked = list(dict.fromkeys(requested.split()))
    if not asked:
        return list(allowed)
    refused = [s for s in asked if s not in allowed]
    if refused:
        raise InvalidScope(SCOPE_NOT_ALLOWED.format(scopes=" ".join(refused)))
    return asked


def resolve_audience(
    resources: Sequence[str], audiences: Sequence[str], default_audience: str
) -> str:
    """Return the token's ``aud`` for the requested RFC 8707 ``resource`` values.

    keyswap mints one audience per token, so several resources are ``invalid_target``
    (RFC 8707 §2 lets the server refuse what it cannot honour). With no resource the
    credential's first audience, or the server default, is used.
    """
    if len(resources) > 1:
        raise InvalidTarget(ONE_RESOURCE_ONLY)
    if not resources:
        return audiences[0] if audiences else default_audience
    resource = resources[0]
    allowed = audiences or (default_audience,)
    if resource not in allowed:
        raise InvalidTarget(RESOURCE_NOT_ALLOWED.format(resource=resource))
    return resource


def clamp_ttl(requested: int | None, default: int, maximum: int) -> int:
    """Return the token lifetime: the credential's own, else the default, at most ``maximum``."""
    ttl = default if requested is None else requested
    return max(1, min(ttl, maximum))


def mint_access_token(
    *,
    signer: KeyPair,
    issuer: str,
    subject: str,
    audience: str,
    client_id: str,
    scopes: Sequence[str],
    tenant: str,
    now: int,
    ttl: int,
    extra: Mapping[str, Any] | None = None,
    status: StatusEntry | None = None,
) -> IssuedToken:
    """Sign an RFC 9068 access token and return it with its claims.

    ``status`` is the token's status list entry: it becomes the ``status`` claim, and the
    ``jti`` ends with it so that a revocation by jti alone finds the entry.
    """
    jti = secrets.token_urlsafe(16)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": now + ttl,
        "iat": now,
        "nbf": now,
        "jti": jti if status is None else jti + status.jti_suffix(),
        "client_id": client_id,
        "scope": " ".join(scopes),
        "tenant": tenant,
    }
    if status is not None:
        claims["status"] = status.claim(issuer)
    if extra:
        claims.update(extra)
    return IssuedToken(jwt=signer.sign(claims, typ=ACCESS_TOKEN_TYP), claims=claims, expires_in=ttl)
