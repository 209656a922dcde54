"""The operator console at ``/console``: server-rendered pages over the admin operations.

Served when ``Settings.console`` is on (``KEYSWAP_CONSOLE=1``; ``keyswap demo`` turns it
on). Sign-in is a one-time link from ``keyswap console link``, or an upstream OpenID
provider when ``KEYSWAP_CONSOLE_OIDC_*`` configures one (``oidc``); the session is Flask's
signed cookie (key derived from the KEK), limited to ``/console``, HttpOnly,
SameSite=Strict, Secure unless the issuer is a loopback URL, and it expires. Every form
carries a CSRF token (Flask-WTF's). Each action calls the operation the CLI and the admin
API call, through the admin API's own visibility rules.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask
from flask_wtf.csrf import generate_csrf

from keyswap.jwks import derive_key

from ..config import Settings, is_loopback_host

SESSION_COOKIE = "keyswap_console"
SESSION_KEY_PURPOSE = "console-session"


def init_console(app: Flask) -> None:
    """Serve the console on ``app`` and configure its session cookie and CSRF tokens."""
    settings: Settings = app.extensions["keyswap"].settings
    app.secret_key = derive_key(settings.key_encryption_key, SESSION_KEY_PURPOSE)
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=not is_loopback_host(urlsplit(settings.issuer).hostname),
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.console_session_ttl),
        WTF_CSRF_TIME_LIMIT=settings.console_session_ttl,
    )
    app.jinja_env.globals["csrf_token"] = generate_csrf
    from . import actions as _actions  # noqa: F401  (its routes join the console blueprint)
    from . import oidc, views

    if settings.console_oidc is not None:
        oidc.init_oidc(app, settings.console_oidc)
    app.register_blueprint(views.bp)
