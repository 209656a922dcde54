"""Operations endpoints: liveness, readiness, and Prometheus metrics."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from ..context import current_keyswap
from ..keyring import NoSigningKey

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Answer 200 while the process serves requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Answer 200 when the database answers and an active signing key is loaded."""
    keyswap = current_keyswap()
    checks = {"database": "ok", "signing_key": "ok"}
    try:
        with keyswap.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready", whatever the driver raises
        log.warning("readiness: database check failed: %s", exc.__class__.__name__)
        checks["database"] = "unavailable"
    try:
        keyswap.keyring.signer()
    except NoSigningKey:
        checks["signing_key"] = "missing"
    except Exception as exc:
        log.warning("readiness: signing key check failed: %s", exc.__class__.__name__)
        checks["signing_key"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    response = jsonify(status="ready" if ready else "not ready", checks=checks)
    response.headers["Cache-Control"] = "no-store"
    return response, 200 if ready else 503


@bp.get("/metrics")
def metrics() -> Response:
    """Serve Prometheus metrics in the text exposition format."""
    keyswap = current_keyswap()
    # content_type, not mimetype: the exposition type already names its charset, and
    # Werkzeug would append a second one to a text/* mimetype.
    return Response(keyswap.metrics.render(), content_type=keyswap.metrics.content_type)
