"""Guarded outbound fetches of small JSON documents (JWK Sets, metadata) from remote URLs.

A URL that someone else registered (a client's ``jwks_uri``) must not let its server stall,
flood or redirect the fetcher, nor point it at this network's private services:

- one total deadline per fetch: a watchdog shuts the socket down when it passes, so a
  server trickling one byte at a time is cut off, not just each read;
- a byte cap on the body (``Content-Length`` checked first, then the bytes actually read);
- redirects are not followed (a 3xx is a failed fetch), and no proxy from the environment
  is used (it would hide the address actually connected to);
- with ``allow_private=False`` the address a connection is made to is checked after name
  resolution, and the connection goes to that checked address, so a name that resolves to
  a loopback, private, link-local or otherwise non-global address is refused (DNS tricks
  included); ``KEYSWAP_OUTBOUND_ALLOW_PRIVATE=1`` lifts this for tests and demos.

``require_secure_url`` is the scheme rule keyswap applies to every issuer and key URL:
``https``, or ``http`` for a loopback host only (RFC 8414 §2, RFC 7517 §4 ``x5u``/``jku``).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as urllib3_connection

#: Defaults for a remote JWK Set: a few keys fit in far less than this.
DEFAULT_DEADLINE = 5.0
DEFAULT_MAX_BYTES = 64 * 1024
_CHUNK = 8192


class OutboundError(Exception):
    """A guarded fetch failed or was refused; the message says why (never a secret)."""


def is_loopback_host(host: str | None) -> bool:
    """Tell whether ``host`` names this machine (``localhost`` or a loopback address)."""
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_public_address(address: str) -> bool:
    """Tell whether ``address`` (an IP literal) is globally routable unicast.

    Loopback, private, link-local (169.254.0.0/16 holds cloud metadata services),
    shared (100.64.0.0/10), reserved, multicast and unspecified addresses are not; an
    IPv4-mapped IPv6 address is judged by its IPv4 address.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast and not ip.is_unspecified


def require_secure_url(url: str, what: str) -> str:
    """Return ``url`` if it is ``https``, or ``http`` to a loopback host; else ValueError."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{what} must be an absolute URL: {url!r}")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        return url
    raise ValueError(f"{what} must use https (http only for loopback hosts): {url!r}")


def check_outbound_url(url: str, what: str, *, allow_private: bool) -> str:
    """Return ``url`` if keyswap may fetch it; else ValueError saying why.

    ``https`` only, unless ``allow_private`` (then also ``http`` to loopback); a host that
    is a literal non-public address, or ``localhost``, only with ``allow_private``. Names
    are checked again, after resolution, when the fetch connects.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host or parts.scheme not in {"https", "http"}:
        raise ValueError(f"{what} must be an absolute https URL: {url!r}")
    if allow_private:
        return require_secure_url(url, what)
    if parts.scheme != "https":
        raise ValueError(f"{what} must use https: {url!r}")
    literal = _ip_literal(host)
    if is_loopback_host(host) or (literal is not None and not is_public_address(literal)):
        raise ValueError(
            f"{what} names a loopback, private or link-local address, which keyswap does not "
            f"fetch from (KEYSWAP_OUTBOUND_ALLOW_PRIVATE=1 allows it): {url!r}"
        )
    return url


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


# --- the deadline watchdog -----------------------------------------------------------


