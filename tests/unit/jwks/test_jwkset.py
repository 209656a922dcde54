"""Unit tests of ``keyswap.jwks.jwkset``: the published set carries public members only."""

from __future__ import annotations

import json

import pytest

from keyswap.jwks import ALGORITHMS, PublishedJwks, build_jwk_set, generate_key


@pytest.fixture(scope="module")
def public_jwks():
    """One public JWK per algorithm."""
    return [dict(generate_key(alg).public_jwk) for alg in ALGORITHMS]


def test_set_of_public_keys_is_published_as_given(public_jwks):
    assert build_jwk_set(public_jwks) == {"keys": public_jwks}


def test_private_members_are_dropped():
    jwk = {"kty": "RSA", "n": "n", "e": "AQAB", "kid": "k", "alg": "RS256", "use": "sig"}
    leaked = {**jwk, "d": "x", "p": "x", "q": "x", "dp": "x", "dq": "x", "qi": "x", "k": "x"}
    published = build_jwk_set([leaked])["keys"][0]
    assert published == jwk
    assert not {"d", "p", "q"} & published.keys()


@pytest.mark.parametrize("member", ["kid", "alg", "use"])
def test_key_without_kid_alg_or_use_is_refused(public_jwks, member):
    jwk = {k: v for k, v in public_jwks[0].items() if k != member}
    with pytest.raises(ValueError, match=member):
        build_jwk_set([jwk])


def test_published_jwks_body_etag_and_kids(public_jwks):
    published = PublishedJwks(public_jwks)
    assert json.loads(published.body) == published.document == {"keys": public_jwks}
    assert published.kids == {jwk["kid"] for jwk in public_jwks}
    assert published.etag.startswith('"') and published.etag.endswith('"')
    assert PublishedJwks(public_jwks).etag == published.etag
    assert PublishedJwks(public_jwks[:1]).etag != published.etag
    for member in (b'"d"', b'"p"', b'"q"'):
        assert member not in published.body
