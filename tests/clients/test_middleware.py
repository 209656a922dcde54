"""keyswap.clients.wsgi and keyswap.clients.asgi end to end: a guarded app, tokens from a live
issuer."""

from __future__ import annotations

import asyncio
import json
import warnings

import pytest
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from werkzeug.test import Client

from keyswap.clients import Verifier
from keyswap.clients.asgi import SCOPE_KEY, BearerASGIMiddleware, TokenDependency
from keyswap.clients.bearer import render_error
from keyswap.clients.errors import InvalidToken
from keyswap.clients.wsgi import ENVIRON_KEY, BearerMiddleware

with warnings.catch_warnings():
    # Starlette >= 1.x prefers httpx2 for its TestClient and warns once, at import, when
    # only httpx (the dev extra's) is installed; the client works the same with either.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

REALM = "orders"


def _token(issuer, creds, **form):
    response = issuer.token(creds, **form)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _whoami(environ, start_response):
    principal = environ[ENVIRON_KEY]
    body = json.dumps({"sub": principal.sub if principal else None}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


@pytest.fixture
def verifier(live_issuer):
    return Verifier(live_issuer.url, live_issuer.url)


# --- WSGI ----------------------------------------------------------------------------


def test_wsgi_middleware_puts_principal_in_environ(live_issuer, verifier):
    app = Client(BearerMiddleware(_whoami, verifier, scopes="orders:read", realm=REALM))
    creds = live_issuer.create_client(scope="orders:read")
    response = app.get("/", headers=_bearer(_token(live_issuer, creds)))
    assert response.status_code == 200
    assert response.json == {"sub": live_issuer.user_id(creds.user)}


def test_wsgi_middleware_answers_rfc6750_errors(live_issuer, verifier):
    app = Client(BearerMiddleware(_whoami, verifier, scopes="orders:write", realm=REALM))
    missing = app.get("/")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="orders"'
    bad = app.get("/", headers=_bearer("a.b.c"))
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"] == (
        'Bearer realm="orders", error="invalid_token", error_description="the token is malformed"'
    )
    creds = live_issuer.create_client(scope="orders:read")
    short = app.get("/", headers=_bearer(_token(live_issuer, creds)))
    assert short.status_code == 403
    assert short.headers["WWW-Authenticate"] == (
        'Bearer realm="orders", error="insufficient_scope", '
        'error_description="the token lacks scope orders:write", scope="orders:write"'
    )
    assert int(short.headers["Content-Length"]) == len(short.data)


def test_wsgi_middleware_lets_anonymous_requests_through_when_allowed(live_issuer, verifier):
    app = Client(BearerMiddleware(_whoami, verifier, realm=REALM, allow_anonymous=True))
    assert app.get("/").json == {"sub": None}
    assert app.get("/", headers=_bearer("a.b.c")).status_code == 401
    creds = live_issuer.create_client()
    response = app.get("/", headers=_bearer(_token(live_issuer, creds)))
    assert response.json == {"sub": live_issuer.user_id(creds.user)}


def test_wsgi_verify_step_is_reusable_by_a_wrapper(live_issuer, verifier):
    """A wrapper (the legacy-key shim) reuses authenticate() and render_error()."""
    middleware = BearerMiddleware(_whoami, verifier, realm=REALM)
    creds = live_issuer.create_client()
    environ = {"HTTP_AUTHORIZATION": f"Bearer {_token(live_issuer, creds)}"}
    principal = middleware.authenticate(environ)
    assert principal is not None and principal.client_id == creds.client_id
    assert middleware.authenticate({}) is None
    with pytest.raises(InvalidToken) as refused:
        middleware.authenticate({"HTTP_AUTHORIZATION": "Bearer x.y.z"})
    rendered = render_error(REALM, refused.value)
    assert rendered.status_line == "401 Unauthorized"
    assert dict(rendered.headers)["WWW-Authenticate"].startswith('Bearer realm="orders", error=')


# --- ASGI ----------------------------------------------------------------------------


async def _asgi_whoami(request: Request) -> JSONResponse:
    principal = request.state.principal
    assert request.scope[SCOPE_KEY] is principal
    return JSONResponse({"sub": principal.sub if principal else None})


async def _ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"sub": websocket.scope[SCOPE_KEY].sub})
    await websocket.close()


def _starlette(verifier, **options):
    routes = [Route("/", _asgi_whoami), WebSocketRoute("/ws", _ws_echo)]
    middleware = [Middleware(BearerASGIMiddleware, verifier=verifier, realm=REALM, **options)]
    return Starlette(routes=routes, middleware=middleware)


def test_asgi_middleware_puts_principal_in_scope_and_state(live_issuer, verifier):
    creds = live_issuer.create_client(scope="orders:read")
    token = _token(live_issuer, creds)
    with TestClient(_starlette(verifier, scopes="orders:read")) as client:
        # The first request fetches the keys in a worker thread; the second is offline.
        for _ in range(2):
            response = client.get("/", headers=_bearer(token))
            assert response.status_code == 200
            assert response.json() == {"sub": live_issuer.user_id(creds.user)}
    assert verifier.keys.fetches == 1


