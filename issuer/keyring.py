"""The process's signing keys: the prepared signer and the prebuilt JWK Set (RFC 7517).

Private keys are unsealed once per key, not per request; the published JWK Set is built
once per change of the key table. The table is re-read at most every
``refresh_interval`` seconds, so another process's rotation is seen within that time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy.orm import Session, sessionmaker

from keyswap.jwks import (
    KeyPair,
    PublishedJwks,
    Sealer,
    generate_key,
    load_key_pair,
    private_key_bytes,
)

from .db import utcnow
from .models import KeyState, SigningKey
from .storage import active_signing_key, list_signing_keys

log = logging.getLogger(__name__)


class NoSigningKey(RuntimeError):
    """There is no active signing key: run ``keyswap keys rotate`` or ``keyswap serve``."""


def create_signing_key(
    session: Session, sealer: Sealer, alg: str, state: KeyState, *, now: datetime | None = None
) -> SigningKey:
    """Generate a key pair, seal its private half, and store it in ``state``."""
    pair = generate_key(alg)
    now = now or utcnow()
    row = SigningKey(
        kid=pair.kid,
        alg=pair.alg,
        public_jwk=dict(pair.public_jwk),
        sealed_private_key=sealer.seal(private_key_bytes(pair), kid=pair.kid),
        state=state,
        created_at=now,
        activated_at=now if state is KeyState.ACTIVE else None,
    )
    session.add(row)
    session.flush()
    return row


def ensure_signing_key(session: Session, sealer: Sealer, alg: str = "ES256") -> SigningKey:
    """Return the active signing key, creating one if there is none."""
    row = active_signing_key(session)
    if row is not None:
        return row
    return create_signing_key(session, sealer, alg, KeyState.ACTIVE)


def unseal(sealer: Sealer, row: SigningKey) -> KeyPair:
    """Open a stored key; ``keyswap.jwks.KeyUnsealError`` when the KEK is not the one it was sealed
    with."""
    return load_key_pair(row.alg, sealer.unseal(row.sealed_private_key, kid=row.kid))


def is_published(row: SigningKey, now: datetime, max_token_ttl: int) -> bool:
    """Tell whether a key belongs in the JWK Set: not retired, or retired after its last token.

    A retired key stays until every token it signed has expired (at most ``max_token_ttl``
    after it stopped signing), so offline verifiers never meet an unknown kid.
    """
    if row.state is not KeyState.RETIRED:
        return True
    return row.retired_at is None or row.retired_at + timedelta(seconds=max_token_ttl) > now


class KeyRing:
    """The cached signer and JWK Set of one process, refreshed from the database.

    ``on_refresh`` runs before each re-read: the app passes the rotation step, so every
    process takes part in a scheduled rotation and the database decides who acts.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        sealer: Sealer,
        *,
        max_token_ttl: int,
        refresh_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_refresh: Callable[[], object] | None = None,
    ) -> None:
        self._on_refresh = on_refresh
        self._session_factory = session_factory
        self._sealer = sealer
        self._max_token_ttl = max_token_ttl
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._signer: KeyPair | None = None
        self._published: PublishedJwks | None = None
        self._verifiers: Mapping[str, tuple[Any, str]] = {}
        self._checked_at = float("-inf")

    def signer(self) -> KeyPair:
        """Return the key that signs now; NoSigningKey if the database has none."""
        self._refresh_if_stale()
        if self._signer is None:
            raise NoSigningKey("no active signing key")
        return self._signer

    def published(self) -> PublishedJwks:
        """Return the JWK Set to serve: next, active, and recently retired public keys."""
        self._refresh_if_stale()
        if self._published is None:
            raise NoSigningKey("no signing keys")
        return self._published

    def verify(self, token: str, *, issuer: str, typ: str) -> dict[str, Any] | None:
        """Return the claims of a token this issuer signed with a published key, or None.

        Checks the signature, ``typ``, ``iss``, ``exp`` and ``nbf``; never the audience,
        which is the resource server's business. Any defect gives None: callers treat an
        unverifiable token as unknown (RFC 7009 §2.2, RFC 7662 §2.2).
        """
        self._refresh_if_stale()
        try:
            header = jwt.get_unverified_header(token)
            key, alg = self._verifiers[header["kid"]]
            if header.get("typ", "").lower() != typ or header.get("alg") != alg:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=issuer,
                options={
                    "verify_aud": False,
                    "require": ["iss", "sub", "exp", "iat", "jti", "client_id"],
                },
            )
        except (jwt.InvalidTokenError, KeyError, TypeError):
            return None
        return claims

    def reload(self) -> None:
        """Re-read the key table now (after a rotation in this process, say)."""
        with self._lock:
            self._load()

    def _refresh_if_stale(self) -> None:
        if self._clock() - self._checked_at < self._refresh_interval:
            return
        with self._lock:
            if self._clock() - self._checked_at < self._refresh_interval:
                return
            try:
                self._load()
            except Exception:
                if self._signer is None:
                    raise
                # Keep signing with the key we hold: a database blip must not stop the
                # JWKS or, on its own, issuance (the live status read fails closed anyway).
                log.warning(
                    "could not refresh signing keys; keeping the cached ones", exc_info=True
                )

    def _load(self) -> None:
        if self._on_refresh is not None:
            self._on_refresh()
        now = utcnow()
        with self._session_factory() as session:
            rows = list_signing_keys(session)
        published = [row for row in rows if is_published(row, now, self._max_token_ttl)]
        active = next((row for row in rows if row.state is KeyState.ACTIVE), None)
        if active is None:
            signer = None
        elif self._signer is not None and self._signer.kid == active.kid:
            signer = self._signer
        else:
            signer = unseal(self._sealer, active)
        kids = frozenset(row.kid for row in published)
        if self._published is None or self._published.kids != kids:
            self._published = PublishedJwks(row.public_jwk for row in published)
            self._verifiers = {
                row.kid: (jwt.PyJWK(dict(row.public_jwk)).key, row.alg) for row in published
            }
        self._signer = signer
        self._checked_at = self._clock()
