"""Unit tests of ``keyswap.issuer.rules``: the scope and audience rules every path shares."""

from __future__ import annotations

import pytest

from keyswap.issuer.errors import InvalidValue
from keyswap.issuer.rules import check_audiences, check_scopes


def test_scopes_are_split_once_each_in_order():
    assert check_scopes(" b a  b c ") == ("b", "a", "c")
    assert check_scopes("") == ()


@pytest.mark.parametrize("bad", ['a"b', "a\\b", "caf\u00e9", "a\x7fb"])
def test_scope_tokens_follow_rfc6749_grammar(bad):
    with pytest.raises(InvalidValue, match="RFC 6749 §3.3 does not allow"):
        check_scopes(f"ok {bad}")


def test_audiences_are_absolute_uris_without_fragment_once_each():
    uris = ["https://api.example/", "urn:example:api", "https://api.example/"]
    assert check_audiences(uris) == ("https://api.example/", "urn:example:api")
    for bad in ["/relative", "api.example", "https://api.example/#x", "https:"]:
        with pytest.raises(InvalidValue, match="must be an absolute URI without fragment"):
            check_audiences([bad])
