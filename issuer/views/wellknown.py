"""Discovery and keys: RFC 8414 metadata, OIDC discovery, the JWK Set (RFC 7517), OpenAPI."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files

from flask import Blueprint, Response, request

from ..context import current_keyswap

bp = Blueprint("wellknown", __name__)

#: The media type of YAML (RFC 9512 §2.1).
YAML = "application/yaml"


def _metadata() -> Response:
    response = Response(current_keyswap().discovery.document(), mimetype="application/json")
    # Short: scopes_supported follows the registered clients.
    response.headers["Cache-Control"] = "public, max-age=300"
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


@cache
def _openapi_document() -> tuple[bytes, str]:
    # Read once per process, from the installed package (the wheel ships the file).
    body = files("keyswap.issuer").joinpath("openapi.yaml").read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:32]


@bp.get("/openapi.yaml")
def openapi() -> Response:
    """Serve the OpenAPI 3.1 description of this HTTP interface."""
    body, etag = _openapi_document()
    response = Response(body, mimetype=YAML)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.make_conditional(request)
    return response
