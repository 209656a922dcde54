"""The ``/scim/v2`` endpoints: HTTP in, scim2-server's handler over keyswap's storage, HTTP out.

Authentication (RFC 7644 §2): a bearer token that is either a keyswap access token with
scope ``scim`` (checked live, as at introspection) or a SCIM credential. Either one acts
in one tenant only: its users are provisioned there, and nobody else's exist.
``/ServiceProviderConfig`` needs none (RFC 7643 §5). Changes are committed only when the
operation succeeded; every refusal is a SCIM ``Error`` (RFC 7644 §3.12).
"""

from __future__ import annotations

from functools import cache

from flask import Blueprint, Response, json, request
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    ETag,
    Filter,
    Patch,
    SCIMException,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    UnauthorizedException,
    User,
)
from scim2_server.handler import ScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.service import ScimService

from ..admin.auth import Principal, live_claims, token_actor
from ..context import Keyswap, current_keyswap, request_session
from ..errors import NO_STORE
from .credentials import find_scim_credential
from .storage import KeyswapStorage

SCIM_SCOPE = "scim"
PREFIX = "/scim/v2"
MAX_RESULTS = 200

bp = Blueprint("scim", __name__, url_prefix=PREFIX)


@cache
def scim_service() -> ScimService:
    """Return the SCIM service description: Users, PATCH and filters, no bulk, sort or ETags."""
    config = ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="Bearer token",
                description="A keyswap access token with scope scim, or a SCIM credential "
                "from `keyswap scim credentials create`.",
                primary=True,
            )
        ],
    )
    return ScimService(ScimProvider(models=[User], config=config))


def authenticate_scim(keyswap: Keyswap) -> Principal:
    """Return the SCIM caller: a live scim-scoped access token or a live SCIM credential."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedException(detail="a bearer token is required")
    session = request_session()
    credential = find_scim_credential(session, keyswap.hasher, token, keyswap.clock())
    if credential is not None:
        return Principal(actor=f"scim_credential:{credential.id}", tenant=credential.tenant.name)
    claims = live_claims(keyswap, session, token) if token.count(".") == 2 else None
    if claims is None:
        raise UnauthorizedException(detail="the bearer token is not valid or no longer active")
    if SCIM_SCOPE not in str(claims.get("scope", "")).split():
        raise UnauthorizedException(detail=f"the access token lacks scope {SCIM_SCOPE}")
    return Principal(actor=token_actor(session, claims), tenant=str(claims["tenant"]))


def _serve() -> Response:
    keyswap = current_keyswap()
    service = scim_service()
    session = request_session()
    scim_request = ScimRequest(
        method=request.method,
        base_url=keyswap.settings.issuer.rstrip("/") + PREFIX,
        path=request.path.removeprefix(PREFIX),
        query=request.args.to_dict(),
        headers=list(request.headers.items()),
        body=request.get_data(),
    )
    try:
        principal = Principal(actor="anonymous", tenant="")
        if request.path != f"{PREFIX}/ServiceProviderConfig":
            principal = scim_request.subject = authenticate_scim(keyswap)
        storage = KeyswapStorage(session, str(principal.tenant), principal.actor, keyswap.clock)
        answer = ScimHandler(service, storage).handle(scim_request)
        session.commit()
    except SCIMException as exc:
        session.rollback()
        answer = service.error_response(exc)
    body = b"" if answer.body is None else json.dumps(answer.body).encode()
    response = Response(body, status=int(answer.status))
    response.headers.update(answer.headers)
    response.headers.update(NO_STORE)
    if answer.body is None:
        del response.headers["Content-Type"]
    return response


_USER_METHODS = ["GET", "PUT", "PATCH", "DELETE"]


@bp.get("/ServiceProviderConfig")
@bp.get("/ResourceTypes")
@bp.get("/ResourceTypes/<name>")
@bp.get("/Schemas")
@bp.get("/Schemas/<schema_id>")
@bp.route("/Users", methods=["GET", "POST"])
@bp.route("/Users/<user_id>", methods=_USER_METHODS)
def scim(**_params: str) -> Response:
    """Serve a SCIM request (RFC 7644 §3)."""
    return _serve()
