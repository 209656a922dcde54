"""Federation trusts: which external issuer's workload tokens map to which service account.

A trust names an issuer (its keys from OIDC discovery, or a given JWKS URL), the ``aud``
its tokens must carry, glob conditions on ``sub`` and on other claims, and what the
issued tokens get (scopes, resources, lifetime). The operations here are what the CLI
(and an admin API) call; each records an audit event in the caller's transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from keyswap.clients.outbound import check_outbound_url

from .. import events
from ..db import PreparedRead, Reader
from ..lifecycle import InvalidValue
from ..models import FederationTrust, Tenant, User, UserKind, UserStatus
from ..rules import check_audiences, check_scopes
from ..storage import Conflict, NotFound, OwnerStatus, get_user

#: The ``client_id`` of tokens issued through a trust is ``fed:<trust id>``.
CLIENT_ID_PREFIX = "fed:"
TRUST_ADDED = "federation.trust_added"
TRUST_REMOVED = "federation.trust_removed"
_MAX_URL = 2000


@dataclass(frozen=True, slots=True)
class TrustRecord:
    """A live trust with its service account's status, read in one query."""

    trust_id: str
    issuer: str
    jwks_uri: str | None
    audience: str | None
    subject: str | None
    claims: Mapping[str, str]
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    token_ttl: int | None
    tokens_revoked_before: datetime | None
    owner: OwnerStatus

    @property
    def client_id(self) -> str:
        """Return the ``client_id`` of the tokens issued through this trust."""
        return CLIENT_ID_PREFIX + self.trust_id

    def accepts_audience(self, aud: Any, own: Sequence[str]) -> bool:
        """Tell whether ``aud`` (a string or list) names keyswap as this trust requires.

        RFC 7523 §3: the JWT MUST contain an ``aud`` identifying the authorization server;
        with no audience of its own, the trust accepts keyswap's issuer or token endpoint.
        """
        wanted = (self.audience,) if self.audience else tuple(own)
        values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        return any(isinstance(value, str) and value in wanted for value in values)

    def matches(self, claims: Mapping[str, Any]) -> bool:
        """Tell whether the token's ``sub`` and claims meet every condition of this trust."""
        if self.subject is not None and not _glob(claims.get("sub"), self.subject):
            return False
        return all(_glob(claim_value(claims, path), glob) for path, glob in self.claims.items())


def claim_value(claims: Mapping[str, Any], path: str) -> Any:
    """Return the claim at ``path``: a name, or names joined by ``/`` into nested objects.

    ``kubernetes.io/namespace`` is the ``namespace`` member of the ``kubernetes.io`` claim.
    """
    value: Any = claims
    for name in path.split("/"):
        if not isinstance(value, Mapping) or name not in value:
            return None
        value = value[name]
    return value


def _glob(value: Any, pattern: str) -> bool:
    # Booleans and numbers compare by their JSON text (GitLab's ref_protected is "true",
    # other issuers send true); objects, lists and missing claims never match.
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, int | float):
        value = str(value)
    return isinstance(value, str) and fnmatchcase(value, pattern)


_TRUSTS_QUERY = (
    select(
        FederationTrust.id,
        FederationTrust.issuer,
        FederationTrust.jwks_uri,
        FederationTrust.audience,
        FederationTrust.subject,
        FederationTrust.claims,
        FederationTrust.scopes,
        FederationTrust.resources,
        FederationTrust.token_ttl,
        FederationTrust.tokens_revoked_before,
        User.id,
        User.status,
        User.tokens_revoked_before,
        Tenant.name,
        Tenant.status,
        Tenant.tokens_revoked_before,
    )
    .join(User, User.id == FederationTrust.service_account_id)
    .join(Tenant, Tenant.id == User.tenant_id)
    .order_by(FederationTrust.created_at, FederationTrust.id)
)


def _record(row: Any) -> TrustRecord:
    (
        trust_id, issuer, jwks_uri, audience, subject, claims, scopes, resources, token_ttl,
        trust_cutoff, user_id, user_status, user_cutoff, tenant, tenant_status, tenant_cutoff,
    ) = row  # fmt: skip
    return TrustRecord(
        trust_id=trust_id,
        issuer=issuer,
        jwks_uri=jwks_uri,
        audience=audience,
        subject=subject,
        claims=dict(claims or {}),
        scopes=tuple(scopes.split()),
        resources=tuple(resources or ()),
        token_ttl=token_ttl,
        tokens_revoked_before=trust_cutoff,
        owner=OwnerStatus.of(
            user_id, user_status, user_cutoff, tenant, tenant_status, tenant_cutoff
        ),
    )


_BY_ISSUER = PreparedRead(
    _TRUSTS_QUERY.where(
        FederationTrust.issuer == bindparam("issuer"), FederationTrust.removed_at.is_(None)
    )
)
_BY_ID = PreparedRead(
    _TRUSTS_QUERY.where(
        FederationTrust.id == bindparam("trust_id"), FederationTrust.removed_at.is_(None)
    )
)


def load_trusts(reader: Reader, issuer: str) -> list[TrustRecord]:
    """Return the live trusts of ``issuer`` with their service accounts' status, live."""
    return [_record(row) for row in reader.rows(_BY_ISSUER, issuer=issuer)]


