"""The error taxonomy (RFC 6749 §5.2, RFC 6750 §3, RFC 8693 §2.2.2): one root, two branches.

Every refusal the server sends is an ``OAuthError`` (the wire branch): a wire ``error``
code, an HTTP status, a public ``description`` worded as in CONTRACT.md, a private
``detail`` that is logged and never sent, a ``reason`` that labels metrics and log lines,
and headers. Everything else keyswap raises on purpose is a ``DomainError``: storage,
lifecycle, configuration and start-up say what is wrong, and the caller (a view, a
command) decides what the outside sees. This module imports no web framework: the one
renderer of wire errors is ``keyswap.issuer.rendering``.

    KeyswapError
    ├── DomainError
    │   ├── NotFound                a named tenant, user, client, key does not exist
    │   ├── Conflict                a duplicate, or a change its current state forbids
    │   ├── InvalidValue            a value out of its grammar (scope, audience, TTL, ...)
    │   ├── ConfigError             a setting missing or invalid (names the variable)
    │   ├── NoSigningKey            no active signing key (503 at the token endpoint)
    │   └── StartupError            the server cannot start
    ├── OAuthError
    │   ├── InvalidRequest          400 invalid_request
    │   ├── InvalidClient           401 invalid_client (with WWW-Authenticate)
    │   ├── InvalidGrant            400 invalid_grant
    │   ├── UnauthorizedClient      400/403 unauthorized_client
    │   ├── UnsupportedGrantType    400 unsupported_grant_type
    │   ├── InvalidScope            400 invalid_scope
    │   ├── InvalidTarget           400 invalid_target (RFC 8707)
    │   ├── InvalidToken            401 invalid_token (RFC 6750, admin API, with WWW-Authenticate)
    │   ├── InsufficientScope       403 insufficient_scope (RFC 6750, admin API)
    │   ├── ResourceNotFound        404 not_found (admin API)
    │   ├── ResourceConflict        409 conflict (admin API: a duplicate, or a final state)
    │   ├── UnprocessableValue      422 invalid_value (admin API: a well-formed but bad value)
    │   ├── RateLimited             429 temporarily_unavailable (with Retry-After)
    │   └── TemporarilyUnavailable  503 temporarily_unavailable (with Retry-After)
    └── ServerError                 500 server_error (the catch-all; never a stack trace)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

# Public descriptions (CONTRACT.md "Errors"). A caller that has not proved possession of a
# real credential learns nothing beyond CLIENT_AUTH_FAILED / UNKNOWN_API_KEY.
CLIENT_AUTH_FAILED = "client authentication failed"
UNKNOWN_API_KEY = "unknown API key"
API_KEY_EXPIRED = "the API key expired at {at}"
API_KEY_REVOKED = "the API key was revoked at {at}"
API_KEY_RETIRED = "this API key was retired on {date}; use client credentials"
SECRET_EXPIRED = "the client secret expired at {at}"
SECRET_REVOKED = "the client secret was revoked at {at}"
CLIENT_DISABLED = "the client was disabled at {at}"
OWNER_INACTIVE = "the user associated with this key is {status}"
TENANT_SUSPENDED = "the tenant {tenant} associated with this key is suspended"
SCOPE_NOT_ALLOWED = "scope not allowed for this client: {scopes}"
RESOURCE_NOT_ALLOWED = "resource not allowed for this client: {resource}"
ONE_RESOURCE_ONLY = "at most one resource may be requested"
RATE_LIMITED = "the caller is rate limited; retry after {seconds} seconds"
UNAVAILABLE = "the service is temporarily unavailable; retry later"
SERVER_ERROR = "the server failed to handle the request"
BEARER_REQUIRED = "a bearer access token from this issuer is required"
# Workload identity federation (jwt-bearer grant, RFC 7523 §2.1): what is wrong with the
# presented token, never which trusts exist for other workloads.
FEDERATION_UNTRUSTED_ISSUER = "the assertion's issuer is not trusted"
FEDERATION_NO_MATCH = "no federation trust matches the assertion's subject and claims"
FEDERATION_AMBIGUOUS = (
    "several federation trusts match the assertion; this is a configuration error"
)
FEDERATION_ISSUER_UNAVAILABLE = (
    "the keys of the assertion's issuer cannot be fetched now; retry later"
)
ASSERTION_MALFORMED = "the assertion is not a well-formed JWT with iss, sub, exp and kid"
ASSERTION_SIGNATURE = "the assertion's signature or algorithm is not valid"
ASSERTION_UNKNOWN_KEY = "the assertion's signing key is not published by its issuer"
ASSERTION_EXPIRED = "the assertion expired at {at}"
ASSERTION_FUTURE = "the assertion is not valid yet"
ASSERTION_LIFETIME = "the assertion's lifetime exceeds {seconds} seconds"
ASSERTION_AUDIENCE = "the assertion's audience does not name this server"
ASSERTION_REPLAYED = "the assertion was already used"

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def format_time(at: datetime) -> str:
    """Format a time for a public description: ISO 8601, UTC, whole seconds."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class KeyswapError(Exception):
    """Root of every error keyswap raises on purpose."""


class DomainError(KeyswapError):
    """A domain fact refused: the web layer or the CLI decides how it is shown."""


class NotFound(DomainError, LookupError):
    """A named tenant, user or client does not exist."""


