"""The one renderer of wire errors (RFC 6749 §5.2): an ``OAuthError`` as a JSON response.

The web layer's side of ``errors``: the taxonomy knows no HTTP framework, this module
turns one of its wire errors into Flask's response, with never-cache headers.
"""

from __future__ import annotations

from flask import Response, json

from .errors import NO_STORE, OAuthError


def render_error(error: OAuthError) -> Response:
    """Render ``error``: the JSON body, its status, never-cache headers and its own."""
    response = Response(json.dumps(error.body()), status=error.status, mimetype="application/json")
    response.headers.update(NO_STORE)
    response.headers.update(error.headers)
    return response
