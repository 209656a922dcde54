"""Get keyswap access tokens: client credentials (RFC 6749 §4.4), legacy key exchange (RFC 8693),
and a workload's platform token by the JWT bearer grant (RFC 7523 §2.1, ``workload_token``).

::

    client = TokenClient.from_issuer("https://auth.example", client_id=ID, client_secret=SECRET)
    token = client.get_token(scope="orders:read").access_token

The token endpoint comes from RFC 8414 metadata (fetched once, on first use) or is given.
The client authenticates with ``client_secret_basic`` (the default), ``client_secret_post`` or
``private_key_jwt`` (RFC 7523). A legacy API key is exchanged without client authentication.
Tokens are cached per (scope, resource) until shortly before they expire, one refresh in
flight per key (``token_cache``); failures are retried with backoff (``backoff``). A refusal
raises ``TokenRefused`` carrying the issuer's ``error`` and ``error_description`` verbatim; an
issuer still failing when retries run out raises ``IssuerUnavailable``.
"""

from __future__ import annotations

import threading
import time
from base64 import b64encode
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Self
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from .backoff import RetryPolicy, is_retryable, parse_retry_after, send_with_retries
from .client_assertion import ASSERTION_TYPE, AssertionSigner, PrivateKey
from .errors import IssuerUnavailable, TokenError, TokenRefused
from .outbound import require_secure_url
from .token_cache import AccessToken, TokenCache
from .workload_token import WorkloadToken

CLIENT_CREDENTIALS = "client_credentials"
#: RFC 8693 §2.1 grant type, and keyswap's subject token type for a legacy API key.
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
API_KEY_TOKEN_TYPE = "urn:keyswap:params:oauth:token-type:api-key"
#: RFC 7523 §2.1: a workload's token from a trusted issuer (workload identity federation).
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
METADATA_SUFFIX = "/.well-known/oauth-authorization-server"
#: Response fields that announce a credential's retirement (RFC 9745 §2, RFC 8594 §3).
DEPRECATION_FIELDS = ("Deprecation", "Sunset", "Link")

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
Scope = str | Iterable[str] | None


def normalize_scope(scope: Scope) -> str | None:
    """Return ``scope`` as one space-separated string in a stable order, or None.

    Order carries no meaning in a scope (RFC 6749 §3.3), so sorting lets "b a" and "a b"
    share a cached token.
    """
    if scope is None:
        return None
    names = scope.split() if isinstance(scope, str) else list(scope)
    return " ".join(sorted(set(names))) or None


