"""Status List Tokens over HTTP (draft-ietf-oauth-status-list-21 §8, §9.3)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..context import current_keyswap
from ..errors import InvalidRequest
from ..status_lists import STATUS_LIST_MEDIA_TYPE

bp = Blueprint("statuslists", __name__)


@bp.get("/statuslists/<int:id>")
def status_list(id: int) -> Response:  # noqa: A002 - the documented parameter name
    """Serve one signed list, cacheable for what remains of its ``ttl`` (§8.1, §13.6)."""
    publisher = current_keyswap().status_lists
    published = publisher.get(id)
    if published is None:
        raise InvalidRequest("no such status list", status=404, reason="http_404")
    response = Response(published.body, mimetype=STATUS_LIST_MEDIA_TYPE)
    response.set_etag(published.etag)
    response.headers["Cache-Control"] = f"public, max-age={publisher.max_age(published)}"
    response.make_conditional(request)  # 304 without a body when If-None-Match matches
    return response


@bp.get("/statuslists")
def status_list_aggregation() -> Response:
    """List every status list's uri: the aggregation endpoint (§9.3)."""
    publisher = current_keyswap().status_lists
    response = jsonify({"status_lists": publisher.uris()})
    response.headers["Cache-Control"] = f"public, max-age={int(publisher.rebuild_interval)}"
    return response
