"""The legacy-key shim over real HTTP: the WSGI middleware and `keyswap shim` as a process.

A legacy caller's key is exchanged at the live issuer (RFC 8693), cached per key, verified
like any bearer token, and refused with the issuer's own status and JSON error.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator

import jwt
import pytest
import requests
from flask import Flask, g, request

from keyswap.clients import TokenClient, TokenRefused, Verifier
from keyswap.clients.legacy import KeyExchanger, LegacyKeyMiddleware, ShimProxy
from keyswap.clients.wsgi import ENVIRON_KEY
from keyswap.issuer.legacy.usage import usage_for

from ..metrics import metric_total
from .legacy_servers import free_port, import_key, serving, shim_process
from .token_servers import FakeClock, tokens_issued


@pytest.fixture(autouse=True)
def _flushed_usage(live_server):
    """Leave nothing pending in the shared server's usage counts (see test_token_exchange)."""
    yield
    usage_for(live_server.app).flush()


def _resource_app() -> Flask:
    """A resource server that answers with the principal it was handed and its headers."""
    app = Flask("orders")

    @app.route("/orders", methods=["GET", "POST"])
    def orders():
        principal = request.environ[ENVIRON_KEY]
        g.seen = dict(request.headers)
        return {
            "sub": principal.sub,
            "tenant": principal.tenant,
            "client_id": principal.client_id,
            "scopes": sorted(principal.scopes),
            "legacy_key": principal.legacy_key,
            "saw_api_key": "X-Api-Key" in request.headers,
            "authorization": request.headers.get("Authorization", "").split(" ")[0],
        }

    return app


@pytest.fixture
def guarded(live_issuer):
    """The resource server behind LegacyKeyMiddleware, served over HTTP."""
    app = _resource_app()
    verifier = Verifier(live_issuer.url, audience=live_issuer.url)
    app.wsgi_app = LegacyKeyMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        verifier,
        KeyExchanger.from_issuer(live_issuer.url),
        scopes="orders:read",
    )
    with serving(app) as url:
        yield url


def test_middleware_hands_a_legacy_caller_the_same_principal_as_a_jwt_caller(live_issuer, guarded):
    api_key, key_id = import_key(live_issuer)
    legacy = requests.get(f"{guarded}/orders", headers={"X-API-Key": api_key}, timeout=10)
    assert legacy.status_code == 200, legacy.text
    body = legacy.json()
    assert body["sub"] == live_issuer.user_id("billing-svc")
    assert body["tenant"] == "acme"
    assert body["client_id"] == f"legacy:{key_id}"
    assert body["legacy_key"] == key_id
    assert body["saw_api_key"] is False and body["authorization"] == "Bearer"

    creds = live_issuer.create_client(user="billing-svc")
    bearer = live_issuer.token(creds).json()["access_token"]
    modern = requests.get(
        f"{guarded}/orders", headers={"Authorization": f"Bearer {bearer}"}, timeout=10
    ).json()
    assert (modern["sub"], modern["tenant"]) == (body["sub"], body["tenant"])
    assert modern["legacy_key"] is None