def metadata_url(issuer: str) -> str:
    """Return the RFC 8414 §3.1 metadata URL: the well-known part goes before the issuer's path."""
    parts = urlsplit(issuer)
    path = METADATA_SUFFIX + parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class TokenClient:
    """Fetch, cache and refresh access tokens from one keyswap issuer."""

    def __init__(
        self,
        token_url: str | None = None,
        *,
        issuer: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        private_key: PrivateKey | None = None,
        auth_method: AuthMethod | None = None,
        signing_alg: str | None = None,
        key_id: str | None = None,
        api_key: str | None = None,
        workload_token: WorkloadToken | None = None,
        scope: Scope = None,
        resource: str | None = None,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = 10.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin: float = 30.0,
        refresh_fraction: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Configure the client; nothing is fetched until a token is asked for.

        Give ``token_url``, or ``issuer`` to find it in the issuer's metadata. Give a
        ``client_id`` with ``client_secret`` or ``private_key`` (PEM or JWK) for client
        credentials, or ``api_key`` alone to exchange a legacy key, or ``workload_token``
        alone to trade the platform's token for this workload (no secret at all). ``scope`` and
        ``resource`` are the defaults of ``get_token``. ``clock`` (monotonic seconds) times
        the cache; a token is refreshed ``refresh_margin`` seconds, or ``refresh_fraction``
        of its lifetime if that is shorter, before it expires.
        """
        if (token_url is None) == (issuer is None):
            raise ValueError("give exactly one of token_url and issuer")
        # Credentials and tokens cross this URL: https, or plain http on this machine only.
        if token_url is not None:
            require_secure_url(token_url, "token_url")
        if issuer is not None:
            require_secure_url(issuer, "issuer")
        self.issuer = issuer.rstrip("/") if issuer else None
        self._token_url = token_url
        self.client_id = client_id
        if workload_token is not None and (client_id or client_secret or private_key or api_key):
            raise ValueError("a workload_token is the credential; give no other credential")
        self.auth_method = _auth_method(auth_method, client_id, client_secret, private_key, api_key)
        self._workload_token = workload_token
        self._secret = client_secret
        self._signer = (
            AssertionSigner(client_id, private_key, alg=signing_alg, kid=key_id)
            if private_key is not None and client_id is not None
            else None
        )
        self._api_key = api_key
        self.scope = normalize_scope(scope)
        self.resource = resource
        self._owns_session = session is None
        self.session = session or requests.Session()
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self.cache = TokenCache(
            clock=clock, refresh_margin=refresh_margin, refresh_fraction=refresh_fraction
        )
        self._discovery = threading.Lock()

    @classmethod
    def from_issuer(cls, issuer: str, **options: Any) -> Self:
        """Return a client for ``issuer``; its token endpoint is read from RFC 8414 metadata."""
        return cls(issuer=issuer, **options)

    @classmethod
    def for_api_key(
        cls,
        api_key: str,
        *,
        token_url: str | None = None,
        issuer: str | None = None,
        **options: Any,
    ) -> Self:
        """Return a client that trades the legacy ``api_key`` for tokens (RFC 8693)."""
        return cls(token_url, issuer=issuer, api_key=api_key, **options)

    @property
    def clock(self) -> Callable[[], float]:
        """Return the clock that times this client's tokens (``AccessToken.expires_at``)."""
        return self._clock

    # --- tokens -------------------------------------------------------------------------

    def get_token(self, scope: Scope = None, resource: str | None = None) -> AccessToken:
        """Return a cached token for (scope, resource), fetching one if none is fresh."""
        key = self.cache_key(scope, resource)
        return self.cache.get(key, lambda: self.fetch_token(key[0], key[1]))

    def cached_token(self, scope: Scope = None, resource: str | None = None) -> AccessToken | None:
        """Return the cached token for (scope, resource) if it is fresh; never touch the network."""
        return self.cache.peek(self.cache_key(scope, resource))

    def invalidate(
        self, scope: Scope = None, resource: str | None = None, access_token: str | None = None
    ) -> None:
        """Drop the cached token for (scope, resource); only if it is ``access_token``, if given."""
        self.cache.invalidate(self.cache_key(scope, resource), access_token)

    def cache_key(self, scope: Scope = None, resource: str | None = None) -> tuple[str | None, ...]:
        """Return the cache key of a request: its scope (or the default) and resource."""
        return (normalize_scope(scope) or self.scope, resource or self.resource)

    def fetch_token(self, scope: Scope = None, resource: str | None = None) -> AccessToken:
        """Ask the issuer for a new token now, bypassing the cache (retries included)."""
        if self._api_key is not None:
            return self.exchange_api_key(self._api_key, scope=scope, resource=resource)
        if self._workload_token is not None:
            return self._request_token(
                _optional(
                    grant_type=JWT_BEARER,
                    scope=normalize_scope(scope) or self.scope,
                    resource=resource or self.resource,
                ),
                authenticate=False,
                assertion=self._workload_token,
            )
        if self.client_id is None:
            raise ValueError("client credentials need a client_id (or give api_key)")
        form = _optional(
            grant_type=CLIENT_CREDENTIALS,
            scope=normalize_scope(scope) or self.scope,
            resource=resource or self.resource,
        )
        return self._request_token(form, authenticate=True)

    def exchange_api_key(
        self, api_key: str, *, scope: Scope = None, resource: str | None = None
    ) -> AccessToken:
        """Trade a legacy API key for a token (RFC 8693), without the cache.

        The key itself is the credential, so no client authentication is sent.
        """
        form = _optional(
            grant_type=TOKEN_EXCHANGE,
            subject_token=api_key,
            subject_token_type=API_KEY_TOKEN_TYPE,
            scope=normalize_scope(scope) or self.scope,
            resource=resource or self.resource,
        )
        return self._request_token(form, authenticate=False)

    @property
    def token_url(self) -> str:
        """Return the token endpoint, reading the issuer's metadata the first time if needed."""
        if self._token_url is None:
            with self._discovery:
                if self._token_url is None:
                    self._token_url = self._discover()
        return self._token_url

    def close(self) -> None:
        """Close the HTTP session if this client made it."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> Self:
        """Return the client, to be closed at the end of a ``with`` block."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the client's session (if it made it)."""
        self.close()

    # --- HTTP ---------------------------------------------------------------------------

    def _request_token(
        self,
        form: dict[str, str],
        *,
        authenticate: bool,
        assertion: WorkloadToken | None = None,
    ) -> AccessToken:
        url = self.token_url
        sent_at = [self._clock()]

        def send() -> requests.Response:
            # Built per attempt: a private_key_jwt assertion must carry a fresh jti each
            # time, or a retry after a lost response would be refused as a replay; and a
            # workload token is read afresh, the platform may have rotated it meanwhile.
            data, headers = dict(form), {"Accept": "application/json"}
            if assertion is not None:
                data["assertion"] = assertion.read()
            if authenticate:
                self._authenticate(url, data, headers)
            sent_at[0] = self._clock()
            return self.session.post(url, data=data, headers=headers, timeout=self.timeout)

        response = self._send(send)
        return _parse_token_response(response, sent_at[0])

    def _authenticate(self, url: str, data: dict[str, str], headers: dict[str, str]) -> None:
        assert self.client_id is not None
        if self.auth_method == "client_secret_basic":
            assert self._secret is not None
            # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
            pair = f"{quote(self.client_id, safe='')}:{quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + b64encode(pair.encode()).decode("ascii")
            return
        data["client_id"] = self.client_id
        if self.auth_method == "client_secret_post":
            assert self._secret is not None
            data["client_secret"] = self._secret
        elif self.auth_method == "private_key_jwt":
            assert self._signer is not None
            data["client_assertion_type"] = ASSERTION_TYPE
            data["client_assertion"] = self._signer.sign(url)

    def _send(self, send: Callable[[], requests.Response]) -> requests.Response:
        try:
            return send_with_retries(send, self.retry, sleep=self._sleep)
        except (requests.ConnectionError, requests.Timeout) as exc:
            kind = "timeout" if isinstance(exc, requests.Timeout) else "connection_failed"
            raise IssuerUnavailable(kind, f"{type(exc).__name__}: {exc}") from exc

    def _discover(self) -> str:
        assert self.issuer is not None
        url = metadata_url(self.issuer)
        response = self._send(lambda: self.session.get(url, timeout=self.timeout))
        body = _json_object(response)
        if response.status_code != 200:
            raise _error_from(response, body)
        # RFC 8414 §3.3: the metadata's issuer MUST be the one the client asked about.
        if body.get("issuer") != self.issuer:
            raise TokenError(
                "invalid_metadata", f"{url} names issuer {body.get('issuer')!r}, not {self.issuer}"
            )
        endpoint = body.get("token_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise TokenError("invalid_metadata", f"{url} has no token_endpoint")
        try:
            return require_secure_url(endpoint, "the metadata's token_endpoint")
        except ValueError as exc:
            raise TokenError("invalid_metadata", str(exc)) from None


def _auth_method(
    method: AuthMethod | None,
    client_id: str | None,
    secret: str | None,
    private_key: PrivateKey | None,
    api_key: str | None,
) -> AuthMethod:
    if api_key is not None:
        if client_id or secret or private_key:
            raise ValueError("an api_key is the credential; give no client credentials with it")
        return "none"
    if client_id is None and (secret is not None or private_key is not None):
        raise ValueError("a client_secret or private_key needs its client_id")
    chosen: AuthMethod = method or (
        "private_key_jwt" if private_key is not None else "client_secret_basic"
    )
    needs = {
        "client_secret_basic": secret,
        "client_secret_post": secret,
        "private_key_jwt": private_key,
        "none": "",
    }
    if client_id is not None and needs[chosen] is None:
        raise ValueError(f"{chosen} needs a client_secret or private_key to match")
    return chosen


def _optional(**fields: str | None) -> dict[str, str]:
    return {name: value for name, value in fields.items() if value is not None}


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_from(response: requests.Response, body: Mapping[str, Any]) -> TokenError:
    """Return the exception for an error answer, with the issuer's words verbatim."""
    status = response.status_code
    error = body.get("error")
    description = body.get("error_description")
    error = error if isinstance(error, str) else f"http_{status}"
    description = description if isinstance(description, str) else None
    if is_retryable(status):
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return IssuerUnavailable(error, description, status=status, retry_after=retry_after)
    return TokenRefused(error, description, status=status)


def _parse_token_response(response: requests.Response, requested_at: float) -> AccessToken:
    body = _json_object(response)
    if response.status_code != 200:
        raise _error_from(response, body)
    token, token_type = body.get("access_token"), body.get("token_type")
    expires_in = body.get("expires_in")
    if not isinstance(token, str) or not token:
        raise TokenError("invalid_response", "the token response has no access_token")
    # RFC 6750 is the only token type this client knows how to present.
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenError("invalid_response", f"unsupported token_type {token_type!r}")
    if not isinstance(expires_in, int | float) or expires_in <= 0:
        raise TokenError("invalid_response", "the token response has no positive expires_in")
    scope, issued_type = body.get("scope"), body.get("issued_token_type")
    return AccessToken(
        access_token=token,
        token_type=token_type,
        expires_in=float(expires_in),
        # Count the lifetime from when the request was sent: the token may have waited in
        # transit, and erring early only refreshes a little sooner.
        expires_at=requested_at + float(expires_in),
        scope=scope if isinstance(scope, str) else None,
        issued_token_type=issued_type if isinstance(issued_type, str) else None,
        deprecation_headers=tuple(
            (name, value)
            for name in DEPRECATION_FIELDS
            if (value := response.headers.get(name)) is not None
        ),
    )
