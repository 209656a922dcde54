"""Value rules shared by client registration, legacy key import and federation trusts.

RFC 6749 §3.3 scope tokens and RFC 8707 §2 resources (keyswap's audiences), checked in
one place so that a value one path accepts is never refused by another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from .errors import InvalidValue

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def check_scopes(scope: str) -> tuple[str, ...]:
    """Return the space-separated scope tokens of ``scope``, once each, in order.

    An empty ``scope`` gives no tokens; callers that need one say so.
    """
    scopes = tuple(dict.fromkeys(scope.split()))
    for token in scopes:
        if not _SCOPE_TOKEN.match(token):
            raise InvalidValue(f"scope {token!r} has characters RFC 6749 §3.3 does not allow")
    return scopes


def check_audiences(audiences: Iterable[str]) -> tuple[str, ...]:
    """Return ``audiences`` once each, in order, each an absolute URI without a fragment.

    RFC 8707 §2: a resource is an absolute URI without a fragment.
    """
    unique = tuple(dict.fromkeys(audiences))
    for audience in unique:
        parts = urlsplit(audience)
        if not parts.scheme or not (parts.netloc or parts.path) or parts.fragment:
            raise InvalidValue(f"audience {audience!r} must be an absolute URI without fragment")
    return unique
