"""Keyed hashes of high-entropy secrets: HMAC-SHA256 under a server pepper.

Client secrets and API keys are random and long, so a slow password hash adds nothing
but latency; the pepper (derived from the KEK, never stored in the database) makes a
stolen table useless for offline guessing. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from keyswap.jwks import derive_key

PEPPER_PURPOSE = "client-secret-pepper"


def new_secret() -> str:
    """Return a new client secret: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


class SecretHasher:
    """Hash and check secrets under one pepper."""

    __slots__ = ("_pepper",)

    def __init__(self, kek: bytes) -> None:
        self._pepper = derive_key(kek, PEPPER_PURPOSE)

    def hash(self, secret: str) -> str:
        """Return the hex HMAC-SHA256 of ``secret``."""
        return hmac.new(self._pepper, secret.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def matches(candidate_hash: str, stored_hash: str) -> bool:
        """Compare two hashes in constant time."""
        return hmac.compare_digest(candidate_hash, stored_hash)
