"""The legacy-key shim as a proxy between callers that do not trust each other, over real HTTP.

`keyswap shim` runs as a process in front of a real upstream; callers connect from distinct
loopback addresses (127.0.0.2, 127.0.0.3, ...), so "another caller" is another address.
Each test names the defect it guards against: shared cookies, one caller's guesses stalling
everyone, smuggled hop-by-hop fields, believed X-Forwarded-For, bodies held in memory,
ambiguous duplicate keys, and deprecation notices lost on the way back.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from flask import Flask, make_response, request

from keyswap.clients import Verifier
from keyswap.clients.legacy import KeyExchanger, LegacyKeyMiddleware, ShimProxy
from keyswap.issuer.legacy.usage import usage_for

from ..metrics import metric_total
from .legacy_servers import import_key, serving, shim_process

SUNSET = "2099-12-31T00:00:00Z"


@pytest.fixture(autouse=True)
def _flushed_usage(live_server):
    """Leave nothing pending in the shared server's usage counts (see test_token_exchange)."""
    yield
    usage_for(live_server.app).flush()


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _call(
    port: int,
    path: str,
    headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
    *,
    source: str = "127.0.0.2",
    method: str = "GET",
) -> Answer:
    """Send one request from ``source``; repeated header names are sent repeatedly."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.putrequest(method, path)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


@pytest.fixture
def upstream() -> Iterator[str]:
    """A service that hands out a session cookie and echoes what each request carried."""
    app = Flask("upstream")

    @app.route("/login")
    def login():
        response = make_response({"logged_in": True})
        response.set_cookie("session", "secret-of-caller-a")
        return response

    @app.route("/<path:path>", methods=["GET", "POST"])
    def echo(path):
        return {
            "path": path,
            "cookie": request.headers.get("Cookie"),
            "authorization": request.headers.get("Authorization"),
            "forwarded_for": request.headers.get("X-Forwarded-For"),
            "forwarded": request.headers.get("Forwarded"),
            "headers": sorted(request.headers.keys()),
        }

    with serving(app) as url:
        yield url


@pytest.fixture
def shim(live_issuer, upstream):
    with shim_process(live_issuer.url, upstream) as running:
        yield running


# --- item 1: no cookie jar -------------------------------------------------------------


def test_a_cookie_set_for_one_caller_is_never_sent_for_another(live_issuer, shim):
    key_a, _ = import_key(live_issuer, owner="caller-a")
    key_b, _ = import_key(live_issuer, owner="caller-b")
    login = _call(shim.port, "/login", [("X-API-Key", key_a)], source="127.0.0.2")
    assert login.status == 200
    # Caller A gets its cookie; holding on to it is A's business, not the shim's.
    assert "secret-of-caller-a" in login.headers["Set-Cookie"]

    other = _call(shim.port, "/orders", [("X-API-Key", key_b)], source="127.0.0.3").json()
    assert other["cookie"] is None and other["authorization"].startswith("Bearer ")
    keyless = _call(shim.port, "/orders", source="127.0.0.4").json()
    assert keyless["cookie"] is None and keyless["authorization"] is None
    again = _call(shim.port, "/orders", [("X-API-Key", key_a)], source="127.0.0.2").json()
    assert again["cookie"] is None  # not even A's own, unless A sends it
    own = _call(
        shim.port, "/orders", [("X-API-Key", key_a), ("Cookie", "session=mine")], source="127.0.0.2"
    ).json()
    assert own["cookie"] == "session=mine"


# --- item 4: one caller's guesses -------------------------------------------------------


def _failures(issuer_url: str, reason: str) -> float:
    return metric_total(issuer_url, "keyswap_refusals_total", reason=reason)


def test_a_guessing_caller_is_limited_and_another_callers_key_still_works(
    isolated_issuer, upstream
):
    # The issuer as deployed: 20 unknown keys per window and address, and the shim is one
    # address. Before, the 21st guess made the issuer refuse every caller behind the shim.
    # (Hour windows: a sliding-window counter may let one extra hit through when a test
    # happens to cross a window boundary, which with minute windows flaked about 1 run in 60.)
    issuer = isolated_issuer(rate_limit_failures="20/hour")
    valid, _ = import_key(issuer)
    with shim_process(issuer.url, upstream) as shim:
        answers = [
            _call(shim.port, "/orders", [("X-API-Key", f"sk_guess_{n}")], source="127.0.0.2")
            for n in range(30)
        ]
        legit = _call(shim.port, "/orders", [("X-API-Key", valid)], source="127.0.0.3")
        # Once limited, a caller is refused whatever key it sends, so it cannot probe.
        limited_valid = _call(shim.port, "/orders", [("X-API-Key", valid)], source="127.0.0.2")
    usage_for(issuer.app).flush()

    statuses = [answer.status for answer in answers]
    assert statuses == [400] * 10 + [429] * 20
    assert answers[0].json()["error_description"] == "unknown API key"
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"] == "temporarily_unavailable"
    assert refused.json()["error_description"].startswith("the caller is rate limited")
    # Guesses past the limit never reached the issuer, so its limit on the shim never tripped.
    assert _failures(issuer.url, "unknown_api_key") == 10
    assert legit.status == 200, legit.body
    assert legit.json()["authorization"].startswith("Bearer ")
    assert limited_valid.status == 429


def test_an_issuer_429_is_passed_on_at_once_not_waited_out(isolated_issuer, upstream, caplog):
    # A shim whose own limit is off lets the issuer's failure limit trip on its address;
    # the next exchange must answer its caller now, not sleep on the issuer's Retry-After.
    issuer = isolated_issuer(rate_limit_failures="3/hour")
    valid, _ = import_key(issuer)
    proxy = ShimProxy(upstream, KeyExchanger.from_issuer(issuer.url, guess_limit="off"))
    with serving(proxy) as url:
        for n in range(3):
            requests.get(f"{url}/x", headers={"X-API-Key": f"sk_guess_{n}"}, timeout=10)
        response = requests.get(f"{url}/x", headers={"X-API-Key": valid}, timeout=10)
    usage_for(issuer.app).flush()
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"] == "temporarily_unavailable"
    # The issuer was asked once and answered 429 once: no retry sat in the request path.
    token_429s = [
        record
        for record in caplog.records
        if record.name == "werkzeug"
        and "POST /oauth/token" in record.getMessage()
        and " 429 " in record.getMessage()
    ]
    assert len(token_429s) == 1


# --- item 9: what is forwarded ----------------------------------------------------------


class _HopUpstream(BaseHTTPRequestHandler):
    """An upstream that names a private hop-by-hop field in its Connection field."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.dumps({name.lower(): value for name, value in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "keep-alive, X-Upstream-Hop")
        self.send_header("X-Upstream-Hop", "for-the-proxy-only")
        self.send_header("X-End-To-End", "kept")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hop_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HopUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_fields_named_in_connection_are_dropped_both_ways(live_issuer, hop_upstream):
    api_key, _ = import_key(live_issuer)
    with shim_process(live_issuer.url, hop_upstream) as shim:
        answer = _call(
            shim.port,
            "/orders",
            [
                ("X-API-Key", api_key),
                ("Connection", "keep-alive, X-Caller-Hop"),
                ("X-Caller-Hop", "for-the-shim-only"),
                ("X-Caller-Field", "kept"),
            ],
        )
    assert answer.status == 200, answer.body
    seen = answer.json()
    assert "x-caller-hop" not in seen and "connection" not in seen
    assert seen["x-caller-field"] == "kept"
    assert "X-Upstream-Hop" not in answer.headers
    assert answer.headers["X-End-To-End"] == "kept"