def load_trust(reader: Reader, trust_id: str) -> TrustRecord | None:
    """Return the live trust ``trust_id``, or None if there is none (or it was removed)."""
    rows = reader.rows(_BY_ID, trust_id=trust_id)
    return _record(rows[0]) if rows else None


def _check_url(url: str, what: str, *, allow_private: bool) -> str:
    if len(url) > _MAX_URL:
        raise InvalidValue(f"{what} is longer than {_MAX_URL} characters")
    try:
        return check_outbound_url(url, what, allow_private=allow_private)
    except ValueError as exc:
        raise InvalidValue(str(exc)) from None


def _check_glob(what: str, glob: str) -> str:
    if not glob or len(glob) > _MAX_URL:
        raise InvalidValue(f"{what} must be 1-{_MAX_URL} characters")
    return glob


def add_trust(
    session: Session,
    *,
    issuer: str,
    service_account: str,
    jwks_uri: str | None = None,
    audience: str | None = None,
    subject: str | None = None,
    claims: Mapping[str, str] | None = None,
    scope: str = "",
    resources: Sequence[str] = (),
    token_ttl: int | None = None,
    max_token_ttl: int,
    allow_private: bool = False,
    actor: str,
) -> FederationTrust:
    """Trust ``issuer``'s tokens that meet the conditions, as ``service_account``.

    The issuer's keys come from ``jwks_uri``, or else from its OIDC discovery document
    (so ``issuer`` must then be an https URL keyswap may fetch). At least one condition
    (``subject`` or ``claims``) is required: without one, every workload the issuer
    serves — every GitHub repository in the world — would match.
    """
    claims = dict(claims or {})
    if subject is None and not claims:
        raise InvalidValue(
            "a trust needs --subject or --claim: without a condition, every workload of "
            "the issuer would match"
        )
    if subject is not None:
        _check_glob("--subject", subject)
    for path, glob in claims.items():
        if not path or any(not name for name in path.split("/")):
            raise InvalidValue(f"claim name {path!r} is empty or has an empty path segment")
        _check_glob(f"--claim {path}", glob)
    if not issuer or len(issuer) > _MAX_URL:
        raise InvalidValue(f"the issuer must be 1-{_MAX_URL} characters")
    if jwks_uri is None:
        _check_url(issuer, "the issuer (its OIDC discovery document)", allow_private=allow_private)
    else:
        jwks_uri = _check_url(jwks_uri, "the JWKS URL", allow_private=allow_private)
    if audience is not None:
        _check_glob("--audience", audience)
    if token_ttl is not None and not 1 <= token_ttl <= max_token_ttl:
        raise InvalidValue(f"token TTL must be between 1 and {max_token_ttl} seconds")
    others = session.scalars(
        select(FederationTrust.jwks_uri).where(
            FederationTrust.issuer == issuer, FederationTrust.removed_at.is_(None)
        )
    ).all()
    if any(other != jwks_uri for other in others):
        raise Conflict(
            f"the other trusts of {issuer} take its keys from another source; one issuer "
            "has one set of keys"
        )
    user = get_user(session, service_account)
    if user.kind is not UserKind.SERVICE_ACCOUNT:
        raise Conflict(f"{service_account!r} is not a service account")
    if user.status is not UserStatus.ACTIVE:
        raise Conflict(f"service account {service_account!r} is {user.status.value}")
    trust = FederationTrust(
        id=f"fed_{secrets.token_hex(8)}",
        issuer=issuer,
        jwks_uri=jwks_uri,
        service_account=user,
        audience=audience,
        subject=subject,
        claims=claims,
        scopes=" ".join(check_scopes(scope)),
        resources=list(check_audiences(resources)),
        token_ttl=token_ttl,
    )
    session.add(trust)
    session.flush()
    events.record(
        session,
        TRUST_ADDED,
        f"federation:{trust.id}",
        actor=actor,
        issuer=issuer,
        service_account=service_account,
        subject_glob=subject,
        claims=claims or None,
    )
    return trust


def list_trusts(session: Session) -> list[FederationTrust]:
    """Return the live trusts, oldest first."""
    query = (
        select(FederationTrust)
        .where(FederationTrust.removed_at.is_(None))
        .order_by(FederationTrust.created_at, FederationTrust.id)
    )
    return list(session.scalars(query))


def remove_trust(
    session: Session, trust_id: str, *, now: datetime, actor: str, reason: str | None = None
) -> FederationTrust:
    """Stop trusting at ``now``: no new tokens, and every token issued through it turns inactive."""
    trust = session.get(FederationTrust, trust_id)
    if trust is None or trust.removed_at is not None:
        raise NotFound(f"no federation trust {trust_id!r}")
    trust.removed_at = now
    trust.tokens_revoked_before = now
    events.record(session, TRUST_REMOVED, f"federation:{trust_id}", actor=actor, reason=reason)
    return trust


def trust_view(trust: FederationTrust) -> dict[str, Any]:
    """Return what commands (and an admin API) show about a trust."""
    return {
        "id": trust.id,
        "issuer": trust.issuer,
        "jwks_uri": trust.jwks_uri,
        "service_account": trust.service_account.name,
        "tenant": trust.service_account.tenant.name,
        "audience": trust.audience,
        "subject": trust.subject,
        "claims": dict(trust.claims or {}),
        "scope": trust.scopes,
        "resources": list(trust.resources or ()),
        "token_ttl": trust.token_ttl,
        "created_at": trust.created_at,
        "removed_at": trust.removed_at,
    }
