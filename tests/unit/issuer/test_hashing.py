"""Unit tests of ``keyswap.issuer.hashing``: keyed hashes of secrets, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pytest

from keyswap.issuer.hashing import PEPPER_PURPOSE, SecretHasher, new_secret
from keyswap.jwks import derive_key

KEK = bytes(range(32))


def test_hash_is_hmac_sha256_under_the_pepper_derived_from_the_kek():
    pepper = derive_key(KEK, PEPPER_PURPOSE)
    expected = hmac.new(pepper, b"s3cret", hashlib.sha256).hexdigest()
    assert SecretHasher(KEK).hash("s3cret") == expected


def test_hash_is_keyed_not_a_plain_digest():
    digest = SecretHasher(KEK).hash("s3cret")
    assert digest != hashlib.sha256(b"s3cret").hexdigest()
    assert "s3cret" not in digest
    assert len(digest) == 64


def test_hash_is_deterministic_for_one_pepper():
    assert SecretHasher(KEK).hash("s3cret") == SecretHasher(KEK).hash("s3cret")


def test_pepper_matters_another_kek_gives_another_hash():
    other = secrets.token_bytes(32)
    assert SecretHasher(KEK).hash("s3cret") != SecretHasher(other).hash("s3cret")
    assert not SecretHasher.matches(
        SecretHasher(other).hash("s3cret"), SecretHasher(KEK).hash("s3cret")
    )


def test_different_secrets_hash_differently():
    hasher = SecretHasher(KEK)
    assert hasher.hash("s3cret") != hasher.hash("s3cret ")


def test_matches_compares_with_hmac_compare_digest(monkeypatch):
    # Constant time is a property of hmac.compare_digest; check that it is the comparison used.
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    hasher = SecretHasher(KEK)
    stored = hasher.hash("s3cret")
    assert SecretHasher.matches(hasher.hash("s3cret"), stored) is True
    assert SecretHasher.matches(hasher.hash("wrong"), stored) is False
    assert len(calls) == 2


@pytest.mark.parametrize("candidate", ["", "0" * 64, "short"])
def test_matches_refuses_anything_but_the_same_hash(candidate):
    assert SecretHasher.matches(candidate, SecretHasher(KEK).hash("s3cret")) is False


def test_new_secret_has_256_random_bits_url_safe():
    secret = new_secret()
    assert len(secret) == 43
    assert set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len({new_secret() for _ in range(100)}) == 100
