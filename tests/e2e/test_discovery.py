"""Discovery (RFC 8414) over HTTP: no empty members, and the scopes clients may request."""

from __future__ import annotations

import pytest
import requests
from authlib.oauth2.rfc6749 import grants

from keyswap.issuer.db import transaction
from keyswap.issuer.lifecycle import disable_client
from keyswap.issuer.metadata import SCOPES_TTL

PATHS = ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]


class FakeClock:
    """Monotonic seconds that only the test moves."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer_and_clock(isolated_issuer, monkeypatch):
    issuer = isolated_issuer()
    clock = FakeClock()
    monkeypatch.setattr(issuer.keyswap.discovery, "_clock", clock)
    return issuer, clock


def _metadata(issuer, path=PATHS[0]):
    response = requests.get(issuer.url + path, timeout=10)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("path", PATHS)
def test_empty_members_are_omitted(issuer_and_clock, path):
    issuer, _clock = issuer_and_clock
    document = _metadata(issuer, path)
    # RFC 8414 §3.2: zero-element members MUST be omitted; no client is registered yet.
    assert "response_types_supported" not in document
    assert "scopes_supported" not in document
    assert [name for name, value in document.items() if value in ([], "", None)] == []


def test_scopes_supported_follows_the_registered_clients(issuer_and_clock):
    issuer, clock = issuer_and_clock
    assert "scopes_supported" not in _metadata(issuer)
    issuer.create_client(scope="orders:read orders:write")
    disabled = issuer.create_client(scope="payroll:admin")
    with transaction(issuer.keyswap.sessions) as session:
        disable_client(session, disabled.client_id, now=issuer.keyswap.clock(), actor="test")
    # Served from the process's copy until it is SCOPES_TTL old: no read per request.
    clock.now += SCOPES_TTL - 1
    assert "scopes_supported" not in _metadata(issuer)
    clock.now += 1
    assert _metadata(issuer)["scopes_supported"] == ["orders:read", "orders:write"]
    issuer.create_client(scope="billing:read orders:read")
    clock.now += SCOPES_TTL
    for path in PATHS:
        assert _metadata(issuer, path)["scopes_supported"] == [
            "billing:read",
            "orders:read",
            "orders:write",
        ]


def test_discovery_lists_what_the_server_registers(issuer_and_clock):
    issuer, clock = issuer_and_clock
    document = _metadata(issuer)
    methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
    assert document["grant_types_supported"] == [
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ]
    for endpoint in ("token", "revocation", "introspection"):
        assert document[f"{endpoint}_endpoint_auth_methods_supported"] == methods
    assert document["token_endpoint_auth_signing_alg_values_supported"] == [
        *("ES256", "ES384", "RS256", "PS256", "Ed25519", "EdDSA")
    ]
    assert document["access_token_signing_alg_values_supported"] == ["ES256", "RS256", "EdDSA"]

    class ExampleGrant(grants.BaseGrant, grants.TokenEndpointMixin):  # type: ignore[misc]
        GRANT_TYPE = "urn:example:params:oauth:grant-type:test"
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

    issuer.keyswap.server.register_grant(ExampleGrant)
    clock.now += SCOPES_TTL
    for path in PATHS:
        assert _metadata(issuer, path)["grant_types_supported"] == [
            *document["grant_types_supported"],
            ExampleGrant.GRANT_TYPE,
        ]
