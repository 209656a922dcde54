"""Unit tests of ``keyswap.jwks.sealing``: AES-256-GCM with the kid bound as associated data."""

from __future__ import annotations

import secrets

import pytest

from keyswap.jwks import (
    InvalidKeyEncryptionKey,
    KeyUnsealError,
    Sealer,
    decode_kek,
    derive_key,
    generate_kek,
)

KEK = secrets.token_bytes(32)
PLAINTEXT = b"private key bytes"


def test_seal_then_unseal_round_trips():
    sealer = Sealer(KEK)
    blob = sealer.seal(PLAINTEXT, kid="kid-1")
    assert PLAINTEXT not in blob
    assert Sealer(KEK).unseal(blob, kid="kid-1") == PLAINTEXT


def test_each_seal_uses_a_fresh_nonce():
    sealer = Sealer(KEK)
    assert sealer.seal(PLAINTEXT, kid="kid-1") != sealer.seal(PLAINTEXT, kid="kid-1")


def test_wrong_kek_fails_with_a_message_naming_the_variable():
    blob = Sealer(KEK).seal(PLAINTEXT, kid="kid-1")
    with pytest.raises(KeyUnsealError) as caught:
        Sealer(secrets.token_bytes(32)).unseal(blob, kid="kid-1")
    assert caught.value.kid == "kid-1"
    assert "KEYSWAP_KEY_ENCRYPTION_KEY" in str(caught.value)


def test_kid_is_associated_data_so_swapped_ciphertexts_fail():
    sealer = Sealer(KEK)
    first = sealer.seal(b"first key", kid="kid-1")
    second = sealer.seal(b"second key", kid="kid-2")
    with pytest.raises(KeyUnsealError):
        sealer.unseal(second, kid="kid-1")
    with pytest.raises(KeyUnsealError):
        sealer.unseal(first, kid="kid-2")


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),
        lambda blob: b"\x02" + blob[1:],
        lambda blob: blob[:20],
        lambda blob: b"",
    ],
    ids=["flipped-tag-bit", "unknown-version", "truncated", "empty"],
)
def test_damaged_blob_fails(damage):
    sealer = Sealer(KEK)
    with pytest.raises(KeyUnsealError):
        sealer.unseal(damage(sealer.seal(PLAINTEXT, kid="kid-1")), kid="kid-1")


def test_generated_kek_decodes_to_32_bytes():
    text = generate_kek()
    assert len(decode_kek(text)) == 32
    assert decode_kek(f"  {text}\n") == decode_kek(text)
    assert generate_kek() != text


@pytest.mark.parametrize("text", ["", "   ", "abc", "!" * 43, generate_kek() + "AAAA"])
def test_malformed_kek_is_refused(text):
    with pytest.raises(InvalidKeyEncryptionKey, match="KEYSWAP_KEY_ENCRYPTION_KEY"):
        decode_kek(text)


def test_derived_keys_differ_by_purpose_and_kek():
    assert derive_key(KEK, "a") != derive_key(KEK, "b")
    assert derive_key(KEK, "a") != derive_key(secrets.token_bytes(32), "a")
    assert derive_key(KEK, "a") == derive_key(KEK, "a")
    assert len(derive_key(KEK, "a")) == 32
