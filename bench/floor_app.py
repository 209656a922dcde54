"""The framework floor: Flask and Authlib's client-credentials grant, with none of keyswap's work.

One client held in memory, its secret compared in constant time, and an ES256 RFC 9068 access
token signed with PyJWT (the key is made once). No database, no rate limit, no log line, no
metrics, no status list entry, no owner or tenant check. This is what a token from Flask and
Authlib costs before any of keyswap's work is done. ``python -m bench`` serves it with granian,
with the same workers and threads as keyswap, and drives it with the same load.

With ``FLOOR_DATABASE_URL`` and ``FLOOR_LIVE_CLIENT_ID`` set, it also makes the one live read
that a status check cannot do without: per token, one round trip to PostgreSQL for a keyswap
client's enabled flag and its owner's and tenant's status (a prepared three-table join, on a
psycopg connection kept per thread), refusing unless all three say yes. That row is the floor
for a token whose issuer reads status live, as keyswap does.

    python -m granian --interface wsgi --workers 2 --blocking-threads 1 bench.floor_app:app
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
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
DATABASE_URL = os.environ.get("FLOOR_DATABASE_URL", "")
LIVE_CLIENT_ID = os.environ.get("FLOOR_LIVE_CLIENT_ID", "")
LIVE_READ = (
    "SELECT clients.enabled, users.status, tenants.status FROM clients"
    " JOIN users ON users.id = clients.owner_id JOIN tenants ON tenants.id = users.tenant_id"
    " WHERE clients.id = %s"
)
_connections = threading.local()


def live_client(client_id: str) -> Client | None:
    """Return the client if the live read says it, its owner and its tenant are active."""
    client = CLIENTS.get(client_id)
    if client is None:
        return None
    cursor = getattr(_connections, "cursor", None)
    if cursor is None:
        import psycopg  # only this variant needs PostgreSQL

        # Made in the worker's request thread (granian forks before the first request).
        cursor = _connections.cursor = psycopg.connect(DATABASE_URL, autocommit=True).cursor()
    cursor.execute(LIVE_READ, (LIVE_CLIENT_ID,), prepare=True)
    return client if cursor.fetchone() == (True, "active", "active") else None


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
    query_client = live_client if DATABASE_URL else CLIENTS.get
    server = AuthorizationServer(app, query_client=query_client, save_token=lambda t, r: None)
    server.register_grant(grants.ClientCredentialsGrant)
    server.register_token_generator("default", generate_token)

    @app.post("/oauth/token")
    def token() -> Response:
        return server.create_token_response()  # type: ignore[no-any-return]

    return app


app = create_app()
