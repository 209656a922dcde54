"""keyswap.clients.outbound and the remote JWK Set cache against real loopback servers over HTTP."""

from __future__ import annotations

import pytest
from joserfc.jwk import ECKey

from keyswap.clients import IssuerUnavailable
from keyswap.clients.jwks_cache import JWKSCache, RemoteKeySet, RemoteKeySets
from keyswap.clients.outbound import (
    OutboundError,
    check_outbound_url,
    fetch_json,
    is_public_address,
    outbound_session,
)
from tests.jwks_servers import JwksServer, drip, fail, flood, redirect, serve_json


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def remote():
    server = JwksServer()
    yield server
    server.close()


def _jwks():
    return {"keys": [ECKey.generate_key("P-256", private=True).as_dict(private=False)]}


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("not-an-ip", False),
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(address) is public


@pytest.mark.parametrize(
    ("url", "allow_private", "accepted"),
    [
        ("https://keys.example/jwks.json", False, True),
        ("https://169.254.169.254/latest/meta-data", False, False),
        ("https://localhost/jwks", False, False),
        ("http://127.0.0.1:8000/jwks", False, False),
        ("http://127.0.0.1:8000/jwks", True, True),
        ("https://10.0.0.1/jwks", True, True),
        ("http://10.0.0.1/jwks", True, False),
        ("ftp://keys.example/jwks", True, False),
    ],
)
def test_check_outbound_url(url, allow_private, accepted):
    if accepted:
        assert check_outbound_url(url, "a jwks_uri", allow_private=allow_private) == url
    else:
        with pytest.raises(ValueError, match="a jwks_uri"):
            check_outbound_url(url, "a jwks_uri", allow_private=allow_private)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_guarded_fetch_refuses_loopback_before_connecting(remote, host):
    remote.routes["/jwks"] = serve_json(_jwks())
    with outbound_session(allow_private=False) as session:
        with pytest.raises(OutboundError, match="non-public address"):
            fetch_json(session, remote.url("/jwks", host=host))
    assert remote.connections == 0


def test_guarded_fetch_reaches_loopback_when_allowed(remote):
    document = _jwks()
    remote.routes["/jwks"] = serve_json(document)
    with outbound_session(allow_private=True) as session:
        fetched = fetch_json(session, remote.url("/jwks", host="localhost"))
    assert (fetched.status, fetched.document) == (200, document)


def test_fetch_is_cut_off_at_the_total_deadline(remote):
    remote.routes["/drip"] = drip(0.2)
    with outbound_session(allow_private=True) as session:
        with pytest.raises(OutboundError, match="within"):
            fetch_json(session, remote.url("/drip"), timeout=30, deadline=1)
    assert remote.client_left.wait(10)
    assert not remote.gate.is_set()  # the server would have dripped on


def test_fetch_does_not_follow_redirects(remote):
    remote.routes["/moved"] = redirect(remote.url("/internal"))
    remote.routes["/internal"] = serve_json(_jwks())
    with outbound_session(allow_private=True) as session:
        fetched = fetch_json(session, remote.url("/moved"))
    assert (fetched.status, fetched.document) == (302, None)
    assert remote.hits["/internal"] == 0


@pytest.mark.parametrize("declare_length", [True, False], ids=["declared", "streamed"])
def test_fetch_caps_the_body(remote, declare_length):
    remote.routes["/huge"] = flood(8 * 1024 * 1024, declare_length=declare_length)
    with outbound_session(allow_private=True) as session:
        with pytest.raises(OutboundError, match="larger than 65536 bytes"):
            fetch_json(session, remote.url("/huge"), max_bytes=65536)


def test_fetch_of_deeply_nested_json_is_a_failed_fetch(remote):
    remote.routes["/nested"] = serve_json(None)
    nested = b"[" * 50_000 + b"]" * 50_000

    def behave(handler, server):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(nested)))
        handler.end_headers()
        handler.wfile.write(nested)

    remote.routes["/nested"] = behave
    with outbound_session(allow_private=True) as session:
        with pytest.raises(OutboundError):
            fetch_json(session, remote.url("/nested"), max_bytes=len(nested))


def test_failed_fetches_back_off_exponentially(remote):
    clock = Clock()
    remote.routes["/jwks"] = fail(503)
    keys = RemoteKeySet(remote.url("/jwks"), len, min_refresh_interval=10, clock=clock)
    for moved, fetches in [(0, 1), (5, 1), (6, 2), (15, 2), (6, 3)]:
        clock.now += moved
        with pytest.raises(IssuerUnavailable):
            keys.current()
        assert remote.hits["/jwks"] == fetches
    remote.routes["/jwks"] = serve_json(_jwks())
    clock.now += 40  # the third failure asked for 40 s
    assert keys.current() == 1
    assert remote.hits["/jwks"] == 4


def test_remote_key_sets_parse_each_set_once_per_fetch(remote):
    parsed = []

    def parse(jwks):
        parsed.append(len(jwks))
        return tuple(jwk["kid"] if "kid" in jwk else jwk["x"] for jwk in jwks)

    remote.routes["/a"] = serve_json(_jwks())
    remote.routes["/b"] = serve_json(_jwks())
    sets = RemoteKeySets(parse, max_uris=1)
    for _ in range(3):
        sets.get(remote.url("/a"))
    assert parsed == [1]
    sets.get(remote.url("/b"))  # evicts /a: at most max_uris caches are kept
    sets.get(remote.url("/a"))
    assert parsed == [1, 1, 1]
    assert remote.hits == {"/a": 2, "/b": 1}


def test_jwks_cache_refuses_a_set_with_too_many_keys(remote):
    key = _jwks()["keys"][0]
    remote.routes["/many"] = serve_json({"keys": [{**key, "kid": f"k{n}"} for n in range(5)]})
    cache = JWKSCache(remote.url("/many"), max_keys=4)
    with pytest.raises(IssuerUnavailable, match="more than 4 keys"):
        cache.get("k1")


def test_jwks_cache_default_session_cuts_a_drip_at_the_deadline(remote):
    remote.routes["/drip"] = drip(0.2)
    cache = JWKSCache(remote.url("/drip"), timeout=30, deadline=1)
    with pytest.raises(IssuerUnavailable, match="within"):
        cache.get("k1")
    assert remote.client_left.wait(10)
    assert not remote.gate.is_set()
