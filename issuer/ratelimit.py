"""Rate limits on the OAuth endpoints (RFC 6585 §4, RFC 9110 §10.2.3), with ``limits``.

Three limits, each configurable and each off when set to "0" or "off":
- per client id presented (Basic user part or ``client_id`` form field),
- per source address,
- per source address on *failed* client authentication only (401s, and unknown legacy
  API keys), so a guessing caller is slowed while a caller with good credentials is not.

A breach is answered 429 ``temporarily_unavailable`` with ``Retry-After`` — never an
identity error. Counters use the sliding-window-counter strategy and live in memory (per
process) or, with ``KEYSWAP_REDIS_URL``, in Redis, shared by every instance; if Redis
cannot be reached the limits fall back to memory for a while rather than fail requests.

The ``limits`` library is the one Flask-Limiter is built on; it is used directly because
Flask-Limiter re-resolves which limits apply on every request, which measured about a
quarter of a token request's CPU time. Here the limits are parsed once.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import threading
import time
from urllib.parse import unquote_plus

from flask import Flask, Response, g, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import RateLimiter, SlidingWindowCounterRateLimiter

from .config import Settings
from .errors import RateLimited

log = logging.getLogger(__name__)

DISABLED = {"", "0", "off", "none"}
#: Key prefix in the shared storage (one namespace per keyswap deployment's Redis).
PREFIX = "keyswap"
#: After a Redis error, count in memory for this long before trying Redis again.
FALLBACK_SECONDS = 30.0


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


def _items(limit: str) -> tuple[RateLimitItem, ...]:
    # One setting may hold several limits: "50/second;1000/minute".
    return () if limit.strip().lower() in DISABLED else tuple(parse_many(limit))


class RateLimits:
    """The issuer's three limits over one storage, checked before and counted after requests."""

    def __init__(self, settings: Settings) -> None:
        """Parse the configured limits and open their storage (Redis if configured)."""
        self.client = _items(settings.rate_limit_client)
        self.address = _items(settings.rate_limit_address)
        self.failures = _items(settings.rate_limit_failures)
        self._memory = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._shared: RateLimiter | None = None
        self._shared_errors: tuple[type[Exception], ...] = ()
        if settings.redis_url:
            storage = storage_from_string(settings.redis_url)
            assert isinstance(storage, Storage)  # a synchronous URL gives a synchronous storage
            self._shared = SlidingWindowCounterRateLimiter(storage)
            errors = storage.base_exceptions
            self._shared_errors = errors if isinstance(errors, tuple) else (errors,)
        self._fallback_until = 0.0
        self._lock = threading.Lock()

    def _strategy(self) -> RateLimiter:
        if self._shared is not None and time.monotonic() >= self._fallback_until:
            return self._shared
        return self._memory

    def _call(self, method: str, item: RateLimitItem, scope: str, key: str) -> bool:
        strategy = self._strategy()
        try:
            return bool(getattr(strategy, method)(item, PREFIX, scope, key))
        except self._shared_errors as exc:
            with self._lock:
                self._fallback_until = time.monotonic() + FALLBACK_SECONDS
            log.warning("rate-limit storage unavailable, counting in memory: %s", exc)
            return bool(getattr(self._memory, method)(item, PREFIX, scope, key))

    def _refuse(self, item: RateLimitItem, scope: str, key: str) -> RateLimited:
        try:
            reset_at = self._strategy().get_window_stats(item, PREFIX, scope, key).reset_time
        except self._shared_errors:
            reset_at = time.time() + 1
        retry_after = max(1, math.ceil(reset_at - time.time()))
        return RateLimited(retry_after, detail=f"{scope} limit {item}")

    def check(self) -> None:
        """Count this request against its client and address; raise ``RateLimited`` if over.

        The failure limit is only tested here (is this address already over it?); failed
        attempts are counted after the response, in ``count_failure``.
        """
        for item in self.failures:
            if not self._call("test", item, "failures", address_key()):
                raise self._refuse(item, "failures", address_key())
        for scope, items, key in (
            ("client", self.client, client_key),
            ("address", self.address, address_key),
        ):
            for item in items:
                if not self._call("hit", item, scope, key()):
                    raise self._refuse(item, scope, key())

    def count_failure(self, response: Response) -> Response:
        """Count a failed authentication (a 401, or an unknown legacy API key)."""
        # An unknown key is a 400 under RFC 8693 §2.2.2, but a guess all the same: without
        # this, keys could be guessed at the per-address rate.
        failed = response.status_code == 401 or bool(g.get("keyswap_failed_credential"))
        if failed:
            for item in self.failures:
                self._call("hit", item, "failures", address_key())
        return response


def limit_blueprint(app: Flask, limits: RateLimits, blueprint: str) -> None:
    """Apply ``limits`` to every route of the blueprint named ``blueprint`` in ``app``.

    Registered on the app, keyed by blueprint name, not on the (module-level) blueprint:
    each app has its own limits.
    """
    app.before_request_funcs.setdefault(blueprint, []).append(limits.check)
    app.after_request_funcs.setdefault(blueprint, []).append(limits.count_failure)
