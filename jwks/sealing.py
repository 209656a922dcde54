"""Encryption of private signing keys at rest: AES-256-GCM with the kid as associated data.

In the manner of Ory Hydra's ``aead`` package, with one addition: the kid is bound as
associated data, so a sealed key copied into another row does not open. Keys for
different purposes are derived from the one KEK with HKDF-SHA256 (RFC 5869).
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import InvalidKeyEncryptionKey, KeyUnsealError

KEK_BYTES = 32
_VERSION = b"\x01"
_NONCE_BYTES = 12
SEALING_PURPOSE = "signing-key-sealing"


def generate_kek() -> str:
    """Return a new key-encryption key: 32 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(os.urandom(KEK_BYTES)).rstrip(b"=").decode()


def decode_kek(text: str) -> bytes:
    """Decode a KEK made by ``generate_kek``; InvalidKeyEncryptionKey if it is not one."""
    value = text.strip()
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEK_BYTES or not value:
        raise InvalidKeyEncryptionKey(
            "the key-encryption key must be 32 random bytes in base64url, as printed by "
            "`python -c 'import keyswap.jwks; print(keyswap.jwks.generate_kek())'` "
            "(set it in KEYSWAP_KEY_ENCRYPTION_KEY)"
        )
    return raw


def derive_key(kek: bytes, purpose: str) -> bytes:
    """Derive a 32-byte key for ``purpose`` from the KEK (HKDF-SHA256)."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"keyswap " + purpose.encode()
    )
    return hkdf.derive(kek)


class Sealer:
    """Seal and unseal private keys with a key derived from the KEK."""

    __slots__ = ("_aead",)

    def __init__(self, kek: bytes) -> None:
        self._aead = AESGCM(derive_key(kek, SEALING_PURPOSE))

    def seal(self, plaintext: bytes, *, kid: str) -> bytes:
        """Encrypt ``plaintext`` bound to ``kid``: version, nonce, ciphertext and tag."""
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, kid.encode())

    def unseal(self, blob: bytes, *, kid: str) -> bytes:
        """Decrypt a sealed key; KeyUnsealError on any mismatch or damage."""
        if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _VERSION:
            raise KeyUnsealError(kid)
        nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, kid.encode())
        except InvalidTag:
            raise KeyUnsealError(kid) from None
