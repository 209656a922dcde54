"""The legacy-key shim: callers holding a static API key keep working, as JWT callers.

A legacy caller sends ``X-API-Key: KEY`` (or ``Authorization: ApiKey KEY``). The shim trades
the key for an access token at the issuer (RFC 8693 token exchange, ``KeyExchanger``), caches
the token per key hash until shortly before it expires, and presents it as
``Authorization: Bearer``. Two forms:

- ``LegacyKeyMiddleware`` — WSGI, for a Python resource server: the exchanged token is then
  verified like any bearer token (``keyswap.clients.wsgi.BearerMiddleware``), so the app gets the
  same ``Principal`` from a legacy caller as from a JWT caller, and never sees the key;
- ``ShimProxy`` — a small reverse proxy (``keyswap shim --listen H:P --upstream URL``) for
  services in any language: it swaps the header and forwards; the upstream verifies.

A key the issuer refuses is answered with the issuer's own status and JSON error, and that
answer is remembered for a few seconds, so a caller retrying a dead key neither hammers the
issuer nor trips its failed-authentication limit for every other caller of the shim.
Unknown keys are limited per caller address here (``GuessLimit``): the issuer sees every
exchange as coming from the shim, so one caller's guesses must be stopped before they reach
it, or its failure limit on the shim's address would refuse every other caller's key too.
A key with a sunset date keeps its ``Deprecation``/``Sunset``/``Link`` fields on the way back.
Neither form ever logs a key: keys are only ever handled as their SHA-256 here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import urllib3
from cachetools import TTLCache
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from urllib3.util import SKIP_HEADER

from .backoff import NO_RETRY, RetryPolicy
from .errors import IssuerUnavailable, TokenError, TokenRefused
from .forwarding import FORWARDING_FIELDS, end_to_end, forwarded_for
from .token_cache import AccessToken, TokenCache
from .token_client import Scope, TokenClient, normalize_scope
from .verifier import Verifier
from .wsgi import BearerMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
_API_KEY_ENVIRON = "HTTP_X_API_KEY"
#: The issuer's description of a key it does not know (the contract's error table).
UNKNOWN_API_KEY = "unknown API key"
#: Unknown keys one caller address may try: half the issuer's default failure limit
#: (``KEYSWAP_RATE_LIMIT_FAILURES``, 20/minute), so one caller alone never trips it for the
#: shim's address.
DEFAULT_GUESS_LIMIT = "10/minute"
_CHUNK = 65536


class AmbiguousApiKey(ValueError):
    """The request carries more than one API key (two fields, or a key in each form)."""


class CallerRateLimited(TokenRefused):
    """The caller tried too many unknown keys; answered 429 without asking the issuer."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "temporarily_unavailable",
            f"the caller is rate limited; retry after {retry_after} seconds",
            status=429,
            retry_after=retry_after,
        )


def api_key_from(environ: WSGIEnvironment) -> str | None:
    """Return the legacy key a request carries (``X-API-Key`` or ``Authorization: ApiKey``).

    Raise ``AmbiguousApiKey`` if it carries more than one. WSGI servers join repeated
    fields with commas (RFC 9110 §5.3 allows a recipient to), so a comma in a key's field
    means two keys: whichever the shim picked, the caller's intent would be a guess.
    """
    keys = [part.strip() for part in str(environ.get(_API_KEY_ENVIRON, "")).split(",")]
    authorization = str(environ.get("HTTP_AUTHORIZATION", "")).strip()
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "apikey":
        keys += [part.strip() for part in value.split(",")]
    keys = [key for key in keys if key]
    if len(keys) > 1:
        raise AmbiguousApiKey("more than one API key in the request")
    return keys[0] if keys else None


class GuessLimit:
    """Unknown-key attempts per caller address, counted in this process with ``limits``.

    A moving window, exact where the issuer's sliding-window counter approximates: it is
    kept in memory, so its cost per entry does not matter, and a window boundary must not
    let a guesser through early.
    """

    def __init__(self, limit: str = DEFAULT_GUESS_LIMIT) -> None:
        """Allow ``limit`` (a ``limits`` string such as "10/minute"; "off" for none)."""
        off = limit.strip().lower() in {"", "0", "off", "none"}
        self.items: tuple[RateLimitItem, ...] = () if off else tuple(parse_many(limit))
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, caller: str) -> None:
        """Raise ``CallerRateLimited`` if ``caller`` is already over the limit."""
        for item in self.items:
            if not self._limiter.test(item, "shim-guesses", caller):
                reset_at = self._limiter.get_window_stats(item, "shim-guesses", caller).reset_time
                raise CallerRateLimited(max(1, math.ceil(reset_at - time.time())))

    def count(self, caller: str) -> None:
        """Count one unknown key tried by ``caller``."""
        for item in self.items:
            self._limiter.hit(item, "shim-guesses", caller)


