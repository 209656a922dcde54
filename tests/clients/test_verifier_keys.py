"""keyswap.clients.jwks_cache pure parts: Cache-Control freshness and which JWKs may verify."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keyswap.clients.jwks_cache import load_key, parse_max_age


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Cache-Control": "public, max-age=300"}, 300),
        ({"Cache-Control": "max-age=300", "Age": "120"}, 180),
        ({"Cache-Control": "max-age=60", "Age": "600"}, 0),
        ({"Cache-Control": "public, no-cache"}, 0),
        ({"Cache-Control": "no-store, max-age=300"}, 0),
        ({"Cache-Control": 'max-age="90"'}, 90),
        ({"Cache-Control": "max-age=soon"}, 42),
        ({}, 42),
    ],
)
def test_parse_max_age_follows_rfc9111(headers, seconds):
    assert parse_max_age(headers, default=42) == seconds


def _ec_jwk(**changes):
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True
    )
    return {**jwk, "kid": "k1", "alg": "ES256", "use": "sig", **changes}


def test_load_key_binds_the_jwks_algorithm():
    ec_key = load_key(_ec_jwk())
    assert ec_key is not None and ec_key.algorithm_name == "ES256"
    okp = jwt.algorithms.OKPAlgorithm.to_jwk(
        ed25519.Ed25519PrivateKey.generate().public_key(), as_dict=True
    )
    okp_key = load_key({**okp, "kid": "k2"})
    assert okp_key is not None and okp_key.algorithm_name == "EdDSA"  # inferred from crv


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "k1", "alg": "HS256"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "k1"},
        _ec_jwk(alg="HS256"),
        _ec_jwk(alg="none"),
        _ec_jwk(use="enc"),
        _ec_jwk(kid=None),
        _ec_jwk(x="not-a-point"),
    ],
    ids=["oct-hs256", "oct", "ec-hs256", "ec-none", "enc", "no-kid", "bad-point"],
)
def test_load_key_drops_keys_unfit_to_verify(jwk):
    assert load_key(jwk) is None