def test_middleware_accepts_the_apikey_authorization_scheme(live_issuer, guarded):
    api_key, _ = import_key(live_issuer)
    response = requests.post(
        f"{guarded}/orders", headers={"Authorization": f"ApiKey {api_key}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json()["authorization"] == "Bearer"


def test_middleware_exchanges_each_key_once_while_the_token_is_fresh(live_issuer, guarded):
    api_key, _ = import_key(live_issuer)
    before = tokens_issued(live_issuer.url)
    for _ in range(10):
        response = requests.get(f"{guarded}/orders", headers={"X-API-Key": api_key}, timeout=10)
        assert response.status_code == 200
    assert tokens_issued(live_issuer.url) - before == 1


def test_middleware_answers_the_issuers_refusal_and_remembers_it(live_issuer, guarded):
    api_key, _ = import_key(live_issuer)
    live_issuer.set_user_status("billing-svc", "deactivated")
    refused = requests.get(f"{guarded}/orders", headers={"X-API-Key": api_key}, timeout=10)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_request",
        "error_description": "the user associated with this key is deactivated",
    }
    unknown = requests.get(f"{guarded}/orders", headers={"X-API-Key": "sk_nope"}, timeout=10)
    assert (unknown.status_code, unknown.json()["error_description"]) == (400, "unknown API key")


def test_middleware_still_refuses_requests_without_any_credential(live_issuer, guarded):
    response = requests.get(f"{guarded}/orders", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")


def test_with_max_age_0_a_deactivated_owner_is_refused_on_the_next_call(live_issuer):
    api_key, _ = import_key(live_issuer)
    app = _resource_app()
    app.wsgi_app = LegacyKeyMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        Verifier(live_issuer.url, audience=live_issuer.url),
        KeyExchanger.from_issuer(live_issuer.url, max_age=0),
    )
    with serving(app) as url:
        first = requests.get(f"{url}/orders", headers={"X-API-Key": api_key}, timeout=10)
        assert first.status_code == 200, first.text
        live_issuer.set_user_status("billing-svc", "deactivated")
        refused = requests.get(f"{url}/orders", headers={"X-API-Key": api_key}, timeout=10)
    assert refused.status_code == 400
    assert refused.json()["error_description"] == (
        "the user associated with this key is deactivated"
    )


def test_max_age_bounds_how_long_a_keys_token_is_reused(live_issuer):
    api_key, _ = import_key(live_issuer)
    clock = FakeClock()
    exchanger = KeyExchanger(TokenClient.from_issuer(live_issuer.url, clock=clock), max_age=60)
    before = tokens_issued(live_issuer.url)
    first = exchanger.token_for(api_key)
    clock.advance(59)
    assert exchanger.token_for(api_key) is first
    clock.advance(2)
    second = exchanger.token_for(api_key)
    assert second is not first
    assert exchanger.token_for(api_key) is second
    assert tokens_issued(live_issuer.url) - before == 2


def _unknown_key_refusals(issuer_url: str) -> float:
    return metric_total(issuer_url, "keyswap_refusals_total", reason="unknown_api_key")


def test_a_refused_key_is_not_asked_again_within_the_refusal_ttl(live_issuer):
    exchanger = KeyExchanger.from_issuer(live_issuer.url, refusal_ttl=60)
    before = _unknown_key_refusals(live_issuer.url)
    for _ in range(5):
        with pytest.raises(TokenRefused, match="unknown API key"):
            exchanger.token_for("sk_unknown")
    assert _unknown_key_refusals(live_issuer.url) - before == 1


# --- keyswap shim: the reverse proxy, as a real process ---------------------------------


@pytest.fixture
def upstream() -> Iterator[str]:
    """A plain service that echoes what it received (any language would do)."""
    app = Flask("upstream")

    @app.route("/<path:path>", methods=["GET", "POST", "PUT"])
    def echo(path):
        return {
            "path": path,
            "query": request.query_string.decode(),
            "method": request.method,
            "body": request.get_data(as_text=True),
            "authorization": request.headers.get("Authorization"),
            "api_key": request.headers.get("X-API-Key"),
            "forwarded_for": request.headers.get("X-Forwarded-For"),
        }, 201

    with serving(app) as url:
        yield url


@pytest.fixture
def shim(live_issuer, upstream) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with shim_process(live_issuer.url, upstream) as running:
        yield running.url, running.process


def test_shim_swaps_the_key_for_a_verifiable_bearer_token(live_issuer, shim):
    url, process = shim
    api_key, key_id = import_key(live_issuer)
    response = requests.post(
        f"{url}/v1/orders?limit=5",
        headers={"X-API-Key": api_key, "Content-Type": "application/json"},
        data=json.dumps({"item": "tea"}),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    seen = response.json()
    assert seen["path"] == "v1/orders" and seen["query"] == "limit=5"
    assert seen["method"] == "POST" and json.loads(seen["body"]) == {"item": "tea"}
    assert seen["api_key"] is None
    assert seen["forwarded_for"] == "127.0.0.1"
    scheme, token = seen["authorization"].split(" ")
    assert scheme == "Bearer"
    # The upstream can verify it with any JOSE library against the issuer's JWKS.
    signing_key = jwt.PyJWKClient(live_issuer.jwks_url).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["ES256"], audience=live_issuer.url)
    assert claims["sub"] == live_issuer.user_id("billing-svc")
    assert claims["client_id"] == f"legacy:{key_id}"


def test_shim_passes_requests_without_a_key_unchanged(shim):
    url, _ = shim
    seen = requests.get(
        f"{url}/health", headers={"Authorization": "Bearer abc.def.ghi"}, timeout=10
    ).json()
    assert seen["authorization"] == "Bearer abc.def.ghi"


def test_shim_refuses_with_the_issuers_error_and_never_logs_a_key(live_issuer, shim):
    url, process = shim
    api_key, _ = import_key(live_issuer)
    live_issuer.set_tenant_status("acme", "suspended")
    refused = requests.get(f"{url}/v1/orders", headers={"X-API-Key": api_key}, timeout=10)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"
    assert "tenant" in refused.json()["error_description"]
    unknown = requests.get(f"{url}/v1/orders", headers={"X-API-Key": "sk_secret_guess"}, timeout=10)
    assert unknown.json() == {"error": "invalid_request", "error_description": "unknown API key"}
    process.terminate()
    output = process.communicate(timeout=10)[0]
    assert api_key not in output and "sk_secret_guess" not in output


def test_proxy_answers_502_when_the_upstream_is_down(live_issuer, caplog):
    api_key, _ = import_key(live_issuer)
    proxy = ShimProxy(f"http://127.0.0.1:{free_port()}", KeyExchanger.from_issuer(live_issuer.url))
    with caplog.at_level(logging.DEBUG), serving(proxy) as url:
        response = requests.get(f"{url}/x", headers={"X-API-Key": api_key}, timeout=10)
    assert response.status_code == 502
    assert response.json()["error"] == "bad_gateway"
    assert caplog.records and api_key not in caplog.text