class KeyExchanger:
    """Trade legacy keys for access tokens, cached per key hash; refusals cached briefly."""

    def __init__(
        self,
        tokens: TokenClient,
        *,
        scope: Scope = None,
        resource: str | None = None,
        refusal_ttl: float = 10.0,
        max_refusals: int = 10_000,
        max_age: float | None = None,
        guess_limit: str = DEFAULT_GUESS_LIMIT,
    ) -> None:
        """Exchange through ``tokens`` (a ``TokenClient`` for the issuer, no credentials needed).

        ``scope`` and ``resource`` are sent with every exchange. A refused key is answered
        from memory for ``refusal_ttl`` seconds (at most ``max_refusals`` keys remembered).
        A token is reused until shortly before it expires, or for at most ``max_age``
        seconds: the longest a deactivated owner's legacy calls keep passing. ``max_age=0``
        exchanges on every call, so every legacy call gets the issuer's live owner check.
        A caller address that tried ``guess_limit`` unknown keys is refused (429) without
        asking the issuer until its window passes.
        """
        self.tokens = tokens
        self.scope = normalize_scope(scope)
        self.resource = resource
        self.max_age = max_age
        self.cache = TokenCache(clock=tokens.clock)
        self._refusals: TTLCache[str, TokenRefused] = TTLCache(max_refusals, refusal_ttl)
        self._lock = threading.Lock()
        self.guesses = GuessLimit(guess_limit)

    @classmethod
    def from_issuer(
        cls, issuer: str, *, retry: RetryPolicy = NO_RETRY, **options: Any
    ) -> KeyExchanger:
        """Return an exchanger for ``issuer`` (its token endpoint read from its metadata).

        By default an exchange is tried once: it runs while a caller waits, so an issuer
        answering 429 or 5xx is passed on at once (503 with its ``Retry-After``) rather
        than waited out while the caller's connection, and a server thread, are held.
        """
        return cls(TokenClient.from_issuer(issuer, retry=retry), **options)

    def token_for(self, api_key: str, caller: str | None = None) -> AccessToken:
        """Return a fresh token for ``api_key``; raise ``TokenRefused`` or ``IssuerUnavailable``.

        ``caller`` (an address) is held to the unknown-key limit: once over it, every key
        it sends is refused with ``CallerRateLimited``, before any cache is looked at, so
        a cached answer cannot tell a limited caller which keys are real.
        """
        if caller is not None:
            self.guesses.check(caller)
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        with self._lock:
            refused = self._refusals.get(digest)
        if refused is not None:
            # A cached exception: drop its old traceback, or each raise would grow it.
            raise refused.with_traceback(None)
        fetched: list[bool] = []

        def exchange() -> AccessToken:
            fetched.append(True)
            return self.tokens.exchange_api_key(api_key, scope=self.scope, resource=self.resource)

        try:
            if self.max_age == 0:
                return exchange()
            token = self.cache.get(digest, exchange)
            issued_at = token.expires_at - token.expires_in
            if not fetched and self.max_age is not None:
                if self.tokens.clock() - issued_at >= self.max_age:
                    self.cache.invalidate(digest, token.access_token)
                    token = self.cache.get(digest, exchange)
            return token
        except TokenRefused as exc:
            with self._lock:
                self._refusals[digest] = exc
            if caller is not None and exc.description == UNKNOWN_API_KEY:
                self.guesses.count(caller)
            raise


