"""Offline verification of keyswap access tokens (RFC 9068 §4, RFC 8725 §3).

``Verifier(issuer, audience)`` reads the issuer's RFC 8414 metadata once, then checks each
token against the cached JWK Set: header ``typ`` is ``at+jwt``; the algorithm is the one
bound to the key named by ``kid``, never the header's choice; ``iss``, ``aud``, ``exp``,
``nbf`` and ``iat`` (with a small leeway) and the required claims. What passes becomes a
frozen ``Principal``. ``verify(token, introspect=True)`` also asks the issuer whether the
token is active now (RFC 7662), for calls that must see a revocation at once.

With ``check_status=True`` each token's entry in the issuer's Token Status List
(draft-ietf-oauth-status-list) is checked too: a revocation is seen within the list's
``ttl``, with no request to the issuer per token (see ``status_list`` for the policy when
a list cannot be fetched: the last good copy until its ``exp``, then fail closed).
"""

from __future__ import annotations

import binascii
import json
import threading
import time
from base64 import urlsafe_b64decode
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt
import requests

from .errors import ExpiredToken, InvalidToken, IssuerUnavailable, RevokedToken
from .introspection import Introspector
from .jwks_cache import JWKSCache
from .outbound import outbound_session, require_secure_url
from .status_list import StatusLists, status_reference
from .token_client import metadata_url

#: RFC 9068 §2.2 claims, plus keyswap's ``client_id`` owner link, that every token carries.
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")
#: RFC 9068 §4: "typ" MUST be "at+jwt" or "application/at+jwt", compared case-insensitively.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_MAX_HEADERS = 64

_DESCRIPTIONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is not meant for this audience"),
    (jwt.InvalidIssuerError, "the token was not issued by the expected issuer"),
    (jwt.InvalidAlgorithmError, "the token's algorithm does not match its key"),
    (jwt.InvalidSignatureError, "the token's signature is invalid"),
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for, and what it may do."""

    sub: str
    client_id: str
    tenant: str | None
    scopes: frozenset[str]
    claims: Mapping[str, Any]
    #: The legacy API key id the token was exchanged from (``ks_legacy_key``), if any.
    legacy_key: str | None = None

    def has_scopes(self, required: Iterable[str]) -> bool:
        """Tell whether the token carries every scope in ``required``."""
        return self.scopes.issuperset(required)


def _parse_header(segment: str) -> dict[str, Any]:
    try:
        header = json.loads(urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    # A deeply nested header exhausts the parser's recursion: still just a malformed token.
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise InvalidToken("the token is malformed") from exc
    if not isinstance(header, dict):
        raise InvalidToken("the token is malformed")
    return header


class Verifier:
    """Checks keyswap access tokens offline; one per issuer and audience, shared by threads."""

    def __init__(
        self,
        issuer: str,
        audience: str | Iterable[str],
        *,
        leeway: float = 30.0,
        jwks_uri: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 5.0,
        min_refresh_interval: float = 10.0,
        introspection_client: tuple[str, str] | None = None,
        introspection_cache_ttl: float = 5.0,
        check_status: bool = False,
        max_status_lists: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Verify tokens from ``issuer`` (its exact ``iss``) meant for ``audience``.

        Nothing is fetched until the first token: then the metadata (unless ``jwks_uri``
        is given) and the JWK Set. ``introspection_client`` is the (client_id, secret) of a
        client created with ``--can-introspect``; ``check_status`` also checks each token's
        status list entry (lists under the issuer's URL only, at most ``max_status_lists``
        cached); ``clock`` (monotonic seconds) drives the JWKS, status list and
        introspection caches, not token times.
        """
        # Keys and introspection answers come from these URLs: https, or http on this machine.
        self.issuer = require_secure_url(issuer, "issuer")
        if jwks_uri is not None:
            require_secure_url(jwks_uri, "jwks_uri")
        self.audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        if not self.audiences:
            raise ValueError("a Verifier needs at least one audience")
        self.leeway = leeway
        # Its connections honour the JWKS fetch's total deadline (an issuer may be internal).
        self._session = session or outbound_session(allow_private=True)
        self._timeout = timeout
        self._min_refresh_interval = min_refresh_interval
        self._introspection_client = introspection_client
        self._introspection_cache_ttl = introspection_cache_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks_uri = jwks_uri
        self._keys: JWKSCache | None = None
        self._introspector: Introspector | None = None
        self._metadata_failed_at = float("-inf")
        # Built once: jwt.decode merges these into its defaults on every call.
        self._options: Any = {"require": list(REQUIRED_CLAIMS)}
        # Header segment -> kid, for headers that passed the checks: a key's tokens all
        # share one header, so most calls skip decoding it (jwt.decode still verifies it).
        self._kids: dict[str, str] = {}
        self.check_status = check_status
        self._max_status_lists = max_status_lists
        self._status_lists: StatusLists | None = None

    @property
    def keys(self) -> JWKSCache:
        """Return the JWK Set cache, reading the issuer's metadata on first use."""
        return self._keys or self._load()

    def verify(
        self, token: str, *, audience: str | Iterable[str] | None = None, introspect: bool = False
    ) -> Principal:
        """Return the principal of a valid ``token``; raise ``InvalidToken`` otherwise.

        ``audience`` replaces the configured audiences for this call. With ``introspect``
        the issuer is also asked whether the token is still active (RFC 7662).
        ``IssuerUnavailable`` means the keys or the introspection answer could not be had.
        """
        kid = self._kid(token)
        key = (self._keys or self._load()).get(kid)
        principal = self._decode(token, key, audience)
        if self.check_status:
            self._check_status(principal.claims, fetch=True)
        if introspect:
            self._introspect(token)
        return principal

    def verify_cached(
        self, token: str, *, audience: str | Iterable[str] | None = None
    ) -> Principal | None:
        """Verify ``token`` without any network request; None when one would be needed.

        For async code: only a None answer needs ``verify`` in a worker thread.
        """
        kid = self._kid(token)
        keys = self._keys
        key = keys.cached(kid) if keys is not None else None
        if key is None:
            return None
        principal = self._decode(token, key, audience)
        if self.check_status and not self._check_status(principal.claims, fetch=False):
            return None
        return principal

    def introspector(self) -> Introspector:
        """Return the RFC 7662 client; ValueError when no introspection client is configured."""
        if self._keys is None:
            self._load()  # the metadata names the introspection endpoint
        if self._introspector is None:
            raise ValueError("introspection needs introspection_client=(client_id, secret)")
        return self._introspector

    def _kid(self, token: str) -> str:
        segment = token.partition(".")[0]
        kid = self._kids.get(segment)
        if kid is None:
            kid = self._check_header(_parse_header(segment))
            if len(self._kids) >= _MAX_HEADERS:  # forged headers must not grow it without bound
                self._kids.clear()
            self._kids[segment] = kid
        return kid

    def _check_header(self, header: Mapping[str, Any]) -> str:
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("the token is not an access token (typ must be at+jwt)")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("the token names no signing key")
        return kid

    def _decode(
        self, token: str, key: jwt.PyJWK, audience: str | Iterable[str] | None
    ) -> Principal:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience=self.audiences if audience is None else audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options=self._options,
            )
        except jwt.ExpiredSignatureError as exc:
            raise ExpiredToken("the token has expired") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token lacks the {exc.claim} claim") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(_describe(exc)) from exc
        except RecursionError as exc:  # PyJWT parses the header again, and the claims
            raise InvalidToken("the token is malformed") from exc
        return _principal(claims)

    def _check_status(self, claims: Mapping[str, Any], *, fetch: bool) -> bool:
        """Raise ``RevokedToken`` if the token's status entry is set; False if not cached."""
        reference = status_reference(claims)
        if reference is None:
            raise InvalidToken("the token has no status list entry")
        uri, idx = reference
        # Lists are fetched from the issuer only, whatever a token names.
        if not uri.startswith(self.issuer.rstrip("/") + "/"):
            raise InvalidToken("the token's status list is not the issuer's")
        cache = self._lists().cache(uri)
        status_list = cache.current() if fetch else cache.cached_keys()
        if status_list is None:
            return False
        value = status_list.status(idx)
        if value is None:
            raise InvalidToken("the token's status list entry is out of range")
        if value != 0:
            raise RevokedToken("the token has been revoked")
        return True

    def _lists(self) -> StatusLists:
        lists = self._status_lists
        if lists is None:
            keys = self.keys  # outside the lock: it may take it to read the metadata
            with self._lock:
                if self._status_lists is None:
                    self._status_lists = StatusLists(
                        max_lists=self._max_status_lists,
                        issuer=self.issuer,
                        keys=keys,
                        leeway=self.leeway,
                        session=self._session,
                        timeout=self._timeout,
                        min_refresh_interval=min(self._min_refresh_interval, 1.0),
                        clock=self._clock,
                    )
                lists = self._status_lists
        return lists

    def _introspect(self, token: str) -> None:
        if not self.introspector().is_active(token):
            raise InvalidToken("the token is no longer active")

    def _load(self) -> JWKSCache:
        with self._lock:
            if self._keys is not None:
                return self._keys
            # While the issuer is unreachable, ask at most once per refresh interval.
            if self._clock() - self._metadata_failed_at < self._min_refresh_interval:
                raise IssuerUnavailable("temporarily_unavailable", "the issuer is unavailable")
            try:
                return self._build()
            except IssuerUnavailable:
                self._metadata_failed_at = self._clock()
                raise

    def _build(self) -> JWKSCache:
        jwks_uri = self._jwks_uri
        if jwks_uri is None or self._introspection_client is not None:
            metadata = self._metadata()
            jwks_uri = jwks_uri or _string(metadata, "jwks_uri")
            if self._introspection_client is not None:
                client_id, secret = self._introspection_client
                self._introspector = Introspector(
                    _string(metadata, "introspection_endpoint"),
                    client_id,
                    secret,
                    session=self._session,
                    timeout=self._timeout,
                    cache_ttl=self._introspection_cache_ttl,
                    clock=self._clock,
                )
        self._keys = JWKSCache(
            jwks_uri,
            session=self._session,
            timeout=self._timeout,
            min_refresh_interval=self._min_refresh_interval,
            clock=self._clock,
        )
        return self._keys

    def _metadata(self) -> Mapping[str, Any]:
        url = metadata_url(self.issuer)
        try:
            response = self._session.get(url, timeout=self._timeout)
            response.raise_for_status()
            metadata = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise IssuerUnavailable(
                "temporarily_unavailable", f"cannot read {url}: {type(exc).__name__}"
            ) from exc
        # RFC 8414 §3.3: the "issuer" value returned MUST be identical to the issuer URL.
        if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer:
            raise IssuerUnavailable("temporarily_unavailable", f"{url} names another issuer")
        return metadata


