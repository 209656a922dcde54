"""WSGI middleware: verify the bearer token and put the ``Principal`` in the environ.

::

    app.wsgi_app = BearerMiddleware(app.wsgi_app, Verifier(ISSUER, AUDIENCE), scopes="orders:read")

The principal is ``environ["keyswap.principal"]``. Refusals are RFC 6750's (see
``keyswap.clients.bearer.render_error``). With ``allow_anonymous`` a request without any bearer
token passes with no principal; a bad token is still refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.types import WSGIApplication

from .bearer import BearerGuard, ErrorResponse, authenticate, render_error
from .errors import InsufficientScope, InvalidToken, TokenError
from .verifier import Principal

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

ENVIRON_KEY = "keyswap.principal"


class BearerMiddleware(BearerGuard[WSGIApplication]):
    """Refuses requests without a valid bearer token holding the required scopes."""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Verify the request's token, then call the app or answer the refusal."""
        try:
            principal = self.authenticate(environ)
        except (InvalidToken, InsufficientScope, TokenError) as exc:
            return respond(render_error(self.realm, exc), start_response)
        if principal is None and not self.allow_anonymous:
            return respond(render_error(self.realm), start_response)
        environ[ENVIRON_KEY] = principal
        return self.app(environ, start_response)

    def authenticate(self, environ: WSGIEnvironment) -> Principal | None:
        """Return the request's principal, None without a token; raise on a bad one."""
        return authenticate(
            self.verifier,
            environ.get("HTTP_AUTHORIZATION"),
            self.scopes,
            introspect=self.introspect,
        )


def respond(refusal: ErrorResponse, start_response: Callable[..., Any]) -> list[bytes]:
    """Send ``refusal`` through WSGI ``start_response`` and return its body."""
    headers = [*refusal.headers, ("Content-Length", str(len(refusal.body)))]
    start_response(refusal.status_line, headers)
    return [refusal.body]
