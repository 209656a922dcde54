"""Rate limits on the OAuth endpoints (RFC 6585 §4, RFC 9110 §10.2.3), with ``limits``.

Each limit is configurable and each is off when set to "0" or "off":
- per source address, and per client id *claimed* from that address, before anything
  is authenticated;
- per client id, counted only once the client has authenticated: client ids are public
  (every token carries one), so a request that merely names a client never uses up
  that client's allowance;
- per source address on *failed* credentials only (401s, and unknown legacy API keys),
  so a guessing caller is slowed while a caller with good credentials is not;
- a global budget of unknown legacy API keys, across every address: once spent, an
  exchange of a key this process has not seen succeed lately is answered 429 before the
  key is looked up, so guesses stay bounded however many addresses send them.

A breach is answered 429 ``temporarily_unavailable`` with ``Retry-After`` — never an
identity error. The limiter never raises from its counting methods: it returns the
``RateLimited`` refusal, and ``ledger`` (the one place refusals are recorded) tells it
which requests failed a credential. Counters use the sliding-window-counter strategy and
live in memory (per process) or, with ``KEYSWAP_REDIS_URL``, in Redis, shared by every
instance; if Redis cannot be reached the limits fall back to memory for a while rather
than fail requests.

The ``limits`` library is the one Flask-Limiter is built on; it is used directly because
Flask-Limiter re-resolves which limits apply on every request, which measured about a
quarter of a token request's CPU time. Here the limits are parsed once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import threading
import time
import weakref
from collections import OrderedDict
from urllib.parse import unquote_plus

from flask import Flask, Request, request
from joserfc.errors import JoseError
from joserfc.jws import extract_compact
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import RateLimiter, SlidingWindowCounterRateLimiter
from werkzeug.exceptions import HTTPException

from .config import Settings
from .errors import RateLimited
from .grants.token_exchange import TOKEN_EXCHANGE_GRANT

log = logging.getLogger(__name__)

DISABLED = {"", "0", "off", "none"}
#: Key prefix in the shared storage (one namespace per keyswap deployment's Redis).
PREFIX = "keyswap"
#: After a Redis error, count in memory for this long before trying Redis again.
FALLBACK_SECONDS = 30.0
FORM = "application/x-www-form-urlencoded"
#: Longest client id or assertion read from an unauthenticated request.
MAX_CLAIMED_ID = 200
MAX_ASSERTION = 8192
#: How many recently exchanged legacy keys a process remembers (as SHA-256 digests) to let
#: them through while the unknown-key budget is spent.
KNOWN_KEYS = 10_000


def _assertion_subject(assertion: str) -> str | None:
    # RFC 7523 §3: a client assertion's sub is the client id. Read here unverified, only
    # to name whom a request claims to be; never trusted as an identity.
    if len(assertion) > MAX_ASSERTION:
        return None
    try:
        claims = json.loads(extract_compact(assertion.encode()).payload)
    except (JoseError, ValueError, RecursionError, binascii.Error):
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) and subject else None


def claimed_client_id(req: Request) -> str | None:
    """Return the client id ``req`` claims, unverified: Basic user, ``client_id``, or ``sub``.

    For limits and log lines only: anyone may send any client id.
    """
    claimed: str | None = None
    header = req.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            user = base64.b64decode(header[6:].strip(), validate=True).split(b":", 1)[0]
            claimed = unquote_plus(user.decode()) or None
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
    if claimed is None and req.mimetype == FORM:
        try:
            form = req.form
        except HTTPException:  # a body too large to read: nothing is claimed
            return None
        claimed = form.get("client_id") or None
        assertion = form.get("client_assertion")
        if claimed is None and assertion:
            claimed = _assertion_subject(assertion)
    return claimed[:MAX_CLAIMED_ID] if claimed else None


def address_key() -> str:
    """Return the request's source address (after any trusted proxy fix-up)."""
    return f"addr:{request.remote_addr}"


class SweptMemoryStorage(MemoryStorage):
    """``limits``' memory storage, its expired counters swept by one long-lived thread.

    ``MemoryStorage`` starts a new ``threading.Timer`` for each 10 ms in which a counter is
    written, to sweep expired keys: under load, a thread started and torn down every few
    requests, which measured about 35 us of CPU per token request (in-process A/B, the
    limiter as a whole about 105 us). A counter read after its expiry is already dropped
    on access (``MemoryStorage.get``), so the sweep only bounds memory: here one daemon
    thread does it every ``SWEEP_SECONDS`` and ends when the storage is collected.
    """

    SWEEP_SECONDS = 1.0

    def __init__(self) -> None:
        super().__init__()
        thread = threading.Thread(
            target=_sweep, args=(weakref.ref(self),), name="keyswap-limits-sweep", daemon=True
        )
        thread.start()

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 (the method it replaces)
        """Start no timer: the sweeping thread does the work."""

    def sweep(self) -> None:
        """Drop the expired counters now."""
        self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def _sweep(storage: weakref.ref[SweptMemoryStorage]) -> None:
    while (alive := storage()) is not None:
        alive.sweep()
        del alive  # hold no reference while asleep, so the storage can be collected
        time.sleep(SweptMemoryStorage.SWEEP_SECONDS)


def _items(limit: str) -> tuple[RateLimitItem, ...]:
    # One setting may hold several limits: "50/second;1000/minute".
    return () if limit.strip().lower() in DISABLED else tuple(parse_many(limit))