def _string(metadata: Mapping[str, Any], name: str) -> str:
    """Return the metadata's URL ``name``; it must be https (or http to a loopback host)."""
    value = metadata.get(name)
    if not isinstance(value, str):
        raise IssuerUnavailable("temporarily_unavailable", f"the issuer's metadata lacks {name}")
    try:
        return require_secure_url(value, f"the issuer's {name}")
    except ValueError as exc:
        raise IssuerUnavailable("temporarily_unavailable", str(exc)) from None


def _describe(exc: jwt.PyJWTError) -> str:
    for kind, description in _DESCRIPTIONS:
        if isinstance(exc, kind):
            return description
    return "the token is malformed"


def _principal(claims: dict[str, Any]) -> Principal:
    client_id, scope = claims["client_id"], claims.get("scope", "")
    tenant, legacy_key = claims.get("tenant"), claims.get("ks_legacy_key")
    if not isinstance(client_id, str) or not isinstance(scope, str):
        raise InvalidToken("the token's client_id or scope is not a string")
    if not isinstance(tenant, str | None) or not isinstance(legacy_key, str | None):
        raise InvalidToken("the token's tenant or ks_legacy_key is not a string")
    return Principal(
        sub=claims["sub"],  # PyJWT checked it is a string
        client_id=client_id,
        tenant=tenant,
        scopes=frozenset(scope.split()),
        claims=MappingProxyType(claims),
        legacy_key=legacy_key,
    )
