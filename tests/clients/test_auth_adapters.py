"""BearerAuth for requests and httpx (sync and async), end to end: live issuer, a protected API
that verifies tokens with PyJWT and the JWKS, one refresh on invalid_token, never a loop."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import requests

from keyswap.clients import TokenClient
from keyswap.clients.httpx_auth import BearerAuth as HttpxBearerAuth
from keyswap.clients.requests_auth import BearerAuth as RequestsBearerAuth
from keyswap.clients.requests_auth import is_invalid_token_challenge

from .token_servers import IssuerFront, ProtectedApi, serving, tokens_issued


@pytest.fixture
def api(live_issuer):
    """A protected API trusting the live issuer."""
    with serving(ProtectedApi(live_issuer.url)) as api:
        yield api


@pytest.fixture
def token_client(live_issuer):
    """A token client for a fresh client of the live issuer."""
    creds = live_issuer.create_client()
    with TokenClient.from_issuer(
        live_issuer.url, client_id=creds.client_id, client_secret=creds.client_secret
    ) as client:
        yield client


def _reject_current_token(api, client):
    """Make the API refuse the token now cached, as if it had been revoked."""
    api.rejected_jtis.add(_jti(client))


def _jti(client):
    import jwt

    token = client.get_token().access_token
    return jwt.decode(token, options={"verify_signature": False})["jti"]


# --- requests ------------------------------------------------------------------------


def test_requests_adapter_reaches_the_protected_api_with_one_issuance(
    live_issuer, api, token_client
):
    before = tokens_issued(live_issuer.url)
    with requests.Session() as session:
        session.auth = RequestsBearerAuth(token_client)
        responses = [session.get(f"{api.url}/orders", timeout=10) for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    assert {r.json()["client_id"] for r in responses} == {token_client.client_id}
    assert tokens_issued(live_issuer.url) - before == 1


def test_requests_adapter_refreshes_once_on_invalid_token(live_issuer, api, token_client):
    _reject_current_token(api, token_client)
    before = tokens_issued(live_issuer.url)
    with requests.Session() as session:
        session.auth = RequestsBearerAuth(token_client)
        response = session.post(f"{api.url}/orders", data=b"order=42", timeout=10)
    assert response.status_code == 200
    assert response.json()["body"] == "order=42"  # the body was sent again
    assert [r.status_code for r in response.history] == [401]
    assert len(api.seen) == 2 and api.seen[0] is None
    assert tokens_issued(live_issuer.url) - before == 1


def test_requests_adapter_does_not_loop_on_a_second_401(live_issuer, api, token_client):
    api.mode = "reject"
    before = tokens_issued(live_issuer.url)
    response = requests.get(f"{api.url}/orders", auth=RequestsBearerAuth(token_client), timeout=10)
    assert response.status_code == 401
    assert len(api.seen) == 2  # the first try and one retry
    assert tokens_issued(live_issuer.url) - before == 2  # the first token and one refresh


def test_requests_adapter_leaves_a_401_without_invalid_token_alone(live_issuer, api, token_client):
    api.mode = "bare-401"
    before = tokens_issued(live_issuer.url)
    response = requests.get(f"{api.url}/orders", auth=RequestsBearerAuth(token_client), timeout=10)
    assert response.status_code == 401
    assert len(api.seen) == 1
    assert tokens_issued(live_issuer.url) - before == 1


def test_invalid_token_challenge_is_recognised_only_for_bearer():
    assert is_invalid_token_challenge('Bearer realm="api", error="invalid_token"')
    assert is_invalid_token_challenge('Basic realm="x", Bearer error=invalid_token')
    assert not is_invalid_token_challenge('Bearer realm="api", error="insufficient_scope"')
    assert not is_invalid_token_challenge('Bearer realm="api"')
    assert not is_invalid_token_challenge(None)


# --- httpx, sync ---------------------------------------------------------------------


def test_httpx_adapter_refreshes_once_on_invalid_token(live_issuer, api, token_client):
    with httpx.Client(auth=HttpxBearerAuth(token_client), timeout=10) as http:
        assert http.get(f"{api.url}/orders").status_code == 200
        _reject_current_token(api, token_client)
        before = tokens_issued(live_issuer.url)
        response = http.post(f"{api.url}/orders", content=b"order=42")
    assert response.status_code == 200
    assert response.json()["body"] == "order=42"
    assert [r.status_code for r in response.history] == [401]
    assert tokens_issued(live_issuer.url) - before == 1
    assert len(api.seen) == 3


def test_httpx_adapter_does_not_loop_on_a_second_401(live_issuer, api, token_client):
    api.mode = "reject"
    with httpx.Client(auth=HttpxBearerAuth(token_client), timeout=10) as http:
        response = http.get(f"{api.url}/orders")
    assert response.status_code == 401
    assert len(api.seen) == 2


# --- httpx, async --------------------------------------------------------------------


def test_httpx_async_adapter_end_to_end(live_issuer, api, token_client):
    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(auth=HttpxBearerAuth(token_client), timeout=10) as http:
            # Ten concurrent requests on an empty cache: one fetch, in a worker thread.
            first = await asyncio.gather(*(http.get(f"{api.url}/orders") for _ in range(10)))
            await asyncio.to_thread(_reject_current_token, api, token_client)
            retried = await http.post(f"{api.url}/orders", content=b"order=7")
            return [*first, retried]

    before = tokens_issued(live_issuer.url)
    responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [200] * 11
    assert responses[-1].json()["body"] == "order=7"
    assert [r.status_code for r in responses[-1].history] == [401]
    assert tokens_issued(live_issuer.url) - before == 2  # one for the ten, one refresh


def test_httpx_async_adapter_does_not_block_the_event_loop(live_issuer, api):
    creds = live_issuer.create_client()
    with serving(IssuerFront(live_issuer.url)) as front:
        front.delay = 0.5  # a slow issuer
        client = TokenClient(
            front.token_url, client_id=creds.client_id, client_secret=creds.client_secret
        )
        ticks = 0

        async def ticker(stop: asyncio.Event) -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        async def scenario() -> httpx.Response:
            stop = asyncio.Event()
            beat = asyncio.create_task(ticker(stop))
            async with httpx.AsyncClient(auth=HttpxBearerAuth(client), timeout=10) as http:
                response = await http.get(f"{api.url}/orders")
            stop.set()
            await beat
            return response

        response = asyncio.run(scenario())
    assert response.status_code == 200
    # The loop kept running while the token was fetched (a blocked loop ticks once).
    assert ticks >= 20