def refusal(error: TokenError) -> tuple[str, list[tuple[str, str]], bytes]:
    """Return status line, headers and body passing on the issuer's answer to a key.

    A refusal keeps the issuer's status and ``error``/``error_description``; an issuer that
    could not answer is 503 with ``Retry-After``.
    """
    if isinstance(error, TokenRefused) and error.status:
        status = error.status
        body = {"error": error.error, "error_description": error.description}
        headers = [("Cache-Control", "no-store")]
        if error.retry_after is not None:
            headers.append(("Retry-After", str(max(1, math.ceil(error.retry_after)))))
    else:
        status = 503
        body = {
            "error": "temporarily_unavailable",
            "error_description": "the issuer is unavailable",
        }
        retry_after = error.retry_after if isinstance(error, IssuerUnavailable) else None
        headers = [("Retry-After", str(max(1, int(retry_after or 5))))]
    payload = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
    headers += [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    return f"{status} {_phrase(status)}", headers, payload


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class _Answer(Exception):
    """A response the shim gives itself instead of going on (a refusal, a bad request)."""

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        super().__init__(status)
        self.status, self.headers, self.body = status, headers, body

    @classmethod
    def bad_request(cls, description: str) -> _Answer:
        """Return a 400 ``invalid_request`` naming what is wrong with the request."""
        return cls(*refusal(TokenRefused("invalid_request", description, status=400)))

    def send(self, start_response: StartResponse) -> list[bytes]:
        """Start the response and return its body."""
        start_response(self.status, self.headers)
        return [self.body]


def _swap_key_for_token(
    exchanger: KeyExchanger, environ: WSGIEnvironment, caller: str
) -> AccessToken | None:
    """Put a bearer token in place of the request's legacy key, if it has one.

    Return the token (None if the request has no key); raise ``_Answer`` with the refusal.
    """
    try:
        api_key = api_key_from(environ)
    except AmbiguousApiKey as exc:
        raise _Answer.bad_request(str(exc)) from None
    if api_key is None:
        return None
    try:
        token = exchanger.token_for(api_key, caller)
    except TokenError as exc:
        raise _Answer(*refusal(exc)) from None
    environ.pop(_API_KEY_ENVIRON, None)
    environ["HTTP_AUTHORIZATION"] = f"Bearer {token.access_token}"
    return token


def _with_deprecation(
    headers: list[tuple[str, str]], token: AccessToken | None
) -> list[tuple[str, str]]:
    """Add the key's deprecation fields to a response, unless it already has its own.

    ``Link`` is a list field, so the key's link is added beside any the response has.
    """
    if token is None:
        return headers
    present = {name.lower() for name, _ in headers}
    added = [
        (name, value)
        for name, value in token.deprecation_headers
        if name.lower() == "link" or name.lower() not in present
    ]
    return [*headers, *added]


class LegacyKeyMiddleware:
    """WSGI middleware accepting legacy keys beside bearer tokens; one kind of principal."""

    def __init__(
        self,
        app: WSGIApplication,
        verifier: Verifier,
        exchanger: KeyExchanger,
        **bearer_options: Any,
    ) -> None:
        """Guard ``app``; ``bearer_options`` (scopes, realm, ...) go to ``BearerMiddleware``.

        Unknown keys are limited per ``REMOTE_ADDR``: put ``ProxyFix`` (or the like) in
        front if the app sits behind proxies, so that is the caller's address.
        """
        self.exchanger = exchanger
        self.bearer = BearerMiddleware(app, verifier, **bearer_options)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Exchange a legacy key if the request has one, then verify as a bearer token."""
        try:
            token = _swap_key_for_token(
                self.exchanger, environ, str(environ.get("REMOTE_ADDR", ""))
            )
        except _Answer as answer:
            return answer.send(start_response)
        if token is None:
            return self.bearer(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, _with_deprecation(headers, token), exc_info)

        return self.bearer(environ, start)


class ShimProxy:
    """A WSGI reverse proxy swapping legacy keys for bearer tokens on the way upstream.

    Each call carries only its caller's own end-to-end fields: the proxy keeps no cookies
    and no other state between callers (urllib3's pool reuses connections, nothing else).
    Bodies are streamed both ways, never held whole in memory.
    """

    def __init__(
        self,
        upstream: str,
        exchanger: KeyExchanger,
        *,
        trusted_proxies: int = 0,
        timeout: float = 30.0,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        """Forward to ``upstream`` (a base URL); requests without a key pass unchanged.

        ``trusted_proxies`` is how many reverse proxies of yours stand in front of the shim
        (``keyswap.clients.forwarding``): 0, the default, believes no ``X-Forwarded-For`` a caller
        sends, and limits unknown keys by the connecting address.
        """
        if trusted_proxies < 0:
            raise ValueError("trusted_proxies cannot be negative")
        self.upstream = upstream.rstrip("/")
        self.exchanger = exchanger
        self.trusted_proxies = trusted_proxies
        self.timeout = urllib3.Timeout(connect=min(timeout, 10.0), read=timeout)
        self.pool = pool or urllib3.PoolManager(maxsize=32, retries=False)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Swap the key (or answer the issuer's refusal), forward, relay the answer."""
        forwarding = forwarded_for(
            _received(environ),
            str(environ.get("REMOTE_ADDR", "")),
            scheme=str(environ.get("wsgi.url_scheme", "http")),
            host=environ.get("HTTP_HOST"),
            trusted_proxies=self.trusted_proxies,
        )
        try:
            token = _swap_key_for_token(self.exchanger, environ, forwarding.caller)
            body = _request_body(environ)
        except _Answer as answer:
            return answer.send(start_response)
        try:
            upstream = self._forward(environ, forwarding.headers, body)
        except urllib3.exceptions.HTTPError as exc:
            log.warning("upstream %s unreachable: %s", self.upstream, type(exc).__name__)
            payload = (
                b'{"error": "bad_gateway", "error_description": "the upstream is unreachable"}'
            )
            start_response(
                "502 Bad Gateway",
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        headers = _with_deprecation(end_to_end(upstream.headers.items()), token)
        start_response(f"{upstream.status} {upstream.reason or _phrase(upstream.status)}", headers)
        return _Relay(upstream)

    def _forward(
        self,
        environ: WSGIEnvironment,
        forwarding: list[tuple[str, str]],
        body: Iterator[bytes] | None,
    ) -> urllib3.BaseHTTPResponse:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING")
        url = self.upstream + path + (f"?{query}" if query else "")
        return self.pool.urlopen(
            environ["REQUEST_METHOD"],
            url,
            body=body,
            headers=_request_headers(environ, forwarding),
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
            timeout=self.timeout,
        )


def _received(environ: WSGIEnvironment) -> list[tuple[str, str]]:
    """Return the request's fields as (name, value), as the WSGI server passed them."""
    return [
        (name[5:].replace("_", "-").title(), str(value))
        for name, value in environ.items()
        if name.startswith("HTTP_")
    ]


def _request_headers(
    environ: WSGIEnvironment, forwarding: list[tuple[str, str]]
) -> urllib3.HTTPHeaderDict:
    """Return the fields to send upstream: the caller's end-to-end ones, then forwarding."""
    received = _received(environ)
    received += [
        (name.replace("_", "-").title(), str(environ[name]))
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH")
        if environ.get(name)
    ]
    headers = urllib3.HTTPHeaderDict()
    for name, value in end_to_end(received):
        if name.lower() not in FORWARDING_FIELDS and name.lower() != "host":
            headers.add(name, value)
    for name, value in forwarding:
        headers.add(name, value)
    # The caller's fields only: urllib3 would otherwise add a User-Agent of its own.
    headers.setdefault("User-Agent", SKIP_HEADER)
    return headers


def _request_body(environ: WSGIEnvironment) -> Iterator[bytes] | None:
    """Return the request body as a stream of chunks, or None if it has none.

    With a ``Content-Length``, exactly that many bytes are read; a chunked body is read
    to its end (the WSGI server decodes the chunking). Neither is ever read whole.
    """
    stream = environ["wsgi.input"]
    length = str(environ.get("CONTENT_LENGTH") or "").strip()
    if length:
        if not length.isdigit():
            raise _Answer.bad_request("the Content-Length is not a number")
        return _chunks(stream, int(length)) if int(length) > 0 else None
    if "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower():
        return _chunks(stream, None)
    return None


def _chunks(stream: Any, remaining: int | None) -> Iterator[bytes]:
    while remaining is None or remaining > 0:
        chunk = stream.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


class _Relay:
    """The upstream's body, streamed as received (still encoded), closed when done."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.stream(_CHUNK, decode_content=False)
        self._done = True

    def close(self) -> None:
        # A connection whose answer was not read to the end cannot carry another request.
        if not self._done:
            self._response.close()
        self._response.release_conn()
