"""What the JWT bearer grant and the token exchange of a workload token share (RFC 7523).

Both prove the workload token through ``federation`` and check the mapped service
account live through ``policy``; they differ only in the wire error of a refusal
(``invalid_grant``, RFC 7523 §3.1; ``invalid_request``, RFC 8693 §2.2.2).
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidGrant, InvalidRequest
from ..federation import FEDERATED_CLAIM, AssertionRefused, FederatedGrant
from ..policy import Refusal, check_owner
from ..tokens import IssuedToken, resolve_audience, resolve_scopes
from . import refuse_owner, sign_for_owner


def check_workload_token(
    grant: Any, assertion: str, wire: type[InvalidGrant] | type[InvalidRequest]
) -> FederatedGrant:
    """Prove ``assertion`` and its service account's live status; refusals as ``wire``."""
    server = grant.server
    try:
        federated: FederatedGrant = server.federation.verify(
            server.session(), assertion, server.clock()
        )
    except AssertionRefused as fact:
        raise wire(fact.description, detail=fact.detail, reason=fact.reason) from None
    # From here refusals are logged with the trust's client id and the workload named.
    grant.request.client = federated.trust
    try:
        check_owner(federated.trust.owner)
    except Refusal as fact:
        error = refuse_owner(fact, wire)
        if isinstance(error, InvalidGrant | InvalidRequest):
            error.detail = f"iss={federated.issuer} sub={federated.subject}"
        raise error from None
    return federated


def sign_federated(grant: Any, federated: FederatedGrant) -> IssuedToken:
    """Sign the service account's token, naming the workload in ``ks_federated``."""
    trust = federated.trust
    token: IssuedToken = sign_for_owner(
        grant.server,
        owner=trust.owner,
        client_id=trust.client_id,
        audience=grant.audience,
        scopes=grant.scopes,
        token_ttl=trust.token_ttl,
        extra={FEDERATED_CLAIM: federated.claim()},
    )
    grant.issued = token
    return token


def resolve_for_trust(grant: Any, federated: FederatedGrant) -> None:
    """Set the grant's scopes (within the trust's) and audience (RFC 8707)."""
    payload = grant.request.payload
    trust = federated.trust
    grant.scopes = resolve_scopes(payload.scope, trust.scopes)
    grant.audience = resolve_audience(
        payload.datalist.get("resource", []),
        trust.resources,
        grant.server.settings.fallback_audience,
    )
