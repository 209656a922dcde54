"""Signing keys: generation, encryption at rest, and the public JWK Set.

Imports neither ``issuer`` nor Flask.
"""

from .errors import InvalidKeyEncryptionKey, JwksError, KeyUnsealError, UnsupportedAlgorithm
from .jwkset import PRIVATE_MEMBERS, PublishedJwks, build_jwk_set
from .keys import (
    ALGORITHMS,
    DEFAULT_ALG,
    KeyPair,
    generate_key,
    load_key_pair,
    private_key_bytes,
    thumbprint,
)
from .rotation import KeyView, Promote, PublishNext, Schedule, next_step
from .sealing import Sealer, decode_kek, derive_key, generate_kek

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALG",
    "InvalidKeyEncryptionKey",
    "JwksError",
    "KeyPair",
    "KeyUnsealError",
    "KeyView",
    "PRIVATE_MEMBERS",
    "Promote",
    "PublishNext",
    "Schedule",
    "PublishedJwks",
    "Sealer",
    "UnsupportedAlgorithm",
    "build_jwk_set",
    "decode_kek",
    "derive_key",
    "generate_kek",
    "generate_key",
    "load_key_pair",
    "next_step",
    "private_key_bytes",
    "thumbprint",
]
