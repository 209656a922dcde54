"""Unit tests of ``keyswap.jwks.keys``: generation, signing, and the RFC 7638 kid."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import JWKRegistry

from keyswap.jwks import (
    ALGORITHMS,
    KeyPair,
    UnsupportedAlgorithm,
    generate_key,
    load_key_pair,
    private_key_bytes,
    thumbprint,
)

CLAIMS = {"sub": "svc_1", "scope": "orders:read"}


@pytest.fixture(scope="module", params=ALGORITHMS)
def pair(request: pytest.FixtureRequest) -> KeyPair:
    """One key per supported algorithm."""
    return generate_key(request.param)


def test_supported_algorithms():
    assert ALGORITHMS == ("ES256", "RS256", "EdDSA")


def test_signed_token_verifies_with_the_public_jwk(pair):
    token = pair.sign(CLAIMS, typ="at+jwt")
    public = jwt.PyJWK(dict(pair.public_jwk)).key
    assert jwt.decode(token, public, algorithms=[pair.alg]) == CLAIMS
    assert jwt.get_unverified_header(token) == {"alg": pair.alg, "kid": pair.kid, "typ": "at+jwt"}


def test_signature_does_not_verify_with_another_key(pair):
    other = generate_key(pair.alg)
    token = pair.sign(CLAIMS, typ="at+jwt")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, jwt.PyJWK(dict(other.public_jwk)).key, algorithms=[pair.alg])


def test_kid_is_the_rfc_7638_thumbprint_computed_by_joserfc(pair):
    reference = JWKRegistry.import_key(dict(pair.public_jwk)).thumbprint()
    assert pair.kid == reference == pair.public_jwk["kid"]


def test_public_jwk_has_kid_alg_use_and_no_private_members(pair):
    jwk = pair.public_jwk
    assert (jwk["alg"], jwk["use"]) == (pair.alg, "sig")
    assert not {"d", "p", "q", "dp", "dq", "qi", "key_ops"} & jwk.keys()


def test_key_types_and_sizes():
    assert generate_key("ES256").public_jwk["crv"] == "P-256"
    assert generate_key("EdDSA").public_jwk["crv"] == "Ed25519"
    rsa_pair = generate_key("RS256")
    assert isinstance(rsa_pair.private_key, rsa.RSAPrivateKey)
    assert rsa_pair.private_key.key_size == 2048


def test_thumbprint_matches_rfc_7638_section_3_1_example():
    # RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS"
            "oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65"
            "YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyr"
            "dkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzK"
            "nqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_of_unknown_key_type_is_refused():
    with pytest.raises(UnsupportedAlgorithm):
        thumbprint({"kty": "oct", "k": "AAAA"})


def test_private_key_round_trips_through_pkcs8_der(pair):
    loaded = load_key_pair(pair.alg, private_key_bytes(pair))
    assert (loaded.kid, loaded.alg, loaded.public_jwk) == (pair.kid, pair.alg, pair.public_jwk)


@pytest.mark.parametrize("alg", ["HS256", "ES384", "none", ""])
def test_unsupported_algorithm_is_refused(alg):
    with pytest.raises(UnsupportedAlgorithm):
        generate_key(alg)


def test_loading_a_key_of_another_type_is_refused():
    der = private_key_bytes(generate_key("ES256"))
    with pytest.raises(UnsupportedAlgorithm):
        load_key_pair("RS256", der)


def test_es256_refuses_a_key_on_another_curve():
    from cryptography.hazmat.primitives import serialization

    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(UnsupportedAlgorithm, match="P-256"):
        load_key_pair("ES256", p384)
