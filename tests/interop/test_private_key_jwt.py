"""private_key_jwt (RFC 7523) with Authlib's client-side PrivateKeyJWT; replay, aud, lifetime."""

from __future__ import annotations

import json
import time

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import ECKey

from keyswap.issuer.cli import cli

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _register(live_issuer, tmp_path, key, owner):
    """Register a private_key_jwt client through the CLI with ``key``'s public half."""
    from keyswap.issuer.db import transaction
    from keyswap.issuer.lifecycle import add_user

    jwks_file = tmp_path / f"{owner}-jwks.json"
    jwks_file.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    with transaction(live_issuer.keyswap.sessions) as session:
        add_user(session, owner, tenant="acme", actor="test")
    result = live_issuer.app.test_cli_runner().invoke(
        cli,
        [
            "clients", "create", "--owner", owner, "--scope", "orders:read",
            "--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["client_secret"] is None
    return created["client_id"]


@pytest.fixture
def key_client(live_issuer, tmp_path):
    """A client registered through the CLI with the public half of an ES256 key."""
    key = ECKey.generate_key("P-256", private=True)
    return _register(live_issuer, tmp_path, key, "signer-svc"), key


def _post_assertion(live_issuer, client_id, assertion):
    return requests.post(
        live_issuer.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        timeout=10,
    )


def test_authlib_private_key_jwt_client_gets_a_token(live_issuer, key_client):
    client_id, key = key_client
    with OAuth2Session(client_id, key, token_endpoint_auth_method="private_key_jwt") as session:
        session.register_client_auth_method(PrivateKeyJWT(live_issuer.token_url, alg="ES256"))
        token = session.fetch_token(live_issuer.token_url, grant_type="client_credentials")
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == client_id
    assert claims["sub"] == live_issuer.user_id("signer-svc")
    assert claims["scope"] == "orders:read"


def test_replayed_assertion_is_refused(live_issuer, key_client):
    client_id, key = key_client
    assertion = private_key_jwt_sign(key, client_id, live_issuer.token_url, alg="ES256")
    assert _post_assertion(live_issuer, client_id, assertion).status_code == 200
    replay = _post_assertion(live_issuer, client_id, assertion)
    assert replay.status_code == 401
    assert replay.json() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519"])
def test_ed25519_assertions_under_both_names_get_a_token(live_issuer, tmp_path, alg):
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import OKPKey

    key = OKPKey.generate_key("Ed25519", private=True)
    client_id = _register(live_issuer, tmp_path, key, "ed-svc")
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": live_issuer.token_url,
        "iat": now,
        "exp": now + 60,
        "jti": f"ed-{alg}-{now}",
    }
    if alg == "EdDSA":  # PyJWT signs under the classic name
        private_pem = key.as_pem(private=True)
        assertion = jwt.encode(claims, private_pem, algorithm="EdDSA")
    else:
        assertion = jose_jwt.encode({"alg": alg}, claims, key, algorithms=[alg])
    response = _post_assertion(live_issuer, client_id, assertion)
    assert response.status_code == 200, response.text


def test_issuer_identifier_is_an_accepted_audience(live_issuer, key_client):
    client_id, key = key_client
    assertion = private_key_jwt_sign(key, client_id, live_issuer.url, alg="ES256")
    assert _post_assertion(live_issuer, client_id, assertion).status_code == 200


def test_wrong_audience_is_refused(live_issuer, key_client):
    client_id, key = key_client
    assertion = private_key_jwt_sign(key, client_id, "https://other.example/token", alg="ES256")
    assert _post_assertion(live_issuer, client_id, assertion).status_code == 401


def test_long_lived_assertion_is_refused(live_issuer, key_client):
    client_id, key = key_client
    now = int(time.time())
    assertion = private_key_jwt_sign(
        key, client_id, live_issuer.token_url, alg="ES256", claims={"iat": now, "exp": now + 7200}
    )
    assert _post_assertion(live_issuer, client_id, assertion).status_code == 401


def test_assertion_signed_by_another_key_is_refused(live_issuer, key_client):
    client_id, _key = key_client
    stranger = ECKey.generate_key("P-256", private=True)
    assertion = private_key_jwt_sign(stranger, client_id, live_issuer.token_url, alg="ES256")
    assert _post_assertion(live_issuer, client_id, assertion).status_code == 401


def test_private_key_jwt_client_cannot_use_a_secret(live_issuer, key_client):
    client_id, _key = key_client
    response = requests.post(
        live_issuer.token_url,
        data={"grant_type": "client_credentials"},
        auth=(client_id, "anything"),
        timeout=10,
    )
    assert response.status_code == 401


def test_clients_create_refuses_private_keys_in_the_jwks(live_issuer, tmp_path):
    from keyswap.issuer.db import transaction
    from keyswap.issuer.lifecycle import add_user

    key = ECKey.generate_key("P-256", private=True)
    jwks_file = tmp_path / "leaky.json"
    jwks_file.write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
    with transaction(live_issuer.keyswap.sessions) as session:
        add_user(session, "leaky-svc", actor="test")
    result = live_issuer.app.test_cli_runner().invoke(
        cli,
        [
            "clients", "create", "--owner", "leaky-svc", "--scope", "a",
            "--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file),
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "private key material" in result.stderr


def test_keys_fetched_from_a_jwks_uri(isolated_issuer):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from keyswap.issuer.db import transaction
    from keyswap.issuer.lifecycle import add_user

    key = ECKey.generate_key("P-256", private=True)
    body = json.dumps({"keys": [key.as_dict(private=False)]}).encode()
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    live_issuer = isolated_issuer(outbound_allow_private=True)  # the key server is loopback
    try:
        uri = f"http://127.0.0.1:{server.server_port}/jwks.json"
        with transaction(live_issuer.keyswap.sessions) as session:
            add_user(session, "remote-svc", actor="test")
        result = live_issuer.app.test_cli_runner().invoke(
            cli,
            [
                "clients", "create", "--owner", "remote-svc", "--scope", "orders:read",
                "--auth-method", "private_key_jwt", "--jwks-uri", uri, "--json",
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        client_id = json.loads(result.stdout)["client_id"]
        for _ in range(3):
            assertion = private_key_jwt_sign(key, client_id, live_issuer.token_url, alg="ES256")
            assert _post_assertion(live_issuer, client_id, assertion).status_code == 200
        assert hits == ["/jwks.json"]  # cached, not fetched per request
    finally:
        server.shutdown()
        server.server_close()
