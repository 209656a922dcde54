"""Legacy API keys, the subject tokens of keyswap's RFC 8693 exchange: storage side.

``keys`` (hashing, the one-query lookup, live status, revocation), ``importing`` (CSV),
``usage`` (coalesced last-used and counts), ``report``. The grant itself is
``keyswap.issuer.grants.token_exchange``; the commands are ``keyswap.issuer.cli.legacy``.
"""

from __future__ import annotations

from .keys import (
    CLIENT_ID_PREFIX,
    LEGACY_CLAIM,
    KeyRetired,
    LegacyRecord,
    check_legacy_key,
    check_legacy_token,
    hash_api_key,
    load_legacy_key,
    load_legacy_status,
    revoke_legacy_key,
)

__all__ = [
    "CLIENT_ID_PREFIX",
    "LEGACY_CLAIM",
    "KeyRetired",
    "LegacyRecord",
    "check_legacy_key",
    "check_legacy_token",
    "hash_api_key",
    "load_legacy_key",
    "load_legacy_status",
    "revoke_legacy_key",
]
