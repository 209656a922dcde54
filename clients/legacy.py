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
Neither form ever logs a key: keys are only ever handled as their SHA-256 here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import requests
from cachetools import TTLCache

from .errors import IssuerUnavailable, TokenError, TokenRefused
from .token_cache import AccessToken, TokenCache
from .token_client import Scope, TokenClient, normalize_scope
from .verifier import Verifier
from .wsgi import BearerMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
_API_KEY_ENVIRON = "HTTP_X_API_KEY"
#: RFC 9110 §7.6.1 hop-by-hop fields, which a proxy must not forward.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def api_key_from(environ: WSGIEnvironment) -> str | None:
    """Return the legacy key a request carries (``X-API-Key`` or ``Authorization: ApiKey``)."""
    key = str(environ.get(_API_KEY_ENVIRON, "")).strip()
    if key:
        return key
    authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "apikey" and value.strip():
        return value.strip()
    return None


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
    ) -> None:
        """Exchange through ``tokens`` (a ``TokenClient`` for the issuer, no credentials needed).

        ``scope`` and ``resource`` are sent with every exchange. A refused key is answered
        from memory for ``refusal_ttl`` seconds (at most ``max_refusals`` keys remembered).
        A token is reused until shortly before it expires, or for at most ``max_age``
        seconds: the longest a deactivated owner's legacy calls keep passing. ``max_age=0``
        exchanges on every call, so every legacy call gets the issuer's live owner check.
        """
        self.tokens = tokens
        self.scope = normalize_scope(scope)
        self.resource = resource
        self.max_age = max_age
        self.cache = TokenCache(clock=tokens.clock)
        self._refusals: TTLCache[str, TokenRefused] = TTLCache(max_refusals, refusal_ttl)
        self._lock = threading.Lock()

    @classmethod
    def from_issuer(cls, issuer: str, **options: Any) -> KeyExchanger:
        """Return an exchanger for ``issuer`` (its token endpoint read from its metadata)."""
        return cls(TokenClient.from_issuer(issuer), **options)

    def token_for(self, api_key: str) -> AccessToken:
        """Return a fresh token for ``api_key``; raise ``TokenRefused`` or ``IssuerUnavailable``."""
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


def _swap_key_for_token(
    exchanger: KeyExchanger, environ: WSGIEnvironment, start_response: StartResponse
) -> list[bytes] | None:
    """Put a bearer token in place of the request's legacy key, if it has one.

    Returns None to go on (no key, or swapped), or the refusal's body once it is started.
    """
    api_key = api_key_from(environ)
    if api_key is None:
        return None
    try:
        token = exchanger.token_for(api_key)
    except TokenError as exc:
        status, headers, body = refusal(exc)
        start_response(status, headers)
        return [body]
    environ.pop(_API_KEY_ENVIRON, None)
    environ["HTTP_AUTHORIZATION"] = f"Bearer {token.access_token}"
    return None


class LegacyKeyMiddleware:
    """WSGI middleware accepting legacy keys beside bearer tokens; one kind of principal."""

    def __init__(
        self,
        app: WSGIApplication,
        verifier: Verifier,
        exchanger: KeyExchanger,
        **bearer_options: Any,
    ) -> None:
        """Guard ``app``; ``bearer_options`` (scopes, realm, ...) go to ``BearerMiddleware``."""
        self.exchanger = exchanger
        self.bearer = BearerMiddleware(app, verifier, **bearer_options)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Exchange a legacy key if the request has one, then verify as a bearer token."""
        refused = _swap_key_for_token(self.exchanger, environ, start_response)
        if refused is not None:
            return refused
        return self.bearer(environ, start_response)


class ShimProxy:
    """A WSGI reverse proxy swapping legacy keys for bearer tokens on the way upstream."""

    def __init__(
        self,
        upstream: str,
        exchanger: KeyExchanger,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Forward to ``upstream`` (a base URL); requests without a key pass unchanged."""
        self.upstream = upstream.rstrip("/")
        self.exchanger = exchanger
        self.session = session or requests.Session()
        self.timeout = timeout

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Swap the key (or answer the issuer's refusal), forward, relay the answer."""
        refused = _swap_key_for_token(self.exchanger, environ, start_response)
        if refused is not None:
            return refused
        try:
            upstream = self._forward(environ)
        except requests.RequestException as exc:
            log.warning("upstream %s unreachable: %s", self.upstream, type(exc).__name__)
            payload = (
                b'{"error": "bad_gateway", "error_description": "the upstream is unreachable"}'
            )
            start_response(
                "502 Bad Gateway",
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        headers = [
            (name, value)
            for name, value in upstream.raw.headers.items()
            if name.lower() not in _HOP_BY_HOP
        ]
        start_response(f"{upstream.status_code} {upstream.reason}", headers)
        return _Relay(upstream)

    def _forward(self, environ: WSGIEnvironment) -> requests.Response:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING")
        url = self.upstream + path + (f"?{query}" if query else "")
        headers = _request_headers(environ)
        length = environ.get("CONTENT_LENGTH")
        body: Any = None
        if length and int(length) > 0:
            body = environ["wsgi.input"].read(int(length))
        elif environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            body = _chunks(environ["wsgi.input"])
        return self.session.request(
            environ["REQUEST_METHOD"],
            url,
            headers=headers,
            data=body,
            stream=True,
            allow_redirects=False,
            timeout=self.timeout,
        )


def _request_headers(environ: WSGIEnvironment) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in environ.items():
        if name.startswith("HTTP_"):
            header = name[5:].replace("_", "-").title()
            if header.lower() not in _HOP_BY_HOP and header.lower() != "host":
                headers[header] = value
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").title()] = environ[name]
    client = environ.get("REMOTE_ADDR")
    if client:
        prior = headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {client}" if prior else client
    headers["X-Forwarded-Proto"] = environ.get("wsgi.url_scheme", "http")
    if environ.get("HTTP_HOST"):
        headers["X-Forwarded-Host"] = environ["HTTP_HOST"]
    # The upstream's answer is relayed byte for byte: without this, requests would ask for
    # gzip on the caller's behalf and relay a body the caller may not be able to read.
    headers.setdefault("Accept-Encoding", "identity")
    return headers


def _chunks(stream: Any, size: int = 65536) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


class _Relay:
    """The upstream's body, streamed as received (still encoded), closed when done."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.raw.stream(65536, decode_content=False)

    def close(self) -> None:
        self._response.close()
