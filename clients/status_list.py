"""Token Status Lists for verifiers (draft-ietf-oauth-status-list-21 §8.3, §13).

A token's ``status.status_list`` names a list (``uri``) and an entry (``idx``). The list is a
JWT (``typ: statuslist+jwt``) signed by a key of the issuer's JWK Set, whose ``sub`` is the
uri and whose ``status_list.lst`` is the ZLIB-compressed (RFC 1950) entries, ``bits`` bits
each, least significant bit first. Any non-zero status (``0x01`` invalid, ``0x02``
suspended, others) makes the token unacceptable.

Each list is a ``RemoteKeySet`` cache (``jwks_cache``): fetched through the guarded
``outbound.fetch_bytes`` (deadline, byte cap, no redirects), one fetch in flight per uri,
at most once per its ``ttl`` (or the response's ``max-age`` if shorter), backing off after
a failure. At most ``max_lists`` lists are cached (the least recently used goes).

Policy for a list that cannot be fetched, or that fails a check (signature, ``typ``,
``sub``, ``iss``, size, encoding): the last good copy is used until its own ``exp`` (or,
without ``exp``, until its ``ttl`` runs out); then verification fails closed with
``IssuerUnavailable``. A list is never accepted from a source that fails a check.
"""

from __future__ import annotations

import binascii
import threading
import time
import zlib
from base64 import urlsafe_b64decode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from .errors import IssuerUnavailable, KeyswapClientError
from .jwks_cache import JWKSCache, RemoteKeySet, _Snapshot, parse_max_age
from .outbound import OutboundError, fetch_bytes

#: §5.1: the header "typ" of a Status List Token (the media type form is accepted too).
STATUS_LIST_TYPES = frozenset({"statuslist+jwt", "application/statuslist+jwt"})
STATUS_LIST_MEDIA_TYPE = "application/statuslist+jwt"
#: Bytes a served list may take on the wire, and once decompressed (a zip bomb's ceiling).
DEFAULT_MAX_LIST_BYTES = 1024 * 1024
DEFAULT_MAX_ENTRIES_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StatusList:
    """A verified list: its entries and until when it may be used (monotonic seconds)."""

    bits: int
    entries: bytes
    usable_until: float

    def status(self, idx: int) -> int | None:
        """Return entry ``idx``'s status value (§4.1), or None when the list is shorter."""
        per_byte = 8 // self.bits
        byte = idx // per_byte
        if idx < 0 or byte >= len(self.entries):
            return None
        shift = (idx % per_byte) * self.bits
        return (self.entries[byte] >> shift) & ((1 << self.bits) - 1)


class InvalidStatusList(KeyswapClientError):
    """A fetched status list failed a check; the message says which."""


def decode_entries(lst: str, max_bytes: int) -> bytes:
    """Return the entries of ``lst`` (base64url of ZLIB data), refusing more than ``max_bytes``."""
    try:
        compressed = urlsafe_b64decode(lst + "=" * (-len(lst) % 4))
        inflater = zlib.decompressobj()
        entries = inflater.decompress(compressed, max_bytes + 1)
    except (binascii.Error, ValueError, zlib.error) as exc:
        raise InvalidStatusList("the list's lst is not base64url ZLIB data") from exc
    if len(entries) > max_bytes or inflater.unconsumed_tail:
        raise InvalidStatusList(f"the list holds more than {max_bytes} bytes")
    if not inflater.eof:
        raise InvalidStatusList("the list's lst is truncated")
    return entries