class _Deadline:
    """Shut down every socket a fetch opened once its deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if not self.expired:
                return
        _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    # shutdown, unlike close, wakes a recv blocked in another thread (Linux, BSD).
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


_current = threading.local()


@contextmanager
def _deadline(seconds: float) -> Iterator[_Deadline]:
    deadline = _Deadline(seconds)
    _current.deadline = deadline
    try:
        yield deadline
    finally:
        _current.deadline = None
        deadline.cancel()


# --- connections that check the address they connect to ------------------------------


def _open_socket(conn: HTTPConnection, allow_private: bool) -> socket.socket:
    """Resolve the host once, refuse non-public addresses, connect to the checked one."""
    addresses = [conn._dns_host]
    if not allow_private:
        try:
            infos = socket.getaddrinfo(conn._dns_host, conn.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NewConnectionError(conn, f"cannot resolve {conn.host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        # Refuse a name with any non-public address: it may be rebound between lookups.
        if not addresses or not all(is_public_address(a) for a in addresses):
            raise NewConnectionError(
                conn, f"{conn.host} resolves to a non-public address; not fetched"
            )
    try:
        sock = urllib3_connection.create_connection(
            (addresses[0], conn.port),
            conn.timeout,
            source_address=conn.source_address,
            socket_options=conn.socket_options,
        )
    except OSError as exc:
        raise NewConnectionError(conn, f"cannot connect to {conn.host}: {exc}") from exc
    deadline: _Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.track(sock)
    return sock


class _GuardedHTTPConnection(HTTPConnection):
    allow_private = False

    def _new_conn(self) -> socket.socket:
        return _open_socket(self, self.allow_private)


class _GuardedHTTPSConnection(HTTPSConnection):
    # urllib3 still verifies the certificate and sends SNI for the URL's host name.
    allow_private = False

    def _new_conn(self) -> socket.socket:
        return _open_socket(self, self.allow_private)


def _adapter(allow_private: bool) -> HTTPAdapter:
    """Return a requests adapter whose connections are guarded as ``allow_private`` says."""
    flag = {"allow_private": allow_private}
    http_conn = type("GuardedHTTPConnection", (_GuardedHTTPConnection,), flag)
    https_conn = type("GuardedHTTPSConnection", (_GuardedHTTPSConnection,), flag)
    pools = {
        "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

    return GuardedAdapter(max_retries=0)


def outbound_session(*, allow_private: bool) -> requests.Session:
    """Return a requests session whose connections go only where ``allow_private`` allows.

    With ``allow_private=False`` no proxy from the environment is used, since the address
    check would then see the proxy's address instead of the server's.
    """
    session = requests.Session()
    if not allow_private:
        session.trust_env = False
    adapter = _adapter(allow_private)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# --- the fetch --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched document: the HTTP status, the response headers, and the parsed JSON body."""

    status: int
    headers: Mapping[str, str]
    document: Any


def fetch_json(
    session: requests.Session,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_DEADLINE,
    deadline: float = DEFAULT_DEADLINE,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Fetched:
    """GET ``url`` and parse its JSON body within ``deadline`` seconds and ``max_bytes`` bytes.

    Redirects are not followed. A 200 answer is parsed; any other status comes back with
    ``document=None``. Raises ``OutboundError`` on a network failure, a refused address,
    a passed deadline, an oversized or unparsable body.
    """
    fetched = fetch_bytes(
        session, url, headers=headers, timeout=timeout, deadline=deadline, max_bytes=max_bytes
    )
    if fetched.status != 200:
        return fetched
    try:
        document = json.loads(fetched.document)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError, and deep nesting
        raise OutboundError(f"{url} is not JSON") from exc
    except RecursionError as exc:
        raise OutboundError(f"{url} is nested too deeply") from exc
    return Fetched(fetched.status, fetched.headers, document)


def fetch_bytes(
    session: requests.Session,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_DEADLINE,
    deadline: float = DEFAULT_DEADLINE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    accept: str = "application/json",
) -> Fetched:
    """GET ``url`` as ``fetch_json`` does, but return a 200 answer's body as raw bytes."""
    with _deadline(deadline) as watchdog:
        try:
            return _fetch(
                session, url, headers, min(timeout, deadline), watchdog, max_bytes, accept
            )
        except requests.RequestException as exc:
            if watchdog.expired:
                raise OutboundError(f"{url}: no complete answer within {deadline:g} s") from exc
            raise OutboundError(f"cannot fetch {url}: {_reason(exc)}") from exc


def _fetch(
    session: requests.Session,
    url: str,
    headers: Mapping[str, str] | None,
    timeout: float,
    watchdog: _Deadline,
    max_bytes: int,
    accept: str,
) -> Fetched:
    sent = {"Accept": accept, "Accept-Encoding": "identity", **(headers or {})}
    with session.get(
        url, headers=sent, timeout=timeout, stream=True, allow_redirects=False
    ) as response:
        if response.status_code != 200:
            return Fetched(response.status_code, response.headers, None)
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise OutboundError(f"{url} is larger than {max_bytes} bytes")
        body = bytearray()
        for chunk in response.iter_content(_CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise OutboundError(f"{url} is larger than {max_bytes} bytes")
            if watchdog.expired:
                break
        if watchdog.expired:
            raise OutboundError(f"{url}: no complete answer within the deadline")
    return Fetched(response.status_code, response.headers, bytes(body))


def _reason(exc: requests.RequestException) -> str:
    # requests wraps urllib3's MaxRetryError, whose ``reason`` is the guard's refusal.
    wrapped = exc.args[0] if exc.args else None
    reason = getattr(wrapped, "reason", None)
    if isinstance(reason, NewConnectionError):
        return str(reason).partition(": ")[2] or str(reason)
    return type(exc).__name__
