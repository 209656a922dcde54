"""Discovery and keys: RFC 8414 metadata, OIDC discovery, and the JWK Set (RFC 7517)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..app import current_keyswap

bp = Blueprint("wellknown", __name__)


def _metadata() -> Response:
    response = Response(current_keyswap().metadata, mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.get("/.well-known/oauth-authorization-server")
def oauth_metadata() -> Response:
    """Serve RFC 8414 authorization server metadata."""
    return _metadata()


@bp.get("/.well-known/openid-configuration")
def openid_configuration() -> Response:
    """Serve the same document where OIDC-only verifier libraries look for it."""
    return _metadata()


@bp.get("/jwks.json")
def jwks() -> Response:
    """Serve the public signing keys, cacheable for ``jwks_max_age`` seconds."""
    keyswap = current_keyswap()
    published = keyswap.keyring.published()
    response = Response(published.body, mimetype="application/json")
    response.set_etag(published.etag.strip('"'))
    response.headers["Cache-Control"] = f"public, max-age={keyswap.settings.jwks_max_age}"
    response.make_conditional(request)  # 304 without a body when If-None-Match matches
    return response
