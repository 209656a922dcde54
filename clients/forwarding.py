"""What a reverse proxy passes on (RFC 9110 §7.6): end-to-end fields only, and whom to believe.

- ``end_to_end`` drops the hop-by-hop fields of RFC 9110 §7.6.1 and every field the
  ``Connection`` field names, in either direction: those describe one connection, and
  forwarding them lets a caller smuggle a field past the proxy, or strip one the next hop
  relies on, by naming it in ``Connection``.
- ``forwarded_for`` decides which ``X-Forwarded-For`` entries to keep. A caller can write
  anything there, so by default none is kept and the proxy's peer address is the caller;
  with ``trusted_proxies=N`` (N reverse proxies of yours in front), the last N entries were
  written by them and are kept, and the Nth from the end is the caller. This is the rule of
  Werkzeug's ``ProxyFix(x_for=N)``, which the issuer uses for ``KEYSWAP_TRUSTED_PROXIES``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: RFC 9110 §7.6.1 hop-by-hop fields (plus the obsolete Keep-Alive and Proxy-Connection,
#: which it names as still seen), never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Fields that say who the caller is; a proxy sets them itself and trusts none it receives
#: (``Forwarded``, RFC 7239, makes the same claim in another syntax, so it is dropped too).
FORWARDING_FIELDS = frozenset(
    {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"}
)

Headers = list[tuple[str, str]]


def end_to_end(headers: Iterable[tuple[str, str]]) -> Headers:
    """Return ``headers`` without hop-by-hop fields or any field that ``Connection`` names."""
    items = list(headers)
    # RFC 9110 §7.6.1: "a proxy or gateway MUST ... remove any header or trailer field
    # ... listed in the Connection header field, then remove the Connection field itself".
    named = {
        option.strip().lower()
        for name, value in items
        if name.lower() == "connection"
        for option in value.split(",")
    }
    dropped = HOP_BY_HOP | named
    return [(name, value) for name, value in items if name.lower() not in dropped]


@dataclass(frozen=True)
class Forwarding:
    """Who sent a request, and the ``X-Forwarded-*`` fields to send upstream for it."""

    #: The caller's address, as far as trusted hops tell (else the peer's).
    caller: str
    headers: Headers


def forwarded_for(
    received: Iterable[tuple[str, str]],
    peer: str,
    *,
    scheme: str,
    host: str | None,
    trusted_proxies: int = 0,
) -> Forwarding:
    """Return the caller's address and the forwarding fields to send upstream.

    ``received`` are the request's fields, ``peer`` the address that connected, ``scheme``
    and ``host`` the request's as this proxy saw them. With ``trusted_proxies=0`` every
    forwarding field received is ignored; with N, the last N ``X-Forwarded-For`` entries
    (and the nearest proxy's ``X-Forwarded-Proto``/``-Host``) are believed, if there are N.
    """
    fields: dict[str, list[str]] = {}
    for name, value in received:
        fields.setdefault(name.lower(), []).append(value)
    chain = [
        entry.strip()
        for value in fields.get("x-forwarded-for", [])
        for entry in value.split(",")
        if entry.strip()
    ]
    trusted = trusted_proxies > 0 and len(chain) >= trusted_proxies
    kept = chain[-trusted_proxies:] if trusted else []
    caller = kept[0] if kept else peer
    if trusted:
        scheme = _nearest(fields.get("x-forwarded-proto")) or scheme
        host = _nearest(fields.get("x-forwarded-host")) or host
    headers = [("X-Forwarded-For", ", ".join([*kept, peer])), ("X-Forwarded-Proto", scheme)]
    if host:
        headers.append(("X-Forwarded-Host", host))
    return Forwarding(caller=caller, headers=headers)


def _nearest(values: list[str] | None) -> str | None:
    """Return the entry the nearest proxy appended to a list-valued field, if any."""
    if not values:
        return None
    entries = [entry.strip() for entry in ",".join(values).split(",") if entry.strip()]
    return entries[-1] if entries else None
