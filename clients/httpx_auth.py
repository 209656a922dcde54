"""Bearer authentication for ``httpx`` (sync and async), refreshed once on ``invalid_token``.

::

    auth = BearerAuth(TokenClient.from_issuer(ISSUER, client_id=ID, client_secret=SECRET))
    httpx.get("https://orders.example/orders", auth=auth)
    async with httpx.AsyncClient(auth=auth) as client:
        await client.get("https://orders.example/orders")

The token client is synchronous (it shares one cache and one refresh in flight across
threads); under ``AsyncClient`` a cached token is read directly, and only a fetch runs in a
worker thread (``anyio.to_thread``, so asyncio and trio both work) to keep the event loop
free. On a 401 with a Bearer ``error="invalid_token"`` challenge (RFC 6750 §3.1) the token is
dropped, a new one fetched, and the request sent once more.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import anyio.to_thread
import httpx

from .requests_auth import bearer_value, is_invalid_token_challenge
from .token_cache import AccessToken
from .token_client import Scope, TokenClient


class BearerAuth(httpx.Auth):
    """Add a keyswap access token to each request; refresh and resend once if it is rejected."""

    # The body is read up front so that the one retry can send it again.
    requires_request_body = True

    def __init__(
        self, client: TokenClient, *, scope: Scope = None, resource: str | None = None
    ) -> None:
        """Use ``client``'s tokens for ``scope`` and ``resource`` (its defaults if None)."""
        self.client = client
        self.scope = scope
        self.resource = resource

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """Send with a token; on ``invalid_token``, refresh and send once more."""
        request.read()
        response = yield _authorized(request, self._get())
        if _is_rejected(response):
            self._drop(request)
            yield _authorized(request, self._get())

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send with a token, fetched off the event loop; on ``invalid_token``, retry once."""
        await request.aread()
        response = yield _authorized(request, await self._aget())
        if _is_rejected(response):
            self._drop(request)
            yield _authorized(request, await self._aget())

    def _get(self) -> AccessToken:
        return self.client.get_token(self.scope, self.resource)

    async def _aget(self) -> AccessToken:
        cached = self.client.cached_token(self.scope, self.resource)
        if cached is not None:
            return cached
        return await anyio.to_thread.run_sync(self._get)

    def _drop(self, request: httpx.Request) -> None:
        rejected = bearer_value(request.headers.get("Authorization"))
        self.client.invalidate(self.scope, self.resource, access_token=rejected)


def _authorized(request: httpx.Request, token: AccessToken) -> httpx.Request:
    request.headers["Authorization"] = f"Bearer {token.access_token}"
    return request


def _is_rejected(response: httpx.Response) -> bool:
    return response.status_code == 401 and is_invalid_token_challenge(
        response.headers.get("WWW-Authenticate")
    )
