"""Flask glue: the ``KeyswapAuth`` extension and the ``require_token`` view decorator.

::

    auth = KeyswapAuth(app, issuer="http://127.0.0.1:8000", audience="http://127.0.0.1:8000")

    @app.get("/orders")
    @require_token(scopes="orders:read")
    def orders():
        return {"sub": g.principal.sub}

Refusals follow RFC 6750 §3: 401 with a bare ``WWW-Authenticate: Bearer realm=...`` when
there is no token, 401 ``invalid_token`` for a bad one, 403 ``insufficient_scope`` naming the
scopes, and 503 when the issuer's keys cannot be fetched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from flask import Flask, Response, current_app, g, request

from .bearer import authenticate, normalize_scopes, render_error
from .errors import InsufficientScope, InvalidToken, TokenError
from .verifier import Principal, Verifier

EXTENSION = "keyswap_auth"
P = ParamSpec("P")
R = TypeVar("R")


class KeyswapAuth:
    """Flask extension holding the app's ``Verifier`` and the realm named in challenges."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        issuer: str | None = None,
        audience: str | Iterable[str] | None = None,
        verifier: Verifier | None = None,
        realm: str | None = None,
        **verifier_options: Any,
    ) -> None:
        """Verify tokens from ``issuer`` for ``audience``, or with a ready ``verifier``.

        ``verifier_options`` go to ``Verifier`` (leeway, introspection_client, ...).
        """
        if verifier is None:
            if issuer is None or audience is None:
                raise ValueError("KeyswapAuth needs issuer= and audience=, or verifier=")
            verifier = Verifier(issuer, audience, **verifier_options)
        self.verifier = verifier
        self.realm = realm or verifier.audiences[0]
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the extension on ``app``."""
        app.extensions[EXTENSION] = self


def current_principal() -> Principal:
    """Return the principal ``require_token`` put on ``flask.g``."""
    principal: Principal = g.principal
    return principal


def require_token(
    scopes: str | Iterable[str] = (),
    *,
    audience: str | Iterable[str] | None = None,
    introspect: bool = False,
) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    """Decorate a view so it runs only with a valid bearer token holding ``scopes``.

    The principal is ``g.principal``. ``audience`` replaces the extension's audiences for
    this view; ``introspect`` asks the issuer whether the token is still active.
    """
    required = normalize_scopes(scopes)

    def decorate(view: Callable[P, R]) -> Callable[P, R | Response]:
        @functools.wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            auth: KeyswapAuth | None = current_app.extensions.get(EXTENSION)
            if auth is None:
                raise RuntimeError("require_token needs KeyswapAuth(app, ...) or init_app(app)")
            try:
                principal = authenticate(
                    auth.verifier,
                    request.headers.get("Authorization"),
                    required,
                    audience=audience,
                    introspect=introspect,
                )
            except (InvalidToken, InsufficientScope, TokenError) as exc:
                return _refusal(auth.realm, exc)
            if principal is None:
                return _refusal(auth.realm, None)
            g.principal = principal
            return view(*args, **kwargs)

        return guarded

    return decorate


def _refusal(realm: str, error: InvalidToken | InsufficientScope | TokenError | None) -> Response:
    refusal = render_error(realm, error)
    return Response(refusal.body, status=refusal.status, headers=list(refusal.headers))
