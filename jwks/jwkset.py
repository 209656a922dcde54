"""The published JWK Set (RFC 7517 §5): public members only, serialised once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

#: RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2: members that are private key material
#: (dropped from the published set; refused in a client's registered or fetched set).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
REQUIRED_MEMBERS = ("kid", "alg", "use")


def build_jwk_set(keys: Iterable[Mapping[str, str]]) -> dict[str, list[dict[str, str]]]:
    """Return ``{"keys": [...]}`` with private members dropped; every key needs kid/alg/use."""
    published = []
    for key in keys:
        missing = [m for m in REQUIRED_MEMBERS if not key.get(m)]
        if missing:
            raise ValueError(f"a published key needs {', '.join(missing)}")
        published.append({k: v for k, v in key.items() if k not in PRIVATE_MEMBERS})
    return {"keys": published}


class PublishedJwks:
    """An immutable JWK Set with its body and strong ETag prebuilt."""

    __slots__ = ("body", "document", "etag", "kids")

    def __init__(self, keys: Iterable[Mapping[str, str]]) -> None:
        self.document = build_jwk_set(keys)
        self.body = json.dumps(self.document, separators=(",", ":"), sort_keys=True).encode()
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'
        self.kids = frozenset(key["kid"] for key in self.document["keys"])
