"""Errors of the signing-key package.

JwksError
├── UnsupportedAlgorithm      an alg keyswap does not sign with, or a key of another type
├── InvalidKeyEncryptionKey   the KEK text is not 32 base64url bytes
└── KeyUnsealError            a sealed private key does not open with this KEK and kid
"""

from __future__ import annotations


class JwksError(Exception):
    """Root of the errors raised by ``jwks``."""


class UnsupportedAlgorithm(JwksError):
    """The algorithm is not one keyswap signs with."""


class InvalidKeyEncryptionKey(JwksError):
    """The key-encryption key text is malformed."""


class KeyUnsealError(JwksError):
    """A sealed private key cannot be opened (wrong KEK, wrong kid, or tampered)."""

    def __init__(self, kid: str) -> None:
        super().__init__(
            f"cannot decrypt signing key {kid}: KEYSWAP_KEY_ENCRYPTION_KEY is not the key "
            "these signing keys were encrypted with"
        )
        self.kid = kid
