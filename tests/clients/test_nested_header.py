"""A deeply nested token header is a malformed token (401), not a crash (500), over HTTP."""

from __future__ import annotations

import base64
import json
import threading

import pytest
import requests
from flask import Flask, g
from werkzeug.serving import make_server

from keyswap.clients import InvalidToken, Verifier
from keyswap.clients.flask import KeyswapAuth, require_token
from keyswap.clients.wsgi import BearerMiddleware

DEPTH = 5000  # far past the JSON parser's recursion limit, well under header size limits


def _nested_token() -> str:
    header = base64.urlsafe_b64encode(b"[" * DEPTH + b"]" * DEPTH).rstrip(b"=").decode()
    return f"{header}.e30.c2ln"


@pytest.fixture
def serve():
    servers = []

    def start(wsgi_app) -> str:
        server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_verifier_reads_nested_header_as_malformed(live_issuer):
    with pytest.raises(InvalidToken, match="malformed"):
        Verifier(live_issuer.url, live_issuer.url).verify(_nested_token())


def test_flask_glue_answers_nested_header_with_401(live_issuer, serve):
    app = Flask(__name__)
    KeyswapAuth(app, issuer=live_issuer.url, audience=live_issuer.url, realm="orders")

    @app.get("/orders")
    @require_token()
    def orders():
        return {"sub": g.principal.sub}

    url = serve(app)
    response = requests.get(
        f"{url}/orders", headers={"Authorization": f"Bearer {_nested_token()}"}, timeout=30
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_wsgi_middleware_answers_nested_header_with_401(live_issuer, serve):
    def whoami(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"ok": True}).encode()]

    verifier = Verifier(live_issuer.url, live_issuer.url)
    url = serve(BearerMiddleware(whoami, verifier, realm="orders"))
    response = requests.get(url, headers={"Authorization": f"Bearer {_nested_token()}"}, timeout=30)
    assert response.status_code == 401
    assert 'error_description="the token is malformed"' in response.headers["WWW-Authenticate"]