def test_a_callers_forwarding_fields_are_not_believed_by_default(live_issuer, shim):
    api_key, _ = import_key(live_issuer)
    seen = _call(
        shim.port,
        "/orders",
        [
            ("X-API-Key", api_key),
            ("X-Forwarded-For", "203.0.113.9"),
            ("Forwarded", "for=203.0.113.9"),
        ],
        source="127.0.0.5",
    ).json()
    assert seen["forwarded_for"] == "127.0.0.5"
    assert seen["forwarded"] is None


def test_trusted_proxies_keep_their_entries_and_name_the_caller(live_issuer, upstream):
    api_key, _ = import_key(live_issuer)
    with shim_process(
        live_issuer.url, upstream, "--trusted-proxies", "1", "--unknown-key-limit", "2/minute"
    ) as shim:
        seen = _call(
            shim.port,
            "/orders",
            [("X-API-Key", api_key), ("X-Forwarded-For", "203.0.113.9, 198.51.100.7")],
        ).json()
        # The one trusted proxy (127.0.0.2 here) said the caller is 198.51.100.7: guesses are
        # counted for that address, not for the proxy every caller comes through.
        for n in range(3):
            _call(shim.port, "/x", [("X-API-Key", f"sk_{n}"), ("X-Forwarded-For", "198.51.100.7")])
        limited = _call(
            shim.port, "/x", [("X-API-Key", "sk_x"), ("X-Forwarded-For", "198.51.100.7")]
        )
        other = _call(shim.port, "/x", [("X-API-Key", api_key), ("X-Forwarded-For", "192.0.2.1")])
    assert seen["forwarded_for"] == "198.51.100.7, 127.0.0.2"
    assert limited.status == 429
    assert other.status == 200, other.body


