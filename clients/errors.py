"""Errors raised by keyswap's Python clients.

::

    KeyswapClientError
    ├── TokenError                 the issuer refused or could not issue a token
    │   ├── TokenRefused           4xx: the issuer's ``error`` and ``error_description``
    │   └── IssuerUnavailable      5xx, 429 or a network failure, after retries
    └── InvalidToken               a bearer token failed verification (RFC 6750 ``invalid_token``)
        ├── ExpiredToken           ``exp`` is past (with leeway)
        ├── UnknownKey             no key in the issuer's JWKS matches the token's ``kid``
        └── RevokedToken           the token's status list entry says it is invalid

``InsufficientScope`` (RFC 6750 ``insufficient_scope``) is raised by framework glue when a
valid token lacks a required scope.
"""

from __future__ import annotations


class KeyswapClientError(Exception):
    """Base class of every error raised by ``clients``."""


class TokenError(KeyswapClientError):
    """The issuer did not give a token."""

    def __init__(
        self,
        error: str,
        description: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.error = error
        self.description = description
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"{error}: {description}" if description else error)


class TokenRefused(TokenError):
    """The issuer answered 4xx; ``error`` and ``description`` are its own words (RFC 6749 §5.2)."""


class IssuerUnavailable(TokenError):
    """The issuer answered 5xx or 429, or could not be reached, and retries ran out."""


class InvalidToken(KeyswapClientError):
    """A bearer token failed verification; the message says why (never the token)."""

    error = "invalid_token"


class ExpiredToken(InvalidToken):
    """The token's ``exp`` is past."""


class UnknownKey(InvalidToken):
    """No key in the issuer's JWKS has the token's ``kid``, even after a refresh."""


class RevokedToken(InvalidToken):
    """The token's entry in its issuer's status list is set (draft-ietf-oauth-status-list)."""


class InsufficientScope(KeyswapClientError):
    """A valid token lacks a scope the resource requires (RFC 6750 §3.1)."""

    error = "insufficient_scope"

    def __init__(self, required: tuple[str, ...] | list[str]) -> None:
        self.required = tuple(required)
        super().__init__(f"the token lacks scope {' '.join(self.required)}")