def test_asgi_middleware_answers_rfc6750_errors(live_issuer, verifier):
    creds = live_issuer.create_client(scope="orders:read")
    with TestClient(_starlette(verifier, scopes="orders:write")) as client:
        missing = client.get("/")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="orders"'
        bad = client.get("/", headers=_bearer("a.b.c"))
        assert bad.status_code == 401
        assert bad.headers["WWW-Authenticate"] == (
            'Bearer realm="orders", error="invalid_token", '
            'error_description="the token is malformed"'
        )
        short = client.get("/", headers=_bearer(_token(live_issuer, creds)))
        assert short.status_code == 403
        assert short.headers["WWW-Authenticate"] == (
            'Bearer realm="orders", error="insufficient_scope", '
            'error_description="the token lacks scope orders:write", scope="orders:write"'
        )
        assert short.json()["error"] == "insufficient_scope"


def test_asgi_middleware_lets_anonymous_requests_through_when_allowed(verifier):
    with TestClient(_starlette(verifier, allow_anonymous=True)) as client:
        assert client.get("/").json() == {"sub": None}
        assert client.get("/", headers=_bearer("a.b.c")).status_code == 401


def test_asgi_middleware_guards_websockets(live_issuer, verifier):
    creds = live_issuer.create_client()
    with TestClient(_starlette(verifier)) as client:
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect("/ws"):
                pass
        assert refused.value.code == 1008
        headers = _bearer(_token(live_issuer, creds))
        with client.websocket_connect("/ws", headers=headers) as ws:
            assert ws.receive_json() == {"sub": live_issuer.user_id(creds.user)}


def test_asgi_middleware_with_introspection_refuses_deactivated_owner(live_issuer):
    rs = live_issuer.create_client(scope="orders:read", can_introspect=True)
    verifier = Verifier(
        live_issuer.url,
        live_issuer.url,
        introspection_client=(rs.client_id, rs.client_secret),
        introspection_cache_ttl=0,
    )
    creds = live_issuer.create_client()
    token = _token(live_issuer, creds)
    with TestClient(_starlette(verifier, introspect=True)) as client:
        assert client.get("/", headers=_bearer(token)).status_code == 200
        live_issuer.set_user_status(creds.user, "deactivated")
        refused = client.get("/", headers=_bearer(token))
        assert refused.status_code == 401
        assert "no longer active" in refused.headers["WWW-Authenticate"]


def test_token_dependency_guards_a_starlette_endpoint(live_issuer, verifier):
    require_write = TokenDependency(verifier, "orders:write", realm=REALM)

    async def create_order(request: Request) -> JSONResponse:
        principal = await require_write(request)
        return JSONResponse({"client_id": principal.client_id})

    app = Starlette(routes=[Route("/orders", create_order, methods=["POST"])])
    writer = live_issuer.create_client(scope="orders:read orders:write")
    reader = live_issuer.create_client(scope="orders:read")
    with TestClient(app) as client:
        ok = client.post("/orders", headers=_bearer(_token(live_issuer, writer)))
        assert ok.status_code == 200 and ok.json() == {"client_id": writer.client_id}
        short = client.post("/orders", headers=_bearer(_token(live_issuer, reader)))
        assert short.status_code == 403
        assert short.headers["WWW-Authenticate"] == (
            'Bearer realm="orders", error="insufficient_scope", '
            'error_description="the token lacks scope orders:write", scope="orders:write"'
        )
        missing = client.post("/orders")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="orders"'


def test_token_dependency_reuses_the_middlewares_principal(live_issuer, verifier):
    require_read = TokenDependency(verifier, "orders:read", realm=REALM)

    async def orders(request: Request) -> JSONResponse:
        return JSONResponse({"sub": (await require_read(request)).sub})

    app = Starlette(
        routes=[Route("/orders", orders)],
        middleware=[Middleware(BearerASGIMiddleware, verifier=verifier, realm=REALM)],
    )
    creds = live_issuer.create_client(scope="orders:read")
    with TestClient(app) as client:
        response = client.get("/orders", headers=_bearer(_token(live_issuer, creds)))
    assert response.json() == {"sub": live_issuer.user_id(creds.user)}


def test_asgi_middleware_works_as_plain_asgi_without_a_framework(live_issuer, verifier):
    async def app(scope, receive, send):
        body = json.dumps({"sub": scope[SCOPE_KEY].sub}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def call(headers):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
        await BearerASGIMiddleware(app, verifier, realm=REALM)(scope, receive, send)
        return sent

    creds = live_issuer.create_client()
    token = _token(live_issuer, creds).encode()
    ok = asyncio.run(call([(b"authorization", b"Bearer " + token)]))
    assert ok[0]["status"] == 200
    assert json.loads(ok[1]["body"]) == {"sub": live_issuer.user_id(creds.user)}
    refused = asyncio.run(call([]))
    assert refused[0]["status"] == 401
    assert (b"www-authenticate", b'Bearer realm="orders"') in refused[0]["headers"]
