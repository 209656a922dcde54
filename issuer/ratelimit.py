"""Rate limits on the OAuth endpoints, with Flask-Limiter (RFC 6585 §4, RFC 9110 §10.2.3).

Three limits, each configurable and each off when set to "0" or "off":
- per client id presented (Basic user part or ``client_id`` form field),
- per source address,
- per source address on *failed* client authentication only (401s, and unknown legacy
  API keys), so a guessing caller is slowed while a caller with good credentials is not.

A breach is answered 429 ``temporarily_unavailable`` with ``Retry-After`` — never an
identity error. Counters live in memory (per process) or, with ``KEYSWAP_REDIS_URL``, in
Redis, shared by every instance.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from urllib.parse import unquote_plus

from flask import Blueprint, Flask, Response, g, request
from flask_limiter import Limiter, RateLimitExceeded

from .config import Settings
from .errors import RateLimited

DISABLED = {"", "0", "off", "none"}


def client_key() -> str:
    """Return the client id the request presents, else its source address."""
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            user = base64.b64decode(header[6:].strip(), validate=True).split(b":", 1)[0]
            return "client:" + unquote_plus(user.decode())
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
    client_id = request.form.get("client_id") if request.mimetype.endswith("urlencoded") else None
    return f"client:{client_id}" if client_id else f"addr:{request.remote_addr}"


def address_key() -> str:
    """Return the request's source address (after any trusted proxy fix-up)."""
    return f"addr:{request.remote_addr}"


def _failed_authentication(response: Response) -> bool:
    # A 401, or an unknown legacy API key (a 400 under RFC 8693 §2.2.2, but a guess all
    # the same: without this, keys could be guessed at the per-address rate).
    return response.status_code == 401 or bool(g.get("keyswap_failed_credential"))


def _enabled(limit: str) -> bool:
    return limit.strip().lower() not in DISABLED


def make_limiter(app: Flask, settings: Settings) -> Limiter:
    """Create the app's limiter: Redis storage when configured, memory otherwise."""
    storage = settings.redis_url or "memory://"
    return Limiter(
        key_func=address_key,
        app=app,
        storage_uri=storage,
        strategy="sliding-window-counter",
        headers_enabled=False,
        key_prefix="keyswap",
        # If Redis is down the limits fall back to memory rather than failing requests.
        in_memory_fallback_enabled=storage != "memory://",
    )


def limit_blueprint(limiter: Limiter, bp: Blueprint, settings: Settings) -> None:
    """Apply keyswap's limits to every route of ``bp``."""
    if _enabled(settings.rate_limit_client):
        limiter.limit(settings.rate_limit_client, key_func=client_key, scope="client")(bp)
    if _enabled(settings.rate_limit_address):
        limiter.limit(settings.rate_limit_address, key_func=address_key, scope="address")(bp)
    if _enabled(settings.rate_limit_failures):
        limiter.limit(
            settings.rate_limit_failures,
            key_func=address_key,
            scope="failures",
            deduct_when=_failed_authentication,
        )(bp)


def render_rate_limited(limiter: Limiter, error: RateLimitExceeded) -> Response:
    """Answer a breach as the contract's 429 with Retry-After."""
    current = limiter.current_limit
    reset_at = current.reset_at if current is not None else time.time() + 1
    retry_after = max(1, math.ceil(reset_at - time.time()))
    return RateLimited(retry_after, detail=str(error.limit.limit)).to_response()
