"""The process's signing keys: the prepared signer and the prebuilt JWK Set (RFC 7517).

Private keys are unsealed once per key, not per request; the published JWK Set is built
once per change of the key table. The table is re-read every ``refresh_interval``
seconds, so another process's rotation or revocation is seen within that time: by the
process's maintenance loop (``keyswap.issuer.maintenance``) when it runs one, otherwise by the
first request that finds the copy stale. Either way requests only ever read the copy:
one thread re-reads while the others keep using what is loaded, and a failed re-read
is retried only after another interval (no request waits on the database behind a lock).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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

from .errors import NoSigningKey as NoSigningKey  # re-exported
from .models import KeyState, SigningKey
from .storage import active_signing_key, list_signing_keys

log = logging.getLogger(__name__)


def create_signing_key(
    session: Session, sealer: Sealer, alg: str, state: KeyState, *, now: datetime
) -> SigningKey:
    """Generate a key pair, seal its private half, and store it in ``state``, created at ``now``."""
    pair = generate_key(alg)
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


def ensure_signing_key(
    session: Session, sealer: Sealer, alg: str = "ES256", *, now: datetime
) -> SigningKey:
    """Return the active signing key, creating one (active from ``now``) if there is none."""
    row = active_signing_key(session)
    if row is not None:
        return row
    return create_signing_key(session, sealer, alg, KeyState.ACTIVE, now=now)


def unseal(sealer: Sealer, row: SigningKey) -> KeyPair:
    """Open a stored key; ``keyswap.jwks.KeyUnsealError`` when the KEK is not the one it was sealed
    with."""
    return load_key_pair(row.alg, sealer.unseal(row.sealed_private_key, kid=row.kid))


def is_published(row: SigningKey, now: datetime, max_token_ttl: int) -> bool:
    """Tell whether a key belongs in the JWK Set: not revoked, and not retired past its tokens.

    A retired key stays until every token it signed has expired (at most ``max_token_ttl``
    after it stopped signing), so offline verifiers never meet an unknown kid. A revoked
    key leaves at once: its tokens must stop verifying.
    """
    if row.state is KeyState.REVOKED:
        return False
    if row.state is not KeyState.RETIRED:
        return True
    return row.retired_at is None or row.retired_at + timedelta(seconds=max_token_ttl) > now


@dataclass(frozen=True, slots=True)
class _Loaded:
    """One reading of the key table, swapped in whole so readers never see half of one."""

    signer: KeyPair | None
    published: PublishedJwks
    verifiers: Mapping[str, tuple[Any, str]]


_NEVER = datetime.min.replace(tzinfo=UTC)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _current_at(claims: dict[str, Any], now: float) -> bool:
    """Tell whether ``now`` is within the token's times: before ``exp``, not before ``nbf``/``iat``.

    PyJWT's own rules (RFC 7519 §4.1.4-4.1.6, no leeway), against the app's clock.
    """
    exp, nbf, iat = claims["exp"], claims.get("nbf", float("-inf")), claims["iat"]
    if not (_number(exp) and _number(nbf) and _number(iat)):
        return False
    return bool(now < exp and nbf <= now and iat <= now)


class KeyRing:
    """The cached signer and JWK Set of one process, re-read from the database.

    Requests never write and never wait on the database: rotation steps are the
    maintenance loop's (``keyswap.issuer.maintenance``), and re-reading is single-flight.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        sealer: Sealer,
        *,
        max_token_ttl: int,
        refresh_interval: float = 10.0,
        clock: Callable[[], datetime],
    ) -> None:
        self._session_factory = session_factory
        self._sealer = sealer
        self._max_token_ttl = max_token_ttl
        self._interval = timedelta(seconds=refresh_interval)
        self._clock = clock
        # Held only by the thread re-reading the table; requests never block on it.
        self._reading = threading.Lock()
        self._loaded: _Loaded | None = None
        self._next_read = _NEVER
        self._background = False

    def refresh_in_background(self) -> None:
        """Leave re-reading to the maintenance loop: requests then never touch the database."""
        self._background = True

    def signer(self) -> KeyPair:
        """Return the key that signs now; NoSigningKey if none is active (or loaded)."""
        signer = self._current().signer
        if signer is None:
            raise NoSigningKey("no active signing key")
        return signer

    def published(self) -> PublishedJwks:
        """Return the JWK Set to serve: next, active, and recently retired public keys."""
        return self._current().published

    def verify(self, token: str, *, issuer: str, typ: str) -> dict[str, Any] | None:
        """Return the claims of a token this issuer signed with a published key, or None.

        Checks the signature, ``typ``, ``iss``, ``exp`` and ``nbf``; never the audience,
        which is the resource server's business. Any defect gives None: callers treat an
        unverifiable token as unknown (RFC 7009 §2.2, RFC 7662 §2.2). A revoked key is
        not published, so its tokens give None.
        """
        verifiers = self._current().verifiers
        try:
            header = jwt.get_unverified_header(token)
            key, alg = verifiers[header["kid"]]
            kind = header.get("typ")
            if not isinstance(kind, str) or kind.lower() != typ or header.get("alg") != alg:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=issuer,
                options={
                    "verify_aud": False,
                    # Times are judged by the app's clock below, not PyJWT's time.time().
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["iss", "sub", "exp", "iat", "jti", "client_id"],
                },
            )
        except (jwt.InvalidTokenError, KeyError, TypeError, RecursionError):
            # RecursionError: a header or payload of deeply nested JSON.
            return None
        return claims if _current_at(claims, self._clock().timestamp()) else None

    def reload(self) -> None:
        """Re-read the key table now, raising what the read raises (start-up, maintenance)."""
        with self._reading:
            self._read()

    def _current(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None and (self._background or self._clock() < self._next_read):
            return loaded
        if self._background:
            if loaded is None:
                raise NoSigningKey("the signing keys are not loaded yet")
            return loaded
        # Once keys are loaded, another thread's read never holds a request up: it keeps
        # using what is loaded. Before the first load there is nothing to use, so a request
        # waits (briefly) for the read in flight instead of failing.
        if not self._reading.acquire(blocking=loaded is None, timeout=-1 if loaded else 5):
            if loaded is None:
                raise NoSigningKey("the signing keys are not loaded yet")
            return loaded
        try:
            if self._clock() < self._next_read:  # read by another thread meanwhile, or failed
                if self._loaded is None:
                    raise NoSigningKey("the signing keys could not be read; retrying shortly")
                return self._loaded
            try:
                self._read()
            except Exception:
                if self._loaded is None:
                    raise
                # Keep the keys we hold: a database blip must not stop the JWKS or, on
                # its own, issuance (the live status read fails closed anyway).
                log.warning(
                    "could not refresh signing keys; keeping the cached ones", exc_info=True
                )
        finally:
            self._reading.release()
        assert self._loaded is not None
        return self._loaded

    def _read(self) -> None:
        # The next attempt waits a full interval, failed or not: during an outage each
        # process tries the database once per interval, not once per request.
        self._next_read = self._clock() + self._interval
        with self._session_factory() as session:
            rows = list_signing_keys(session)
        now = self._clock()
        published = [row for row in rows if is_published(row, now, self._max_token_ttl)]
        active = next((row for row in rows if row.state is KeyState.ACTIVE), None)
        previous = self._loaded
        if active is None:
            signer = None
        elif (
            previous is not None
            and previous.signer is not None
            and previous.signer.kid == active.kid
        ):
            signer = previous.signer
        else:
            signer = unseal(self._sealer, active)
        kids = frozenset(row.kid for row in published)
        if previous is not None and previous.published.kids == kids:
            jwk_set, verifiers = previous.published, previous.verifiers
        else:
            jwk_set = PublishedJwks(row.public_jwk for row in published)
            verifiers = {
                row.kid: (jwt.PyJWK(dict(row.public_jwk)).key, row.alg) for row in published
            }
        self._loaded = _Loaded(signer=signer, published=jwk_set, verifiers=verifiers)
