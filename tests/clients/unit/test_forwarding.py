"""Which fields a proxy passes on (RFC 9110 §7.6.1) and whose X-Forwarded-For it believes."""

from __future__ import annotations

from keyswap.clients.forwarding import end_to_end, forwarded_for


def test_end_to_end_drops_hop_by_hop_fields_and_those_connection_names():
    headers = [
        ("Connection", "keep-alive, X-Hop"),
        ("connection", "x-other"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("X-Hop", "1"),
        ("X-Other", "2"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    assert end_to_end(headers) == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


def test_no_trusted_proxy_means_the_peer_is_the_caller_whatever_it_claims():
    forwarding = forwarded_for(
        [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https")],
        "192.0.2.10",
        scheme="http",
        host="shim.example",
    )
    assert forwarding.caller == "192.0.2.10"
    assert forwarding.headers == [
        ("X-Forwarded-For", "192.0.2.10"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "shim.example"),
    ]


def test_trusted_proxies_keep_their_own_entries_only():
    forwarding = forwarded_for(
        [
            ("X-Forwarded-For", "203.0.113.9, 198.51.100.7"),
            ("X-Forwarded-For", "10.0.0.2"),
            ("X-Forwarded-Proto", "http, https"),
        ],
        "10.0.0.3",
        scheme="http",
        host=None,
        trusted_proxies=2,
    )
    assert forwarding.caller == "198.51.100.7"
    assert forwarding.headers == [
        ("X-Forwarded-For", "198.51.100.7, 10.0.0.2, 10.0.0.3"),
        ("X-Forwarded-Proto", "https"),
    ]


def test_fewer_entries_than_trusted_proxies_believes_none():
    forwarding = forwarded_for(
        [("X-Forwarded-For", "203.0.113.9")],
        "10.0.0.3",
        scheme="http",
        host=None,
        trusted_proxies=2,
    )
    assert forwarding.caller == "10.0.0.3"
    assert forwarding.headers[0] == ("X-Forwarded-For", "10.0.0.3")
