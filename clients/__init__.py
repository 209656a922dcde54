"""keyswap clients: the token client services import, the verifier resource servers import.

Imports nothing from the rest of this repository; Flask is needed only by ``keyswap.clients.flask``,
httpx only by ``keyswap.clients.httpx_auth``.
"""

from __future__ import annotations

from .backoff import RetryPolicy
from .errors import (
    ExpiredToken,
    InsufficientScope,
    InvalidToken,
    IssuerUnavailable,
    KeyswapClientError,
    RevokedToken,
    TokenError,
    TokenRefused,
    UnknownKey,
)
from .introspection import Introspector
from .jwks_cache import JWKSCache
from .token_cache import AccessToken, TokenCache
from .token_client import TokenClient
from .verifier import Principal, Verifier
from .workload_token import WorkloadToken

__all__ = [
    "ExpiredToken",
    "InsufficientScope",
    "InvalidToken",
    "IssuerUnavailable",
    "KeyswapClientError",
    "RevokedToken",
    "TokenError",
    "TokenRefused",
    "UnknownKey",
    "Introspector",
    "JWKSCache",
    "Principal",
    "Verifier",
    "AccessToken",
    "RetryPolicy",
    "TokenCache",
    "TokenClient",
    "WorkloadToken",
]