class Conflict(DomainError, ValueError):
    """The object already exists, or the change is not allowed in its current state."""


class InvalidValue(DomainError, ValueError):
    """A value is outside its grammar or range; the message says which and why."""


class ConfigError(DomainError, ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


class NoSigningKey(DomainError, RuntimeError):
    """No active signing key: run ``keyswap keys rotate`` or start ``keyswap serve``."""


class StartupError(DomainError, RuntimeError):
    """The server cannot start; the message says why and what to do."""


class OAuthError(KeyswapError):
    """An error answered to the caller as an RFC 6749 §5.2 JSON body."""

    error = "invalid_request"
    status = 400
    reason = "invalid_request"

    def __init__(
        self,
        description: str,
        *,
        detail: str | None = None,
        reason: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.detail = detail
        if reason is not None:
            self.reason = reason
        if status is not None:
            self.status = status
        self.headers: dict[str, str] = dict(headers or {})
        #: The authenticated client, when there was one: for logs, never for the body.
        self.client_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.error!r}, {self.description!r}, reason={self.reason!r})"
        )

    def body(self) -> dict[str, str]:
        """Return the public JSON body: the wire code and the description."""
        return {"error": self.error, "error_description": self.description}


class InvalidRequest(OAuthError):
    """The request is malformed, or (token exchange) the subject token is refused."""

    error = "invalid_request"
    reason = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed, or the proved credential is not usable."""

    error = "invalid_client"
    status = 401
    reason = "invalid_client"

    def __init__(self, description: str = CLIENT_AUTH_FAILED, **kwargs: object) -> None:
        super().__init__(description, **kwargs)  # type: ignore[arg-type]
        # RFC 6749 §5.2: a 401 MUST carry WWW-Authenticate matching the scheme used.
        self.headers.setdefault("WWW-Authenticate", 'Basic realm="keyswap"')


class InvalidGrant(OAuthError):
    """The credential is real but policy refuses issuance (owner or tenant not active)."""

    error = "invalid_grant"
    reason = "invalid_grant"


class UnauthorizedClient(OAuthError):
    """The authenticated client may not use this grant or endpoint."""

    error = "unauthorized_client"
    reason = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    """The grant type is not one this server supports."""

    error = "unsupported_grant_type"
    reason = "unsupported_grant_type"


class UnsupportedTokenType(OAuthError):
    """A ``token_type_hint`` names a kind of token this server does not have (RFC 7009 §2.2.1)."""

    error = "unsupported_token_type"
    reason = "unsupported_token_type"


class InvalidScope(OAuthError):
    """A requested scope is unknown or not allowed for the credential."""

    error = "invalid_scope"
    reason = "scope_not_allowed"


class InvalidTarget(OAuthError):
    """The requested resource is not one of the credential's audiences (RFC 8707 §2)."""

    error = "invalid_target"
    reason = "resource_not_allowed"


class InvalidToken(OAuthError):
    """The admin API's bearer token is missing, not one of ours, or no longer active."""

    error = "invalid_token"
    status = 401
    reason = "invalid_token"

    def __init__(self, description: str = BEARER_REQUIRED, **kwargs: object) -> None:
        super().__init__(description, **kwargs)  # type: ignore[arg-type]
        # RFC 6750 §3: a 401 names the Bearer scheme and the error.
        self.headers.setdefault("WWW-Authenticate", f'Bearer realm="keyswap", error="{self.error}"')


class InsufficientScope(OAuthError):
    """The bearer token is live but lacks the scope the request needs (RFC 6750 §3.1)."""

    error = "insufficient_scope"
    status = 403
    reason = "insufficient_scope"


class ResourceNotFound(OAuthError):
    """The named object does not exist, or lies in a tenant the caller may not see."""

    error = "not_found"
    status = 404
    reason = "not_found"


class ResourceConflict(OAuthError):
    """The object already exists, or its state does not allow the change."""

    error = "conflict"
    status = 409
    reason = "conflict"


class UnprocessableValue(OAuthError):
    """A well-formed request carries a value keyswap refuses; the description says which."""

    error = "invalid_value"
    status = 422
    reason = "invalid_value"


class RateLimited(OAuthError):
    """Too many requests; answered 429 so it is never mistaken for an identity error."""

    error = "temporarily_unavailable"
    status = 429
    reason = "rate_limited"

    def __init__(self, retry_after: int, **kwargs: object) -> None:
        super().__init__(RATE_LIMITED.format(seconds=retry_after), **kwargs)  # type: ignore[arg-type]
        self.headers["Retry-After"] = str(retry_after)


class TemporarilyUnavailable(OAuthError):
    """The live status cannot be read (database down): nothing is issued."""

    error = "temporarily_unavailable"
    status = 503
    reason = "unavailable"

    def __init__(self, description: str = UNAVAILABLE, *, retry_after: int = 5, **kwargs: object):
        super().__init__(description, **kwargs)  # type: ignore[arg-type]
        self.headers["Retry-After"] = str(retry_after)


class ServerError(OAuthError):
    """An unexpected failure, answered without any internal detail."""

    error = "server_error"
    status = 500
    reason = "server_error"

    def __init__(self, description: str = SERVER_ERROR, **kwargs: object) -> None:
        super().__init__(description, **kwargs)  # type: ignore[arg-type]