class StatusListCache(RemoteKeySet[StatusList]):
    """One issuer's list at one uri, verified against the issuer's JWK Set."""

    def __init__(
        self,
        uri: str,
        *,
        issuer: str,
        keys: JWKSCache,
        max_entries_bytes: int = DEFAULT_MAX_ENTRIES_BYTES,
        leeway: float = 30.0,
        wall_clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        """Cache the list at ``uri``; ``options`` are ``RemoteKeySet``'s (timeouts, clock)."""
        options.setdefault("max_bytes", DEFAULT_MAX_LIST_BYTES)
        options.setdefault("default_max_age", 60.0)
        super().__init__(uri, _unused_parse, **options)
        self._issuer = issuer
        self._keys = keys
        self._max_entries = max_entries_bytes
        self._leeway = leeway
        self._wall = wall_clock

    def _usable_until(self, snapshot: _Snapshot[StatusList]) -> float:
        return snapshot.keys.usable_until

    def _fetch(self, previous: _Snapshot[StatusList] | None) -> _Snapshot[StatusList]:
        headers = {}
        if previous is not None and previous.etag:
            headers["If-None-Match"] = previous.etag
        self.fetches += 1
        try:
            fetched = fetch_bytes(
                self._session,
                self.uri,
                headers=headers,
                timeout=self._timeout,
                deadline=self._deadline,
                max_bytes=self._max_bytes,
                accept=STATUS_LIST_MEDIA_TYPE,
            )
        except OutboundError as exc:
            raise IssuerUnavailable("temporarily_unavailable", str(exc)) from exc
        now = self._clock()
        if fetched.status == 304 and previous is not None:
            fresh = self._fresh_for(fetched.headers, None)
            return _Snapshot(previous.keys, now + fresh, previous.etag)
        if fetched.status != 200:
            raise IssuerUnavailable(
                "temporarily_unavailable",
                f"{self.uri} answered {fetched.status}",
                status=fetched.status,
            )
        try:
            claims = self._verify(bytes(fetched.document).decode("ascii"))
            listed = claims["status_list"]
            bits = listed.get("bits") if isinstance(listed, dict) else None
            lst = listed.get("lst") if isinstance(listed, dict) else None
            if bits not in (1, 2, 4, 8) or not isinstance(lst, str):
                raise InvalidStatusList("the list's status_list needs bits 1, 2, 4 or 8 and lst")
            entries = decode_entries(lst, self._max_entries)
        except (InvalidStatusList, UnicodeDecodeError) as exc:
            raise IssuerUnavailable("temporarily_unavailable", f"{self.uri}: {exc}") from exc
        ttl = claims.get("ttl")
        fresh = self._fresh_for(fetched.headers, ttl if isinstance(ttl, int) else None)
        exp = claims.get("exp")
        # Past its ttl the list is stale; it may stand in for a failed fetch until its exp.
        usable = now + (exp - self._wall()) if isinstance(exp, int) else now + fresh
        status_list = StatusList(bits, entries, max(now + fresh, usable))
        return _Snapshot(status_list, now + fresh, fetched.headers.get("ETag"))

    def _fresh_for(self, headers: Mapping[str, str], ttl: int | None) -> float:
        max_age = parse_max_age(headers, self._default_max_age)
        fresh = max_age if ttl is None or ttl <= 0 else min(float(ttl), max_age)
        return min(self._ceiling, fresh)

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, RecursionError) as exc:
            raise InvalidStatusList("the list is not a JWT") from exc
        typ, kid = header.get("typ"), header.get("kid")
        if not isinstance(typ, str) or typ.lower() not in STATUS_LIST_TYPES:
            raise InvalidStatusList("the list's typ is not statuslist+jwt")
        if not isinstance(kid, str):
            raise InvalidStatusList("the list names no signing key")
        try:
            key = self._keys.get(kid)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["sub", "iat", "status_list"], "verify_aud": False},
            )
        except KeyswapClientError as exc:  # an unknown kid
            raise InvalidStatusList(str(exc)) from exc
        except (jwt.PyJWTError, RecursionError) as exc:
            raise InvalidStatusList(f"the list failed verification: {exc}") from exc
        # §8.3: "sub" MUST equal the uri the token names.
        if claims["sub"] != self.uri:
            raise InvalidStatusList("the list's sub is not its uri")
        return claims


def _unused_parse(_jwks: list[dict[str, Any]]) -> StatusList:  # pragma: no cover
    raise NotImplementedError("StatusListCache parses in _fetch")


class StatusLists:
    """``StatusListCache`` per uri for one issuer, at most ``max_lists`` of them (LRU)."""

    def __init__(self, *, max_lists: int = 64, **options: Any) -> None:
        """Make caches with ``options`` (``StatusListCache``'s: issuer, keys, clock, ...)."""
        self._options = options
        self._max = max_lists
        self._caches: dict[str, StatusListCache] = {}
        self._lock = threading.Lock()

    def cache(self, uri: str) -> StatusListCache:
        """Return the cache of ``uri``, making it on first use."""
        with self._lock:
            cache = self._caches.pop(uri, None)
            if cache is None:
                cache = StatusListCache(uri, **self._options)
                if len(self._caches) >= self._max:
                    del self._caches[next(iter(self._caches))]
            self._caches[uri] = cache  # re-inserted last: the dict is in recency order
            return cache


def status_reference(claims: Mapping[str, Any]) -> tuple[str, int] | None:
    """Return the ``(uri, idx)`` a token's ``status`` claim names (§6.1), or None."""
    status = claims.get("status")
    inner = status.get("status_list") if isinstance(status, dict) else None
    if not isinstance(inner, dict):
        return None
    uri, idx = inner.get("uri"), inner.get("idx")
    if not isinstance(uri, str) or not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
        return None
    return uri, idx
