"""Bearer tokens in requests (RFC 6750): read the header, check scopes, render refusals.

Framework-neutral pieces that ``keyswap.clients.flask``, ``keyswap.clients.wsgi`` and
``keyswap.clients.asgi`` share,
and that wrappers such as a legacy-key shim reuse: ``bearer_token`` takes the token out of
an ``Authorization`` header, ``authenticate`` turns the header into a ``Principal`` (or
raises), ``render_error`` gives the status, headers and body of the refusal, and
``BearerGuard`` is the middlewares' common constructor.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import InsufficientScope, InvalidToken, KeyswapClientError, TokenError
from .verifier import Principal, Verifier

log = logging.getLogger(__name__)
AppT = TypeVar("AppT")

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 6750 §3: error_description and scope use %x20-21 / %x23-5B / %x5D-7E only.
_UNQUOTABLE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """An RFC 6750 refusal: status, headers (with ``WWW-Authenticate``) and JSON body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def status_line(self) -> str:
        """Return the WSGI status line, e.g. ``401 Unauthorized``."""
        return f"{self.status} {_REASONS[self.status]}"


_REASONS = {401: "Unauthorized", 403: "Forbidden", 503: "Service Unavailable"}


def normalize_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    """Return required scopes as a tuple; a string is space-separated (RFC 6749 §3.3)."""
    return tuple(scopes.split()) if isinstance(scopes, str) else tuple(scopes)


def bearer_token(authorization: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer`` header; None if there is none.

    Another scheme counts as no bearer token (RFC 6750 §3: the answer is a bare
    challenge); a ``Bearer`` header without a well-formed token is ``InvalidToken``.
    """
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not _B64TOKEN.fullmatch(token):
        raise InvalidToken("the Authorization header holds no well-formed bearer token")
    return token


def check_scopes(principal: Principal, required: tuple[str, ...]) -> Principal:
    """Return ``principal`` if it holds every ``required`` scope; else ``InsufficientScope``."""
    if required and not principal.scopes.issuperset(required):
        raise InsufficientScope(required)
    return principal


def authenticate(
    verifier: Verifier,
    authorization: str | None,
    scopes: tuple[str, ...] = (),
    *,
    audience: str | Iterable[str] | None = None,
    introspect: bool = False,
) -> Principal | None:
    """Turn an ``Authorization`` header into a ``Principal``; None when it holds no token.

    Raises ``InvalidToken``, ``InsufficientScope``, or ``TokenError`` when the issuer's
    keys or introspection answer are unavailable.
    """
    token = bearer_token(authorization)
    if token is None:
        return None
    principal = verifier.verify(token, audience=audience, introspect=introspect)
    return check_scopes(principal, scopes)


class BearerGuard(Generic[AppT]):
    """What a bearer-token middleware wraps and checks: the app, verifier, scopes, realm.

    ``keyswap.clients.wsgi.BearerMiddleware`` and ``keyswap.clients.asgi.BearerASGIMiddleware``
    share this constructor; each adds only the calling convention of its server interface.
    """

    def __init__(
        self,
        app: AppT,
        verifier: Verifier,
        *,
        scopes: str | Iterable[str] = (),
        realm: str | None = None,
        allow_anonymous: bool = False,
        introspect: bool = False,
    ) -> None:
        """Guard ``app`` with ``verifier``; ``realm`` defaults to the first audience."""
        self.app = app
        self.verifier = verifier
        self.scopes = normalize_scopes(scopes)
        self.realm = realm or verifier.audiences[0]
        self.allow_anonymous = allow_anonymous
        self.introspect = introspect


def _quoted(value: str) -> str:
    return '"' + _UNQUOTABLE.sub("?", value) + '"'


def challenge(realm: str, error: KeyswapClientError | None = None) -> str:
    """Return the ``WWW-Authenticate`` value for ``error`` (RFC 6750 §3)."""
    parts = [f"Bearer realm={_quoted(realm)}"]
    if isinstance(error, InvalidToken | InsufficientScope):
        parts.append(f"error={_quoted(error.error)}")
        parts.append(f"error_description={_quoted(str(error))}")
    if isinstance(error, InsufficientScope):
        parts.append(f"scope={_quoted(' '.join(error.required))}")
    return ", ".join(parts)


def render_error(realm: str, error: KeyswapClientError | None = None) -> ErrorResponse:
    """Return the response refusing a request: no token, a bad one, a missing scope.

    No token (``error`` None) is a bare 401 challenge with no error code (RFC 6750 §3.1);
    ``InvalidToken`` is 401, ``InsufficientScope`` 403; an issuer that cannot be reached
    (``TokenError``) is 503, since the token may well be good.
    """
    if isinstance(error, TokenError):
        log.warning("cannot verify a bearer token: %s", error)
        body = {"error": "temporarily_unavailable", "error_description": "try again later"}
        headers = [("Content-Type", "application/json"), ("Retry-After", "5")]
        return ErrorResponse(503, tuple(headers), json.dumps(body).encode())
    status = 403 if isinstance(error, InsufficientScope) else 401
    if isinstance(error, InvalidToken | InsufficientScope):
        body = {"error": error.error, "error_description": str(error)}
    else:
        body = {"error_description": "a bearer token is required"}
    headers = [
        ("WWW-Authenticate", challenge(realm, error)),
        ("Content-Type", "application/json"),
        ("Cache-Control", "no-store"),
    ]
    return ErrorResponse(status, tuple(headers), json.dumps(body).encode())
