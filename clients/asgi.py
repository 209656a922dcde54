"""ASGI glue: a bearer-token middleware, and a dependency for Starlette endpoints.

::

    app = BearerASGIMiddleware(app, Verifier(ISSUER, AUDIENCE), scopes="orders:read")
    # in a handler: scope["keyswap.principal"], or Starlette's request.state.principal

The middleware is plain ASGI and needs no framework. Verification is CPU-only once the
issuer's keys are cached, so it runs on the event loop; a JWKS or metadata fetch, or an
introspection request, runs in a worker thread so the loop never waits on the network.
``TokenDependency`` is for Starlette: ``principal = await require(request)`` raises
Starlette's ``HTTPException`` carrying the RFC 6750 challenge.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Protocol, TypeVar

from .bearer import (
    BearerGuard,
    ErrorResponse,
    bearer_token,
    check_scopes,
    normalize_scopes,
    render_error,
)
from .errors import InsufficientScope, InvalidToken, TokenError
from .verifier import Principal, Verifier

SCOPE_KEY = "keyswap.principal"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T")


async def _in_thread(call: Callable[[], T]) -> T:
    try:
        import anyio.to_thread
    except ImportError:  # plain asyncio servers need no anyio
        import asyncio

        return await asyncio.to_thread(call)
    return await anyio.to_thread.run_sync(call)


async def authenticate_async(
    verifier: Verifier,
    authorization: str | None,
    scopes: tuple[str, ...] = (),
    *,
    audience: str | Iterable[str] | None = None,
    introspect: bool = False,
) -> Principal | None:
    """Turn an ``Authorization`` header into a ``Principal`` without blocking the loop.

    None when there is no bearer token; raises like ``keyswap.clients.bearer.authenticate``.
    """
    token = bearer_token(authorization)
    if token is None:
        return None
    principal = None if introspect else verifier.verify_cached(token, audience=audience)
    if principal is None:
        principal = await _in_thread(
            functools.partial(verifier.verify, token, audience=audience, introspect=introspect)
        )
    return check_scopes(principal, scopes)


def _authorization(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            return bytes(value).decode("latin-1")
    return None


class BearerASGIMiddleware(BearerGuard[ASGIApp]):
    """Refuses HTTP and WebSocket requests without a valid bearer token holding ``scopes``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Verify the token of HTTP and WebSocket connections; pass anything else through."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            principal = await authenticate_async(
                self.verifier, _authorization(scope), self.scopes, introspect=self.introspect
            )
        except (InvalidToken, InsufficientScope, TokenError) as exc:
            await _refuse(scope, send, render_error(self.realm, exc))
            return
        if principal is None and not self.allow_anonymous:
            await _refuse(scope, send, render_error(self.realm))
            return
        scope[SCOPE_KEY] = principal
        # Starlette's request.state reads scope["state"]; copy so lifespan state stays shared.
        scope["state"] = {**scope.get("state", {}), "principal": principal}
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, send: Send, refusal: ErrorResponse) -> None:
    if scope["type"] == "websocket":
        # ASGI: a close before accept makes the server answer 403; 1008 is policy violation.
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = [(k.lower().encode(), v.encode()) for k, v in refusal.headers]
    headers.append((b"content-length", str(len(refusal.body)).encode()))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.body})


class _Connection(Protocol):
    @property
    def scope(self) -> Scope: ...


class TokenDependency:
    """An awaitable check for Starlette endpoints: ``principal = await require(request)``."""

    def __init__(
        self,
        verifier: Verifier,
        scopes: str | Iterable[str] = (),
        *,
        audience: str | Iterable[str] | None = None,
        realm: str | None = None,
        introspect: bool = False,
    ) -> None:
        """Require a valid token from ``verifier`` holding ``scopes``."""
        self.verifier = verifier
        self.scopes = normalize_scopes(scopes)
        self.audience = audience
        self.realm = realm or verifier.audiences[0]
        self.introspect = introspect

    async def __call__(self, request: _Connection) -> Principal:
        """Return the request's principal; raise Starlette's ``HTTPException`` to refuse.

        A principal the middleware already verified is reused when no other audience or
        introspection is asked for.
        """
        from starlette.exceptions import HTTPException

        scope = request.scope
        known = scope.get(SCOPE_KEY)
        principal: Principal | None
        try:
            if isinstance(known, Principal) and self.audience is None and not self.introspect:
                return check_scopes(known, self.scopes)
            principal = await authenticate_async(
                self.verifier,
                _authorization(scope),
                self.scopes,
                audience=self.audience,
                introspect=self.introspect,
            )
            refusal = render_error(self.realm) if principal is None else None
        except (InvalidToken, InsufficientScope, TokenError) as exc:
            principal, refusal = None, render_error(self.realm, exc)
        if principal is None:
            assert refusal is not None
            headers = {k: v for k, v in refusal.headers if k != "Content-Type"}
            raise HTTPException(refusal.status, refusal.body.decode(), headers=headers)
        return principal
