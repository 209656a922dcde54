"""Token endpoint grants: client credentials (RFC 6749 §4.4) and token exchange (RFC 8693)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..errors import InvalidRequest

# RFC 8707 §2 allows several "resource" parameters; every other one appears at most once.
REPEATABLE = frozenset({"resource"})


def reject_repeated(
    datalist: Mapping[str, Sequence[str]], repeatable: frozenset[str] = REPEATABLE
) -> None:
    """Refuse a request that repeats a parameter (RFC 6749 §3.2: MUST NOT ... more than once)."""
    for name, values in datalist.items():
        if len(values) > 1 and name not in repeatable:
            raise InvalidRequest(f"parameter {name} is repeated")
