"""Checking a workload's token against the trusts (RFC 7523 §3, RFC 7521 §5.2).

In order, each refusal a fact with a precise reason that says nothing about other trusts:
the token parses; its ``iss`` has trusts; its header names an asymmetric algorithm and a
``kid`` the issuer publishes; the signature verifies with the algorithm the key is bound
to (never ``none`` or HMAC: RFC 8725 §3.1); ``exp``/``nbf``/``iat`` hold with a small
leeway and the lifetime is bounded; ``aud`` names keyswap (or the trust's own audience:
the audience-confusion fix of RFC 7523bis); exactly one trust's ``sub`` and claim globs
match (several is a configuration error, refused); the token was not presented before
(its ``jti``, or its hash when it has none, is stored until it expires, across processes).
The caller then checks the mapped service account through ``policy.check_owner``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keyswap.clients.errors import IssuerUnavailable, UnknownKey
from keyswap.clients.jwks_cache import ASYMMETRIC_ALGS

from ..db import Reader, SessionReader
from ..errors import (
    ASSERTION_AUDIENCE,
    ASSERTION_EXPIRED,
    ASSERTION_FUTURE,
    ASSERTION_LIFETIME,
    ASSERTION_MALFORMED,
    ASSERTION_REPLAYED,
    ASSERTION_SIGNATURE,
    ASSERTION_UNKNOWN_KEY,
    FEDERATION_AMBIGUOUS,
    FEDERATION_ISSUER_UNAVAILABLE,
    FEDERATION_NO_MATCH,
    FEDERATION_UNTRUSTED_ISSUER,
    TemporarilyUnavailable,
    format_time,
)
from ..models import UsedAssertion
from ..policy import Refusal, check_issued_after, check_owner
from .keys import FederatedKeys
from .trusts import CLIENT_ID_PREFIX, TrustRecord, load_trust, load_trusts

#: The claim of an issued token that names the external workload: {"iss", "sub", "trust"}.
FEDERATED_CLAIM = "ks_federated"
#: Clock skew allowed on exp, nbf and iat (seconds).
LEEWAY = 30
#: The longest a workload token may live (exp - iat): a day covers Kubernetes' projected
#: tokens; GitHub's and GitLab's live minutes. The replay store keeps each that long.
MAX_ASSERTION_LIFETIME = 86400
_MAX_JTI = 200


@dataclass(frozen=True)
class AssertionRefused(Refusal):
    """The workload token is refused; ``description`` is public, ``detail`` only logged."""

    description: str
    reason: str = "assertion_refused"
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class FederatedGrant:
    """A workload token that passed every check, and the one trust it matched."""

    trust: TrustRecord
    issuer: str
    subject: str

    def claim(self) -> dict[str, str]:
        """Return the ``ks_federated`` claim naming the external workload and the trust."""
        return {"iss": self.issuer, "sub": self.subject, "trust": self.trust.trust_id}


def _refuse(reason: str, description: str, detail: str | None = None) -> AssertionRefused:
    return AssertionRefused(description, reason=reason, detail=detail)


class FederationVerifier:
    """Check workload tokens against the trusts, with keys from ``FederatedKeys``."""

    def __init__(self, keys: FederatedKeys, audiences: Sequence[str]) -> None:
        """``audiences`` are what names keyswap: its issuer identifier and token endpoint."""
        self.keys = keys
        self.audiences = tuple(audiences)

    def verify(self, session: Session, assertion: str, now: datetime) -> FederatedGrant:
        """Return the grant for ``assertion``, or raise ``AssertionRefused``.

        Raises ``TemporarilyUnavailable`` when the issuer's keys cannot be fetched now.
        """
        header, unverified = _parse(assertion)
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise _refuse("assertion_malformed", ASSERTION_MALFORMED, "no iss")
        trusts = load_trusts(SessionReader(session), issuer)
        if not trusts:
            raise _refuse("untrusted_issuer", FEDERATION_UNTRUSTED_ISSUER, f"iss={issuer}")
        claims = self._verified(assertion, header, issuer, trusts[0].jwks_uri)
        _check_times(claims, int(now.timestamp()))
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise _refuse("assertion_malformed", ASSERTION_MALFORMED, "no sub")
        who = f"iss={issuer} sub={subject}"
        candidates = [t for t in trusts if t.accepts_audience(claims.get("aud"), self.audiences)]
        if not candidates:
            raise _refuse("wrong_audience", ASSERTION_AUDIENCE, f"{who} aud={claims.get('aud')}")
        matched = [t for t in candidates if t.matches(claims)]
        if not matched:
            raise _refuse("no_matching_trust", FEDERATION_NO_MATCH, who)
        if len(matched) > 1:
            ids = ", ".join(t.trust_id for t in matched)
            raise _refuse("ambiguous_trust", FEDERATION_AMBIGUOUS, f"{who} trusts={ids}")
        if not _first_use(session, issuer, assertion, claims, now):
            raise _refuse("assertion_replayed", ASSERTION_REPLAYED, who)
        return FederatedGrant(trust=matched[0], issuer=issuer, subject=subject)

    def _verified(
        self, assertion: str, header: Mapping[str, Any], issuer: str, jwks_uri: str | None
    ) -> dict[str, Any]:
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ASYMMETRIC_ALGS:
            # RFC 8725 §3.1: never "none", never an HMAC keyed by a public key.
            raise _refuse("assertion_algorithm", ASSERTION_SIGNATURE, f"alg={alg!r}")
        if not isinstance(kid, str) or not kid:
            raise _refuse("assertion_malformed", ASSERTION_MALFORMED, "no kid in the header")
        try:
            key = self.keys.key(issuer, jwks_uri, kid)
        except UnknownKey:
            raise _refuse("unknown_key", ASSERTION_UNKNOWN_KEY, f"iss={issuer} kid={kid}") from None
        except IssuerUnavailable as exc:
            raise TemporarilyUnavailable(
                FEDERATION_ISSUER_UNAVAILABLE,
                detail=f"{issuer}: {exc}",
                reason="federation_issuer_unavailable",
            ) from None
        try:
            # The algorithm is the one the key is bound to, whatever the header claims.
            return jwt.decode(
                assertion,
                key,
                algorithms=[key.algorithm_name],
                options={
                    "verify_exp": False,  # checked below against keyswap's clock
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise _refuse("assertion_signature", ASSERTION_SIGNATURE, repr(exc)) from None


def _parse(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, RecursionError) as exc:
        raise _refuse("assertion_malformed", ASSERTION_MALFORMED, repr(exc)) from None
    return header, claims


def _check_times(claims: Mapping[str, Any], now: int) -> None:
    exp, nbf, iat = (_time(claims, name) for name in ("exp", "nbf", "iat"))
    if exp is None:
        raise _refuse("assertion_malformed", ASSERTION_MALFORMED, "no exp")
    # RFC 7523 §3 items 4-6: reject an expired token, one not yet valid, and may reject
    # one issued too far in the past or the future.
    if exp + LEEWAY <= now:
        at = datetime.fromtimestamp(int(exp), UTC)
        raise _refuse("assertion_expired", ASSERTION_EXPIRED.format(at=format_time(at)))
    if (nbf is not None and nbf > now + LEEWAY) or (iat is not None and iat > now + LEEWAY):
        raise _refuse("assertion_not_yet_valid", ASSERTION_FUTURE)
    if exp - (iat if iat is not None else now) > MAX_ASSERTION_LIFETIME:
        raise _refuse(
            "assertion_lifetime", ASSERTION_LIFETIME.format(seconds=MAX_ASSERTION_LIFETIME)
        )


def _time(claims: Mapping[str, Any], name: str) -> float | None:
    """Return the NumericDate claim ``name`` (RFC 7519 §2), None if absent; refuse junk."""
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _refuse("assertion_malformed", ASSERTION_MALFORMED, f"{name} is not a time")
    return float(value)


def _first_use(
    session: Session, issuer: str, assertion: str, claims: Mapping[str, Any], now: datetime
) -> bool:
    """Record the token as used until it expires; False if it was (a replay).

    The primary key (jti, issuer's namespace) makes the check hold across processes. A
    token without a ``jti`` is recorded by its hash: it too is accepted once.
    """
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        key = f"jti:{jti}"
        if len(key) > _MAX_JTI:
            key = "jti-sha256:" + hashlib.sha256(jti.encode()).hexdigest()
    else:
        key = "sha256:" + hashlib.sha256(assertion.encode()).hexdigest()
    namespace = CLIENT_ID_PREFIX + hashlib.sha256(issuer.encode()).hexdigest()[:40]
    expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC) + timedelta(seconds=LEEWAY)
    session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at <= now))
    try:
        with session.begin_nested():
            session.add(UsedAssertion(jti=key, client_id=namespace, expires_at=expires_at))
    except IntegrityError:
        return False
    session.commit()
    return True


def check_federated_token(
    reader: Reader, client_id: str, claims: Mapping[str, Any], now: datetime
) -> bool | None:
    """Tell introspection whether a token issued through a trust is still live.

    None when ``client_id`` is not a trust's; False when the trust was removed or maps
    to someone else; raises a ``Refusal`` when the service account or its tenant is not
    active, or the token predates a revocation cutoff.
    """
    if not client_id.startswith(CLIENT_ID_PREFIX):
        return None
    trust = load_trust(reader, client_id[len(CLIENT_ID_PREFIX) :])
    if trust is None or trust.owner.user_id != claims.get("sub"):
        return False
    check_owner(trust.owner)
    check_issued_after(
        int(claims["iat"]), trust.tokens_revoked_before, trust.owner.tokens_revoked_before
    )
    return True
