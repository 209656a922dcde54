"""The framework floor: Flask and Authlib's client-credentials grant, with none of keyswap's work.

One client held in memory, its secret compared in constant time, and an ES256 RFC 9068 access
token signed with PyJWT (the key is made once). No database, no rate limit, no log line, no
metrics, no status list entry, no owner or tenant check. This is what a token from Flask and
Authlib costs before any of keyswap's work is done. ``python -m bench`` serves it with granian,
with the same workers and threads as keyswap, and drives it with the same load.

    python -m granian --interface wsgi --workers 2 --blocking-threads 1 bench.floor_app:app
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from typing import Any

import jwt
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response

CLIENT_ID = os.environ.get("FLOOR_CLIENT_ID", "floor-client")
CLIENT_SECRET = os.environ.get("FLOOR_CLIENT_SECRET", "floor-secret")
ISSUER = os.environ.get("FLOOR_ISSUER", "http://127.0.0.1")
SCOPES = ("orders:read", "orders:write")
TTL = 300


class Client(ClientMixin):  # type: ignore[misc]
    """The one client: ``client_secret_basic``, the client-credentials grant, two scopes."""

    def __init__(self, client_id: str, secret: str) -> None:
        self.client_id = client_id
        self._secret = secret.encode()

    def get_client_id(self) -> str:
        return self.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(self._secret, client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)


CLIENTS = {CLIENT_ID: Client(CLIENT_ID, CLIENT_SECRET)}
KEY = ec.generate_private_key(ec.SECP256R1())
HEADERS = {"typ": "at+jwt", "kid": "floor-1"}


def generate_token(
    grant_type: str,
    client: Client,
    user: Any = None,
    scope: str | None = None,
    expires_in: int | None = None,
    include_refresh_token: bool = True,
) -> dict[str, Any]:
    """Return an RFC 9068 access token for ``client``: ES256, five minutes."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": client.client_id,
        "aud": "https://api.example.test",
        "client_id": client.client_id,
        "scope": scope or "",
        "iat": now,
        "nbf": now,
        "exp": now + TTL,
        "jti": secrets.token_urlsafe(16),
    }
    token = jwt.encode(claims, KEY, algorithm="ES256", headers=HEADERS)
    return {"access_token": token, "token_type": "Bearer", "expires_in": TTL, "scope": scope}


def create_app() -> Flask:
    """Build the floor: one route, Authlib's server, the grant, the generator."""
    app = Flask(__name__)
    server = AuthorizationServer(
        app, query_client=CLIENTS.get, save_token=lambda token, request: None
    )
    server.register_grant(grants.ClientCredentialsGrant)
    server.register_token_generator("default", generate_token)

    @app.post("/oauth/token")
    def token() -> Response:
        return server.create_token_response()  # type: ignore[no-any-return]

    return app


app = create_app()
