"""Verifier(check_status=True) against a loopback issuer that serves good and bad status lists.

The fake issuer publishes metadata and a JWK Set, signs tokens and lists with its own key,
and serves whatever list a test sets: tampered, unsigned, wrongly typed, naming another
uri, oversized on the wire or once inflated. None of them is ever believed; the last good
list stands in until its ``exp``, then verification fails closed.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from keyswap.clients import InvalidToken, IssuerUnavailable, RevokedToken, Verifier
from keyswap.jwks import KeyPair, generate_key

from ..jwks_servers import JwksServer, serve_json
from .test_verifier import Clock

LIST_PATH = "/statuslists/0"


def _lst(entries: bytes) -> str:
    return base64.urlsafe_b64encode(zlib.compress(entries)).rstrip(b"=").decode()


class FakeIssuer:
    """A loopback issuer whose status list the test sets."""

    def __init__(self, server: JwksServer) -> None:
        self.server = server
        self.url = server.url("")
        self.key: KeyPair = generate_key("ES256")
        self.list_body = b""
        server.routes["/.well-known/oauth-authorization-server"] = serve_json(
            {"issuer": self.url, "jwks_uri": server.url("/jwks.json")}
        )
        server.routes["/jwks.json"] = serve_json({"keys": [dict(self.key.public_jwk)]})
        server.routes[LIST_PATH] = self._serve_list

    @property
    def list_uri(self) -> str:
        return self.url + LIST_PATH

    def _serve_list(self, handler: BaseHTTPRequestHandler, _server: JwksServer) -> None:
        body = self.list_body
        handler.send_response(200)
        handler.send_header("Content-Type", "application/statuslist+jwt")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def token(self, idx: int, uri: str | None = None) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": "user-1",
            "aud": "https://api.example",
            "exp": now + 300,
            "iat": now,
            "jti": f"t{idx}",
            "client_id": "ks_test",
            "status": {"status_list": {"idx": idx, "uri": uri or self.list_uri}},
        }
        return self.key.sign(claims, typ="at+jwt")

    def list_claims(self, entries: bytes, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": self.list_uri,
            "iat": now,
            "exp": now + 100,
            "ttl": 10,
            "status_list": {"bits": 1, "lst": _lst(entries)},
        }
        claims.update(changes)
        return claims

    def serve(self, entries: bytes, *, typ: str = "statuslist+jwt", **changes: Any) -> None:
        self.list_body = self.key.sign(self.list_claims(entries, **changes), typ=typ).encode()


@pytest.fixture
def fake() -> Iterator[FakeIssuer]:
    server = JwksServer()
    yield FakeIssuer(server)
    server.close()


def _verifier(fake: FakeIssuer, clock: Clock) -> Verifier:
    return Verifier(fake.url, "https://api.example", check_status=True, clock=clock)


def test_set_bit_is_refused_clear_bit_accepted_and_the_list_is_fetched_once_per_ttl(fake):
    clock = Clock()
    fake.serve(bytes([0b0000_0100]) + bytes(127))  # entry 2 is set
    verifier = _verifier(fake, clock)
    for _ in range(5):
        assert verifier.verify(fake.token(1)).sub == "user-1"
        with pytest.raises(RevokedToken):
            verifier.verify(fake.token(2))
    assert fake.server.hits[LIST_PATH] == 1
    clock.now += 11  # past the list's ttl
    verifier.verify(fake.token(1))
    assert fake.server.hits[LIST_PATH] == 2


def _tampered(fake: FakeIssuer) -> bytes:
    header, payload, signature = fake.key.sign(
        fake.list_claims(bytes(128)), typ="statuslist+jwt"
    ).split(".")
    forged = fake.list_claims(b"\x00" * 127 + b"\x01")
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}".encode()


def _unsigned(fake: FakeIssuer) -> bytes:
    header = {"alg": "none", "typ": "statuslist+jwt", "kid": fake.key.kid}
    parts = [json.dumps(header).encode(), json.dumps(fake.list_claims(bytes(128))).encode()]
    return (
        ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts) + "."
    ).encode()


def _signed_by_stranger(fake: FakeIssuer) -> bytes:
    return generate_key("ES256").sign(fake.list_claims(bytes(128)), typ="statuslist+jwt").encode()


BAD_LISTS = {
    "tampered": _tampered,
    "unsigned": _unsigned,
    "unknown-key": _signed_by_stranger,
    "wrong-typ": lambda f: f.key.sign(f.list_claims(bytes(128)), typ="JWT").encode(),
    "access-token-typ": lambda f: f.key.sign(f.list_claims(bytes(128)), typ="at+jwt").encode(),
    "other-sub": lambda f: f.key.sign(
        f.list_claims(bytes(128), sub=f.url + "/statuslists/1"), typ="statuslist+jwt"
    ).encode(),
    "other-iss": lambda f: f.key.sign(
        f.list_claims(bytes(128), iss="https://evil.example"), typ="statuslist+jwt"
    ).encode(),
    "expired": lambda f: f.key.sign(
        f.list_claims(bytes(128), exp=int(time.time()) - 120), typ="statuslist+jwt"
    ).encode(),
    "bad-bits": lambda f: f.key.sign(
        f.list_claims(bytes(128), status_list={"bits": 3, "lst": _lst(bytes(128))}),
        typ="statuslist+jwt",
    ).encode(),
    "not-zlib": lambda f: f.key.sign(
        f.list_claims(bytes(128), status_list={"bits": 1, "lst": "AAAA"}), typ="statuslist+jwt"
    ).encode(),
    # 64 MiB of zeros inflate from about 64 KiB: refused past the inflation cap.
    "zip-bomb": lambda f: f.key.sign(
        f.list_claims(bytes(64 * 1024 * 1024)), typ="statuslist+jwt"
    ).encode(),
    # Over the byte cap on the wire.
    "oversized": lambda f: f.key.sign(
        f.list_claims(bytes(128), padding="x" * (2 * 1024 * 1024)), typ="statuslist+jwt"
    ).encode(),
}


@pytest.mark.parametrize("kind", list(BAD_LISTS))
def test_bad_list_is_never_believed(fake, kind):
    fake.list_body = BAD_LISTS[kind](fake)
    verifier = _verifier(fake, Clock())
    # The tampered list would say entry 1015 is clear... nothing from it is used.
    with pytest.raises(IssuerUnavailable):
        verifier.verify(fake.token(1))


@pytest.mark.parametrize("kind", ["tampered", "wrong-typ", "zip-bomb"])
def test_last_good_list_is_kept_until_its_exp_then_verification_fails_closed(fake, kind):
    clock = Clock()
    fake.serve(bytes([0b10]) + bytes(127))  # entry 1 is revoked
    verifier = _verifier(fake, clock)
    verifier.verify(fake.token(0))
    fake.list_body = BAD_LISTS[kind](fake)

    clock.now += 11  # the list is stale; the fetch finds a bad one; the good one stands in
    verifier.verify(fake.token(0))
    with pytest.raises(RevokedToken):
        verifier.verify(fake.token(1))
    clock.now += 100  # past the good list's exp
    with pytest.raises(IssuerUnavailable):
        verifier.verify(fake.token(0))


def test_token_without_status_or_with_a_foreign_list_is_refused(fake):
    fake.serve(bytes(128))
    verifier = _verifier(fake, Clock())
    with pytest.raises(InvalidToken, match="out of range"):
        verifier.verify(fake.token(128 * 8))
    with pytest.raises(InvalidToken, match="not the issuer's"):
        verifier.verify(fake.token(0, uri="https://evil.example/statuslists/0"))
    now = int(time.time())
    bare = fake.key.sign(
        {
            "iss": fake.url,
            "sub": "u",
            "aud": "https://api.example",
            "exp": now + 60,
            "iat": now,
            "jti": "j",
            "client_id": "c",
        },
        typ="at+jwt",
    )
    with pytest.raises(InvalidToken, match="no status list entry"):
        verifier.verify(bare)
    assert fake.server.hits[LIST_PATH] == 1


def test_verify_cached_needs_a_fresh_list(fake):
    clock = Clock()
    fake.serve(bytes(128))
    verifier = _verifier(fake, clock)
    token = fake.token(3)
    verifier.verify(fake.token(0))  # warms keys and list
    assert verifier.verify_cached(token) is not None
    clock.now += 11
    assert verifier.verify_cached(token) is None
