"""keyswap.clients.flask: a resource server guarded by require_token, with a live issuer over
HTTP."""

from __future__ import annotations

import socket
import time

import pytest
from flask import Flask, g

from keyswap.clients import Verifier
from keyswap.clients.flask import KeyswapAuth, current_principal, require_token

REALM = "orders"


def _token(issuer, creds, **form):
    response = issuer.token(creds, **form)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _resource_server(issuer_url, audience, **options):
    app = Flask(__name__)
    KeyswapAuth(app, issuer=issuer_url, audience=audience, realm=REALM, **options)

    @app.get("/orders")
    @require_token(scopes="orders:read")
    def orders():
        return {"sub": g.principal.sub, "client_id": current_principal().client_id}

    @app.post("/orders")
    @require_token(scopes=["orders:read", "orders:write"])
    def create_order():
        return {"created": True}

    @app.get("/reports")
    @require_token(audience="https://reports.example")
    def reports():
        return {"sub": g.principal.sub}

    @app.get("/payouts")
    @require_token(scopes="orders:read", introspect=True)
    def payouts():
        return {"sub": g.principal.sub}

    return app


@pytest.fixture
def resource(live_issuer):
    return _resource_server(live_issuer.url, live_issuer.url).test_client()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_require_token_puts_principal_on_g(live_issuer, resource):
    creds = live_issuer.create_client(scope="orders:read")
    response = resource.get("/orders", headers=_bearer(_token(live_issuer, creds)))
    assert response.status_code == 200
    assert response.json == {"sub": live_issuer.user_id(creds.user), "client_id": creds.client_id}


def test_require_token_without_token_is_bare_401_challenge(resource):
    response = resource.get("/orders")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="orders"'
    assert "error" not in response.json


def test_require_token_with_other_scheme_is_bare_401_challenge(resource):
    response = resource.get("/orders", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="orders"'


def test_require_token_with_malformed_token_is_invalid_token(resource):
    response = resource.get("/orders", headers=_bearer("not-a-jwt"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="orders", error="invalid_token", error_description="the token is malformed"'
    )
    assert response.json["error"] == "invalid_token"


def test_require_token_with_empty_bearer_is_invalid_token(resource):
    response = resource.get("/orders", headers={"Authorization": "Bearer "})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_require_token_with_expired_token_is_invalid_token(live_issuer, resource):
    now = int(time.time())
    claims = {
        "iss": live_issuer.url,
        "sub": "usr_x",
        "aud": live_issuer.url,
        "exp": now - 60,
        "iat": now - 360,
        "jti": "j1",
        "client_id": "ks_x",
        "scope": "orders:read",
    }
    token = live_issuer.keyswap.keyring.signer().sign(claims, typ="at+jwt")
    response = resource.get("/orders", headers=_bearer(token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="orders", error="invalid_token", error_description="the token has expired"'
    )


def test_require_token_without_scope_is_403_insufficient_scope(live_issuer, resource):
    creds = live_issuer.create_client(scope="orders:read")
    response = resource.post("/orders", headers=_bearer(_token(live_issuer, creds)))
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="orders", error="insufficient_scope", '
        'error_description="the token lacks scope orders:read orders:write", '
        'scope="orders:read orders:write"'
    )
    assert response.json["error"] == "insufficient_scope"


def test_require_token_with_all_scopes_passes(live_issuer, resource):
    creds = live_issuer.create_client(scope="orders:read orders:write")
    response = resource.post("/orders", headers=_bearer(_token(live_issuer, creds)))
    assert response.status_code == 200


def test_require_token_checks_the_views_own_audience(live_issuer, resource):
    creds = live_issuer.create_client(audience=["https://reports.example"])
    reports_token = _token(live_issuer, creds)
    assert resource.get("/reports", headers=_bearer(reports_token)).status_code == 200
    refused = resource.get("/orders", headers=_bearer(reports_token))
    assert refused.status_code == 401
    assert (
        'error_description="the token is not meant for this audience"'
        in (refused.headers["WWW-Authenticate"])
    )


def test_require_token_with_introspection_refuses_deactivated_owner(live_issuer):
    rs = live_issuer.create_client(scope="orders:read", can_introspect=True)
    app = _resource_server(
        live_issuer.url,
        live_issuer.url,
        introspection_client=(rs.client_id, rs.client_secret),
        introspection_cache_ttl=0,
    )
    resource = app.test_client()
    creds = live_issuer.create_client(scope="orders:read")
    token = _token(live_issuer, creds)
    assert resource.get("/payouts", headers=_bearer(token)).status_code == 200
    live_issuer.set_user_status(creds.user, "suspended")
    refused = resource.get("/payouts", headers=_bearer(token))
    assert refused.status_code == 401
    assert (
        'error_description="the token is no longer active"' in (refused.headers["WWW-Authenticate"])
    )
    assert resource.get("/orders", headers=_bearer(token)).status_code == 200  # offline check


def test_require_token_with_unreachable_issuer_is_503(live_issuer):
    token = _token(live_issuer, live_issuer.create_client())
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        app = _resource_server(f"http://127.0.0.1:{port}", live_issuer.url, timeout=2)
        response = app.test_client().get("/orders", headers=_bearer(token))
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json["error"] == "temporarily_unavailable"


def test_keyswap_auth_accepts_a_ready_verifier(live_issuer):
    app = Flask(__name__)
    auth = KeyswapAuth(verifier=Verifier(live_issuer.url, live_issuer.url))
    auth.init_app(app)

    @app.get("/me")
    @require_token()
    def me():
        return {"sub": g.principal.sub}

    creds = live_issuer.create_client()
    response = app.test_client().get("/me", headers=_bearer(_token(live_issuer, creds)))
    assert response.status_code == 200
    assert app.test_client().get("/me").headers["WWW-Authenticate"] == (
        f'Bearer realm="{live_issuer.url}"'
    )


def test_keyswap_auth_needs_issuer_and_audience():
    with pytest.raises(ValueError, match="issuer= and audience="):
        KeyswapAuth(Flask(__name__), issuer="http://127.0.0.1:8000")