def test_the_request_body_is_streamed_not_read_whole_first(live_issuer):
    # The upstream reads the first 64 KiB and signals; the caller sends the rest only then.
    # A shim that reads the whole body before forwarding never lets the signal come.
    first_part = threading.Event()
    app = Flask("slow-reader")

    @app.route("/upload", methods=["POST"])
    def upload():
        stream = request.stream
        received = b""
        while len(received) < 65536:
            chunk = stream.read(65536 - len(received))
            if not chunk:
                break
            received += chunk
        first_part.set()
        received += stream.read()
        return {"bytes": len(received), "authorization": request.headers.get("Authorization")}

    api_key, _ = import_key(live_issuer)
    with serving(app) as upstream, shim_process(live_issuer.url, upstream) as shim:
        connection = http.client.HTTPConnection("127.0.0.1", shim.port, timeout=15)
        connection.putrequest("POST", "/upload")
        connection.putheader("X-API-Key", api_key)
        connection.putheader("Content-Length", str(65536 + 5))
        connection.endheaders()
        connection.send(b"a" * 65536)
        streamed = first_part.wait(timeout=10)
        connection.send(b"bbbbb")
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
    assert streamed, "the upstream got nothing until the whole body had arrived at the shim"
    assert response.status == 200
    assert body["bytes"] == 65536 + 5 and body["authorization"].startswith("Bearer ")


@pytest.mark.parametrize(
    "extra",
    [("X-API-Key", "sk_second"), ("Authorization", "ApiKey sk_second")],
    ids=["two-x-api-key", "x-api-key-and-authorization"],
)
def test_two_api_keys_are_refused_as_a_duplicate(live_issuer, shim, extra):
    api_key, _ = import_key(live_issuer)
    answer = _call(shim.port, "/orders", [("X-API-Key", api_key), extra])
    assert answer.status == 400
    assert answer.json() == {
        "error": "invalid_request",
        "error_description": "more than one API key in the request",
    }


def test_the_middleware_refuses_two_api_keys_too(live_issuer):
    api_key, _ = import_key(live_issuer)
    app = _guarded_app(live_issuer)
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        answer = _call(port, "/orders", [("X-API-Key", api_key), ("X-API-Key", api_key)])
    assert answer.status == 400
    assert answer.json()["error_description"] == "more than one API key in the request"


# --- item 23: deprecation notices -------------------------------------------------------


def _guarded_app(live_issuer) -> Flask:
    app = Flask("orders")

    @app.route("/orders")
    def orders():
        return {"ok": True}

    app.wsgi_app = LegacyKeyMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        Verifier(live_issuer.url, audience=live_issuer.url),
        KeyExchanger.from_issuer(live_issuer.url),
    )
    return app


def _assert_deprecated(headers: Any) -> None:
    assert headers["Deprecation"].startswith("@")
    assert headers["Sunset"] == "Thu, 31 Dec 2099 00:00:00 GMT"
    assert 'rel="deprecation"' in headers["Link"]


def test_a_retiring_keys_notices_reach_the_caller_through_the_shim(live_issuer, shim):
    retiring, _ = import_key(live_issuer, sunset_at=SUNSET)
    current, _ = import_key(live_issuer, owner="other-svc")
    for _ in range(2):  # exchanged, then from the shim's cache
        answer = _call(shim.port, "/orders", [("X-API-Key", retiring)])
        assert answer.status == 200
        _assert_deprecated(answer.headers)
    plain = _call(shim.port, "/orders", [("X-API-Key", current)])
    assert "Deprecation" not in plain.headers and "Sunset" not in plain.headers


def test_a_retiring_keys_notices_reach_the_caller_through_the_middleware(live_issuer):
    retiring, _ = import_key(live_issuer, sunset_at=SUNSET)
    with serving(_guarded_app(live_issuer)) as url:
        for _ in range(2):
            response = requests.get(f"{url}/orders", headers={"X-API-Key": retiring}, timeout=10)
            assert response.status_code == 200, response.text
            _assert_deprecated(response.headers)
