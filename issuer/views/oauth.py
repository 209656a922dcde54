"""The token endpoint (RFC 6749 §3.2): HTTP in, the grant's answer or its error out."""

from __future__ import annotations

from time import perf_counter

from flask import Blueprint, Response, request

from ..context import current_keyswap
from ..errors import InvalidRequest
from ..events import TOKEN_ISSUED, log_issuance
from ..grants.token_exchange import TOKEN_EXCHANGE_GRANT
from ..ratelimit import FORM

bp = Blueprint("oauth", __name__)


@bp.post("/oauth/token")
def token() -> Response:
    """Issue an access token, or raise the RFC 6749 §5.2 error (recorded by ``ledger``)."""
    keyswap = current_keyswap()
    started = perf_counter()
    try:
        # RFC 6749 §4.4.2: the request uses the application/x-www-form-urlencoded format.
        if request.mimetype != FORM:
            raise InvalidRequest(f"the token endpoint takes {FORM} bodies")
        issued = keyswap.server.token_response()
    finally:
        keyswap.metrics.token_latency.observe(perf_counter() - started)
    if issued.grant_type == TOKEN_EXCHANGE_GRANT:
        keyswap.limits.remember_key(request.form["subject_token"])
    claims = issued.token.claims
    keyswap.metrics.tokens_issued.labels(issued.grant_type).inc()
    keyswap.traffic.issued(issued.grant_type, claims["client_id"], claims["tenant"])
    log_issuance(
        TOKEN_ISSUED,
        grant=issued.grant_type,
        client=claims["client_id"],
        owner=claims["sub"],
        tenant=claims["tenant"],
        jti=claims["jti"],
        federated=claims.get("ks_federated"),  # the external workload, for federated tokens
    )
    return issued.response


def _endpoint(name: str) -> Response:
    keyswap = current_keyswap()
    if request.mimetype != FORM:
        raise InvalidRequest(f"this endpoint takes {FORM} bodies")
    return keyswap.server.endpoint_response(name)


@bp.post("/oauth/revoke")
def revoke() -> Response:
    """Revoke one of the calling client's tokens (RFC 7009); 200 for unknown tokens."""
    return _endpoint("revocation")


@bp.post("/oauth/introspect")
def introspect() -> Response:
    """Tell an introspecting client whether a token is active now (RFC 7662)."""
    return _endpoint("introspection")