class RateLimits:
    """The issuer's limits over one storage: checked before a request, counted as it goes."""

    def __init__(self, settings: Settings) -> None:
        """Parse the configured limits and open their storage (Redis if configured)."""
        self.client = _items(settings.rate_limit_client)
        self.address = _items(settings.rate_limit_address)
        self.failures = _items(settings.rate_limit_failures)
        self.unknown_keys = _items(settings.rate_limit_unknown_keys)
        self._memory = SlidingWindowCounterRateLimiter(SweptMemoryStorage())
        self._shared: RateLimiter | None = None
        self._shared_errors: tuple[type[Exception], ...] = ()
        if settings.redis_url:
            storage = storage_from_string(settings.redis_url)
            assert isinstance(storage, Storage)  # a synchronous URL gives a synchronous storage
            self._shared = SlidingWindowCounterRateLimiter(storage)
            errors = storage.base_exceptions
            self._shared_errors = errors if isinstance(errors, tuple) else (errors,)
        self._fallback_until = 0.0
        #: Until when (wall clock, as ``limits`` counts) the unknown-key budget is spent.
        self._budget_spent_until = 0.0
        self._known_keys: OrderedDict[bytes, None] = OrderedDict()
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

    def _retry_after(self, item: RateLimitItem, scope: str, key: str) -> int:
        try:
            reset_at = self._strategy().get_window_stats(item, PREFIX, scope, key).reset_time
        except self._shared_errors:
            reset_at = time.time() + 1
        return max(1, math.ceil(reset_at - time.time()))

    def _refuse(self, item: RateLimitItem, scope: str, key: str, **kwargs: str) -> RateLimited:
        retry_after = self._retry_after(item, scope, key)
        return RateLimited(retry_after, detail=f"{scope} limit {item}", **kwargs)

    def check(self) -> None:
        """Count this request against its address (and claimed id); raise if over a limit.

        Nothing here trusts the claimed client id alone: it is only counted together with
        the address that sent it. The failure limit is only tested here (is this address
        already over it?); failed credentials are counted by ``count_failure``.
        """
        address = address_key()
        for item in self.failures:
            if not self._call("test", item, "failures", address):
                raise self._refuse(item, "failures", address)
        for item in self.address:
            if not self._call("hit", item, "address", address):
                raise self._refuse(item, "address", address)
        if self.client:
            claimed = claimed_client_id(request)
            if claimed is not None:
                key = f"client:{claimed}|{address}"
                for item in self.client:
                    if not self._call("hit", item, "client_address", key):
                        raise self._refuse(item, "client_address", key)
        if self._budget_spent_until and time.time() < self._budget_spent_until:
            self._check_unknown_key_budget()

    def _check_unknown_key_budget(self) -> None:
        if request.mimetype != FORM or request.form.get("grant_type") != TOKEN_EXCHANGE_GRANT:
            return
        api_key = request.form.get("subject_token", "")
        with self._lock:
            known = _digest(api_key) in self._known_keys
        if not known:
            retry_after = max(1, math.ceil(self._budget_spent_until - time.time()))
            raise RateLimited(
                retry_after, reason="unknown_key_budget", detail="global unknown API key budget"
            )

    def limit_client(self, client_id: str) -> RateLimited | None:
        """Count a request by an *authenticated* client; return the refusal if it is over."""
        for item in self.client:
            if not self._call("hit", item, "client", client_id):
                return self._refuse(item, "client", client_id)
        return None

    def count_failure(self, address: str) -> None:
        """Count a failed credential (a 401, or an unknown legacy API key) from ``address``."""
        # An unknown key is a 400 under RFC 8693 §2.2.2, but a guess all the same: without
        # this, keys could be guessed at the per-address rate.
        for item in self.failures:
            self._call("hit", item, "failures", f"addr:{address}")

    def count_unknown_key(self) -> bool:
        """Count an unknown legacy key against the global budget; True if this spent it.

        From then until the budget's window frees up, ``check`` lets through only keys
        this process has seen exchanged (``remember_key``).
        """
        for item in self.unknown_keys:
            self._call("hit", item, "unknown_keys", "all")
            if not self._call("test", item, "unknown_keys", "all"):
                retry_after = self._retry_after(item, "unknown_keys", "all")
                with self._lock:
                    was_open = time.time() >= self._budget_spent_until
                    self._budget_spent_until = time.time() + retry_after
                return was_open
        return False

    def remember_key(self, api_key: str) -> None:
        """Remember that ``api_key`` was exchanged, to let it through a spent budget."""
        if not self.unknown_keys:
            return
        digest = _digest(api_key)
        with self._lock:
            self._known_keys[digest] = None
            self._known_keys.move_to_end(digest)
            if len(self._known_keys) > KNOWN_KEYS:
                self._known_keys.popitem(last=False)


def _digest(api_key: str) -> bytes:
    # Memory only: the process already holds the clear key while it answers the request.
    return hashlib.sha256(api_key.encode()).digest()


def limit_blueprint(app: Flask, limits: RateLimits, blueprint: str) -> None:
    """Apply ``limits`` to every route of the blueprint named ``blueprint`` in ``app``.

    Registered on the app, keyed by blueprint name, not on the (module-level) blueprint:
    each app has its own limits.
    """
    app.before_request_funcs.setdefault(blueprint, []).append(limits.check)
