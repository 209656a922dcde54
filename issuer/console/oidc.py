"""Console sign-in through an upstream OpenID provider (OIDC Core §3.1, code flow + PKCE).

Authlib's Flask client does the protocol: it reads the provider's discovery document,
sends ``state``, ``nonce`` and an S256 code challenge (RFC 7636 §4.2), keeps them in the
console's session, and on the way back checks ``state``, redeems the code with the
verifier and validates the ID token (signature against the provider's JWKS, ``iss``,
``aud``, ``exp``, ``nonce``). This module only decides who may come in: a subject on the
allow-list, or a member of the configured group, as an operator of every tenant.

The session cookie is SameSite=Strict, so the provider's redirect back (a cross-site
navigation) arrives without it. The callback then answers with a page that reloads the
same URL from the console's own origin, which the browser sends the cookie with; only
that second request can match ``state``, which keeps the flow bound to the browser that
started it (RFC 6749 §10.12).
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import Flask, Response, abort, current_app, request, session
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError

from .. import events
from ..config import ConsoleOidc
from ..context import current_keyswap, request_session
from .links import SIGNED_IN, Operator
from .views import _error_page, _page, bp, start_session

log = logging.getLogger(__name__)

CLIENT_NAME = "keyswap_console"
CALLBACK_PATH = "/console/oidc/callback"
SIGN_IN_REFUSED = "console.sign_in_refused"
#: Seconds one call to the provider (discovery, JWKS, token endpoint) may take.
TIMEOUT = 10.0
#: Marks the callback's same-origin second pass, so a browser sending no cookie is
#: refused instead of bounced forever.
SECOND_PASS = "same_origin"

#: What a failed exchange with the provider raises: its error answers and mismatched
#: ``state`` (Authlib), a bad ID token (joserfc), no answer at all (requests).
_PROVIDER_ERRORS = (AuthlibBaseError, JoseError, requests.RequestException)


def init_oidc(app: Flask, config: ConsoleOidc) -> None:
    """Register ``config``'s provider with Authlib's Flask client on ``app``."""
    oauth = OAuth(app)
    oauth.register(
        CLIENT_NAME,
        client_id=config.client_id,
        client_secret=config.client_secret or None,
        server_metadata_url=f"{config.issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": "openid",
            "code_challenge_method": "S256",
            # A public client (no secret) proves nothing but the PKCE verifier.
            "token_endpoint_auth_method": (
                "client_secret_basic" if config.client_secret else "none"
            ),
            "default_timeout": TIMEOUT,
        },
    )


def _provider() -> tuple[Any, ConsoleOidc]:
    """Return Authlib's client and the provider's settings; 404 when none is configured."""
    config = current_keyswap().settings.console_oidc
    if config is None:
        abort(404)
    oauth = current_app.extensions["authlib.integrations.flask_client"]
    return oauth.create_client(CLIENT_NAME), config


def _unreachable(error: Exception) -> tuple[str, int]:
    log.warning("console sign-in: the OpenID provider failed: %r", error)
    return _error_page(
        502, "Provider not available", "The OpenID provider could not be reached; try again."
    )


def _is_allowed(config: ConsoleOidc, claims: dict[str, Any]) -> bool:
    if claims.get("sub") in config.subjects:
        return True
    if config.group is None:
        return False
    groups = claims.get(config.group_claim)
    if isinstance(groups, str):
        groups = groups.split()
    return isinstance(groups, list) and config.group in groups


@bp.get("/oidc/login")
def oidc_login() -> ResponseReturnValue:
    """Send the browser to the provider's authorization endpoint."""
    client, config = _provider()
    try:
        metadata = client.load_server_metadata()
    except _PROVIDER_ERRORS as exc:
        return _unreachable(exc)
    # OIDC Discovery §4.3: the issuer in the document MUST be the one it was fetched for.
    if str(metadata.get("issuer", "")).rstrip("/") != config.issuer:
        client.server_metadata.clear()  # fetch it again next time
        return _unreachable(ValueError(f"discovery names issuer {metadata.get('issuer')!r}"))
    redirect_uri = current_keyswap().settings.issuer + CALLBACK_PATH
    response: Response = client.authorize_redirect(redirect_uri)
    return response


@bp.get("/oidc/callback")
def oidc_callback() -> ResponseReturnValue:
    """Finish the sign-in: check state, redeem the code, validate the ID token, admit or refuse."""
    client, config = _provider()
    if not session and not request.args.get(SECOND_PASS):
        return _page("reload.html", url=request.full_path + f"&{SECOND_PASS}=1")
    try:
        token = client.authorize_access_token()
    except requests.RequestException as exc:
        session.clear()
        return _unreachable(exc)
    except _PROVIDER_ERRORS as exc:  # an error answer, a mismatched state, a bad ID token
        log.info("console sign-in through the OpenID provider not completed: %r", exc)
        token = {}
    # Authlib puts the validated ID token's claims here; no ID token, no one to admit.
    claims = dict(token.get("userinfo") or {})
    subject = claims.get("sub")
    if not isinstance(subject, str):
        session.clear()
        return _error_page(
            403,
            "Sign-in not completed",
            "The sign-in could not be completed (it was cancelled, or started in another "
            "browser or too long ago). Start again.",
        )
    db = request_session()
    if not _is_allowed(config, claims):
        session.clear()
        events.record(
            db, SIGN_IN_REFUSED, f"oidc:{subject}", actor=f"oidc:{subject}", issuer=config.issuer
        )
        db.commit()
        return _error_page(
            403,
            "Not an operator",
            f"{config.name} signed you in as {subject}, but that account may not use this "
            "console. An operator can add it to KEYSWAP_CONSOLE_OIDC_SUBJECTS or to the "
            "operators' group.",
        )
    operator = Operator(actor=f"console:oidc:{subject}", tenant=None)
    events.record(
        db, SIGNED_IN, f"oidc:{subject}", actor=operator.actor, tenant=None, issuer=config.issuer
    )
    db.commit()
    return start_session(operator)
