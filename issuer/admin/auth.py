"""Who is calling the admin API: a keyswap access token, checked live on every call (RFC 6750).

The token is verified as at introspection (``keyswap.issuer.introspection``): a published key's
signature, not expired or revoked, its client enabled and its owner and tenant active
*now*, so a deactivated admin is refused on the next call rather than at ``exp``. Then
its scope decides the reach: ``keyswap:admin`` every tenant, ``keyswap:tenant-admin``
its own tenant only.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Request
from sqlalchemy.orm import Session

from ..context import Keyswap
from ..db import SessionReader
from ..errors import InsufficientScope, InvalidToken
from ..introspection import introspect
from ..lifecycle import ADMIN_SCOPE
from ..models import User

TENANT_ADMIN_SCOPE = "keyswap:tenant-admin"


@dataclass(frozen=True)
class Principal:
    """The caller of an admin or SCIM request, as its audit events name it."""

    #: Written to the audit log as the actor of every change this caller makes.
    actor: str
    #: The caller's tenant; None when it may act on every tenant.
    tenant: str | None

    def sees(self, tenant: str) -> bool:
        """Tell whether objects of ``tenant`` exist for this caller."""
        return self.tenant is None or self.tenant == tenant

    @property
    def is_global(self) -> bool:
        """Tell whether the caller may act on every tenant."""
        return self.tenant is None


def bearer_token(request: Request) -> str:
    """Return the request's bearer token (RFC 6750 §2.1), or refuse with 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken()
    return token


def live_claims(keyswap: Keyswap, session: Session, token: str) -> dict[str, object] | None:
    """Return the claims of ``token`` if it is one of keyswap's and active now, else None."""
    claims = keyswap.server.read_token(token)
    if claims is None:
        return None
    checks = tuple(keyswap.server.credential_checks)
    # The admin token's own liveness; its tenant is checked by the caller's scope rules.
    answer = introspect(
        SessionReader(session), claims, keyswap.clock(), tenant=None, other_credentials=checks
    )
    return claims if answer["active"] else None


def token_actor(session: Session, claims: dict[str, object]) -> str:
    """Name a token's client and its owner, for the audit log."""
    owner = session.get(User, str(claims["sub"]))
    owner_name = owner.name if owner is not None else str(claims["sub"])
    return f"client:{claims['client_id']} (user:{owner_name})"


def authenticate_admin(keyswap: Keyswap, session: Session, request: Request) -> Principal:
    """Return the admin principal of ``request``; 401 without a live token, 403 without scope."""
    claims = live_claims(keyswap, session, bearer_token(request))
    if claims is None:
        raise InvalidToken("the access token is not valid or no longer active")
    scopes = str(claims.get("scope", "")).split()
    if ADMIN_SCOPE in scopes:
        tenant = None
    elif TENANT_ADMIN_SCOPE in scopes:
        tenant = str(claims["tenant"])
    else:
        raise InsufficientScope(
            f"the admin API needs scope {ADMIN_SCOPE} or {TENANT_ADMIN_SCOPE}",
            reason="insufficient_scope",
        )
    return Principal(actor=token_actor(session, claims), tenant=tenant)
