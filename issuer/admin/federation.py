"""The admin API's workload-federation trusts (RFC 7523 jwt-bearer): list, add, remove.

Same operations as ``keyswap federation list|add|remove``
(``keyswap.issuer.federation.trusts``), same representation. A trust belongs to the
tenant of its service account: a tenant admin sees, adds and removes only its own
tenant's trusts, and another tenant's answer 404.
"""

from __future__ import annotations

from flask import Response, request

from ..context import current_keyswap, request_session
from ..federation import add_trust, list_trusts, remove_trust, trust_view
from ..models import FederationTrust
from ..storage import NotFound
from .api import bp, committed, now, principal, reply, require_grantable, visible_user
from .bodies import FederationTrustCreate, read_body


def _visible_trust(trust_id: str) -> FederationTrust:
    trust = request_session().get(FederationTrust, trust_id)
    if (
        trust is None
        or trust.removed_at is not None
        or not principal().sees(trust.service_account.tenant.name)
    ):
        raise NotFound(f"no federation trust {trust_id!r}")
    return trust


@bp.get("/federation-trusts")
def federation_trusts_list() -> Response:
    """List the live trusts the caller sees, oldest first."""
    trusts = list_trusts(request_session())
    seen = [t for t in trusts if principal().sees(t.service_account.tenant.name)]
    return reply({"trusts": [trust_view(t) for t in seen]})


@bp.post("/federation-trusts")
def federation_trusts_create() -> Response:
    """Trust an issuer's workload tokens that meet the conditions, as a service account."""
    body = read_body(request, FederationTrustCreate)
    visible_user(body.service_account)
    require_grantable(body.scope)
    settings = current_keyswap().settings
    trust = add_trust(
        request_session(),
        issuer=body.issuer,
        service_account=body.service_account,
        jwks_uri=body.jwks_uri,
        audience=body.audience,
        subject=body.subject,
        claims=body.claims,
        scope=body.scope,
        resources=body.resource,
        token_ttl=body.token_ttl,
        max_token_ttl=settings.max_token_ttl,
        allow_private=settings.outbound_allow_private,
        actor=principal().actor,
    )
    return committed(trust_view(trust), 201)


@bp.delete("/federation-trusts/<trust_id>")
def federation_trusts_delete(trust_id: str) -> Response:
    """Stop trusting; tokens issued through the trust turn inactive."""
    _visible_trust(trust_id)
    reason = request.args.get("reason")
    trust = remove_trust(
        request_session(), trust_id, now=now(), actor=principal().actor, reason=reason
    )
    return committed(trust_view(trust))
