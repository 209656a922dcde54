"""HTTP hygiene: security headers, CORS closed, JSON errors everywhere, health endpoints."""

from __future__ import annotations

import pytest
import requests


@pytest.mark.parametrize(
    "method,path",
    [("GET", "/jwks.json"), ("GET", "/.well-known/oauth-authorization-server"),
     ("POST", "/oauth/token"), ("GET", "/healthz"), ("GET", "/nope")],
)  # fmt: skip
def test_every_response_carries_security_headers(live_issuer, method, path):
    response = requests.request(method, live_issuer.url + path, timeout=10)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Content-Type"].startswith("application/json")


def test_cors_is_closed_by_default(live_issuer):
    preflight = requests.options(
        live_issuer.token_url,
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
        },
        timeout=10,
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    post = requests.post(
        live_issuer.token_url,
        data={"grant_type": "client_credentials"},
        headers={"Origin": "https://evil.example"},
        timeout=10,
    )
    assert "Access-Control-Allow-Origin" not in post.headers


def test_unknown_path_is_json_404(live_issuer):
    response = requests.get(live_issuer.url + "/admin", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"] == "invalid_request"


def test_jwks_is_cacheable_and_conditional(live_issuer):
    first = requests.get(live_issuer.jwks_url, timeout=10)
    assert first.headers["Cache-Control"] == "public, max-age=300"
    keys = first.json()["keys"]
    assert keys and all({"kid", "alg", "use"} <= k.keys() for k in keys)
    assert all(not ({"d", "p", "q"} & k.keys()) for k in keys)
    again = requests.get(
        live_issuer.jwks_url, headers={"If-None-Match": first.headers["ETag"]}, timeout=10
    )
    assert again.status_code == 304


def test_health_and_readiness(live_issuer):
    assert requests.get(live_issuer.url + "/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(live_issuer.url + "/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "signing_key": "ok"}


def test_readiness_fails_without_a_signing_key(isolated_issuer):
    from sqlalchemy import delete

    from keyswap.issuer.db import transaction
    from keyswap.issuer.models import SigningKey

    issuer = isolated_issuer(key_refresh_interval=0)
    with transaction(issuer.keyswap.sessions) as session:
        session.execute(delete(SigningKey))
    ready = requests.get(issuer.url + "/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["checks"]["signing_key"] == "missing"
    token = issuer.token(issuer.create_client())
    assert token.status_code == 503
    assert token.json()["error"] == "temporarily_unavailable"
