"""Unit tests of ``keyswap.issuer.tokens``: claims, header, TTL clamp, scopes, resource → aud."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from keyswap.issuer.errors import InvalidScope, InvalidTarget
from keyswap.issuer.tokens import (
    ACCESS_TOKEN_TYP,
    IssuedToken,
    clamp_ttl,
    mint_access_token,
    resolve_audience,
    resolve_scopes,
)
from keyswap.jwks import KeyPair, generate_key

NOW = 1_800_000_000
ALLOWED = ["orders:read", "orders:write", "reports:read"]


@pytest.fixture(scope="module")
def signer():
    """One ES256 key for the module."""
    return generate_key("ES256")


def _mint(signer: KeyPair, **changes: Any) -> IssuedToken:
    values = {
        "signer": signer,
        "issuer": "https://issuer.example",
        "subject": "svc_1",
        "audience": "https://orders.example",
        "client_id": "ks_1",
        "scopes": ["orders:read", "orders:write"],
        "tenant": "acme",
        "now": NOW,
        "ttl": 300,
        **changes,
    }
    return mint_access_token(**values)


def test_token_has_the_rfc_9068_claims(signer):
    issued = _mint(signer)
    claims = jwt.decode(
        issued.jwt,
        signer.private_key.public_key(),
        algorithms=["ES256"],
        audience="https://orders.example",
        issuer="https://issuer.example",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims == dict(issued.claims)
    assert {k: v for k, v in claims.items() if k != "jti"} == {
        "iss": "https://issuer.example",
        "sub": "svc_1",
        "aud": "https://orders.example",
        "exp": NOW + 300,
        "iat": NOW,
        "nbf": NOW,
        "client_id": "ks_1",
        "scope": "orders:read orders:write",
        "tenant": "acme",
    }
    assert len(claims["jti"]) >= 16
    assert issued.expires_in == 300


def test_token_header_has_typ_at_jwt_alg_and_kid(signer):
    header = jwt.get_unverified_header(_mint(signer).jwt)
    assert header == {"alg": "ES256", "kid": signer.kid, "typ": ACCESS_TOKEN_TYP}
    assert ACCESS_TOKEN_TYP == "at+jwt"


def test_every_token_has_a_new_jti(signer):
    assert _mint(signer).claims["jti"] != _mint(signer).claims["jti"]


def test_extra_claims_are_added(signer):
    assert _mint(signer, extra={"legacy": True}).claims["legacy"] is True


def test_response_body_is_rfc_6749_section_5_1(signer):
    issued = _mint(signer)
    assert issued.response_body("orders:read") == {
        "access_token": issued.jwt,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "orders:read",
    }


@pytest.mark.parametrize(
    ("requested", "default", "maximum", "expected"),
    [
        (None, 300, 3600, 300),
        (600, 300, 3600, 600),
        (7200, 300, 3600, 3600),
        (None, 300, 120, 120),
        (0, 300, 3600, 1),
        (-5, 300, 3600, 1),
    ],
    ids=["default", "own", "above-max", "default-above-max", "zero", "negative"],
)
def test_ttl_clamp(requested, default, maximum, expected):
    assert clamp_ttl(requested, default, maximum) == expected


@pytest.mark.parametrize("requested", [None, "", "   "])
def test_no_scope_asked_grants_every_allowed_scope(requested):
    assert resolve_scopes(requested, ALLOWED) == ALLOWED


def test_scope_subset_is_granted_in_asked_order_without_repeats():
    assert resolve_scopes("reports:read orders:read reports:read", ALLOWED) == [
        "reports:read",
        "orders:read",
    ]


def test_unknown_scope_is_invalid_scope_naming_it():
    with pytest.raises(InvalidScope) as caught:
        resolve_scopes("orders:read admin", ALLOWED)
    assert caught.value.description == "scope not allowed for this client: admin"
    assert caught.value.error == "invalid_scope"


def test_several_disallowed_scopes_are_all_named():
    with pytest.raises(InvalidScope) as caught:
        resolve_scopes("admin orders:read orders:delete", ALLOWED)
    assert caught.value.description == "scope not allowed for this client: admin orders:delete"


def test_no_resource_uses_the_first_audience():
    assert resolve_audience([], ["https://a.example", "https://b.example"], "https://d") == (
        "https://a.example"
    )


def test_no_resource_and_no_audience_uses_the_default():
    assert resolve_audience([], [], "https://issuer.example") == "https://issuer.example"


def test_allowed_resource_becomes_the_audience():
    assert resolve_audience(
        ["https://b.example"], ["https://a.example", "https://b.example"], "https://d"
    ) == ("https://b.example")


def test_default_audience_may_be_requested_when_credential_has_none():
    assert resolve_audience(["https://d"], [], "https://d") == "https://d"


def test_resource_not_allowed_is_invalid_target_naming_it():
    with pytest.raises(InvalidTarget) as caught:
        resolve_audience(["https://evil.example"], ["https://a.example"], "https://d")
    assert caught.value.description == (
        "resource not allowed for this client: https://evil.example"
    )
    assert caught.value.error == "invalid_target"


def test_several_resources_are_invalid_target_even_if_each_is_allowed():
    with pytest.raises(InvalidTarget) as caught:
        resolve_audience(
            ["https://a.example", "https://b.example"],
            ["https://a.example", "https://b.example"],
            "https://d",
        )
    assert caught.value.description == "at most one resource may be requested"
