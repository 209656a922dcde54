"""The application factory: ``create_app(settings)`` wires everything into ``app.extensions``.

Nothing is built at import time. The wiring (engine, sessions, key ring, Authlib server,
metrics) lives in one ``Keyswap`` object at ``app.extensions["keyswap"]``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from keyswap.jwks import Sealer

from .client_auth import SecretAuthenticator
from .config import Settings
from .console.traffic import TrafficCounter
from .context import Keyswap, close_session, current_keyswap, request_session
from .db import LiveReads, make_engine, make_session_factory, utcnow
from .errors import (
    InvalidRequest,
    NoSigningKey,
    OAuthError,
    ServerError,
    TemporarilyUnavailable,
)
from .federation import check_federated_token
from .grants.client_credentials import ClientCredentialsGrant
from .grants.jwt_bearer import JWTBearerGrant
from .grants.token_exchange import TokenExchangeGrant
from .hashing import SecretHasher
from .keyring import KeyRing
from .ledger import RefusalLedger
from .legacy import check_legacy_token
from .legacy.usage import UsageAccumulator
from .maintenance import Maintenance
from .ratelimit import RateLimits, limit_blueprint
from .rendering import render_error
from .server import KeyswapServer
from .status_leases import StatusLeases
from .status_publisher import StatusListPublisher
from .storage import requestable_scopes

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


class SecurityHeaders:
    """WSGI middleware: add ``SECURITY_HEADERS`` to every response that does not set its own.

    A JSON API: nothing to frame, sniff or embed. No CORS headers are ever sent, so
    browsers keep cross-origin pages out (token requests come from servers). Done on the
    WSGI header list rather than in an ``after_request`` hook: four ``Headers.setdefault``
    calls (each a case-insensitive scan) measured about 20 us of a token request's CPU.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self._defaults = tuple(SECURITY_HEADERS.items())

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """Serve ``environ``, adding each default header the response lacks."""

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in self._defaults if h[0].lower() not in present)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def _answer(error: OAuthError) -> Response:
    # Every error answer passes here: the refusal ledger records those of the OAuth
    # endpoints (429 and 503 included) before the one renderer writes the body.
    current_keyswap().ledger.refuse(error, request)
    return render_error(error)


def _render_http_error(error: HTTPException) -> Response:
    # Werkzeug's own 404/405/413 pages are HTML; every keyswap answer is JSON.
    code = error.code or 500
    oauth = InvalidRequest(error.description or error.name, status=code, reason=f"http_{code}")
    response = _answer(oauth)
    allow = dict(error.get_headers()).get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response


def _render_database_down(error: Exception) -> Response:
    log.error("database unavailable: %s", error.__class__.__name__, exc_info=error)
    # The exception's text is in the line above; the refusal's log line names its class.
    return _answer(TemporarilyUnavailable(detail=f"database unavailable: {type(error).__name__}"))


def _render_no_signing_key(error: NoSigningKey) -> Response:
    log.error("no active signing key: run `keyswap keys rotate` or `keyswap serve`")
    return _answer(TemporarilyUnavailable(detail=str(error), reason="no_signing_key"))


def _render_unexpected(error: Exception) -> Response:
    log.exception("unhandled error")
    return _answer(ServerError())


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], datetime] = utcnow
) -> Flask:
    """Build the keyswap Flask app from ``settings`` (default: ``Settings.from_env()``).

    ``clock`` is the one clock of every request path: token times, secret, key and
    credential expiry, revocation, status lists (tests move it).
    """
    settings = settings or Settings.from_env()
    # Named "keyswap" (its logger is the parent of keyswap.*); rooted here, since the
    # namespace package keyswap has no single folder Flask could find.
    app = Flask("keyswap", root_path=os.path.dirname(__file__))
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    if settings.trusted_proxies:
        # Behind N trusted proxies, the client address and scheme come from X-Forwarded-*.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
    app.json.sort_keys = False  # type: ignore[attr-defined]

    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    sealer = Sealer(settings.key_encryption_key)
    hasher = SecretHasher(settings.key_encryption_key)
    keyring = KeyRing(
        sessions,
        sealer,
        max_token_ttl=settings.max_token_ttl,
        refresh_interval=settings.key_refresh_interval,
        clock=clock,
    )
    maintenance = Maintenance(
        sessions,
        sealer,
        keyring,
        settings.rotation_schedule,
        alg=settings.signing_alg,
        interval=settings.key_refresh_interval,
        clock=clock,
    )
    reads = LiveReads(settings.database_url)
    usage = UsageAccumulator(sessions)
    server = KeyswapServer(
        settings,
        keyring,
        SecretAuthenticator(hasher, clock),
        session=request_session,
        reads=reads,
        status_leases=StatusLeases(sessions, max_token_ttl=settings.max_token_ttl),
        hasher=hasher,
        usage=usage,
        clock=clock,
    )
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(TokenExchangeGrant)
    server.register_grant(JWTBearerGrant)
    server.credential_checks.append(check_legacy_token)
    limits = RateLimits(settings)
    server.limit_client = limits.limit_client
    server.credential_checks.append(check_federated_token)
    # Imported here, not at module level: prometheus_client picks its multiprocess mode
    # when first imported, after `keyswap serve` has set PROMETHEUS_MULTIPROC_DIR.
    from .metadata import Discovery
    from .metrics import Metrics

    metrics = Metrics()
    traffic = TrafficCounter(
        sessions,
        clock,
        enabled=settings.console,
        retention=timedelta(days=settings.console_retention_days),
    )
    app.extensions["keyswap"] = Keyswap(
        settings=settings,
        clock=clock,
        engine=engine,
        reads=reads,
        sessions=sessions,
        sealer=sealer,
        hasher=hasher,
        keyring=keyring,
        maintenance=maintenance,
        server=server,
        metrics=metrics,
        discovery=Discovery(settings, server, partial(reads, requestable_scopes)),
        limits=limits,
        ledger=RefusalLedger(metrics, limits, usage, clock, traffic=traffic),
        usage=usage,
        status_lists=StatusListPublisher(
            sessions, keyring, issuer=settings.issuer, ttl=settings.status_list_ttl, clock=clock
        ),
        traffic=traffic,
    )

    app.teardown_appcontext(close_session)
    app.register_error_handler(OAuthError, _answer)
    app.register_error_handler(HTTPException, _render_http_error)
    for exc in DATABASE_DOWN:
        app.register_error_handler(exc, _render_database_down)
    app.register_error_handler(NoSigningKey, _render_no_signing_key)
    app.register_error_handler(Exception, _render_unexpected)

    from .admin import api as admin_api
    from .admin import federation as _admin_federation  # noqa: F401  (joins the admin blueprint)
    from .admin import keys as _admin_keys  # noqa: F401  (its routes join the admin blueprint)
    from .scim import views as scim_views
    from .views import oauth, ops, statuslists, wellknown

    limit_blueprint(app, limits, oauth.bp.name)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(wellknown.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(scim_views.bp)
    app.register_blueprint(statuslists.bp)
    if settings.console:
        from .console import init_console

        init_console(app)
    return app
