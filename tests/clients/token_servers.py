"""Loopback servers for the token client tests: a fault-injecting front for the real issuer,
and a small API that accepts only valid keyswap bearer tokens (checked with PyJWT)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from ..metrics import metric_total

FORWARDED_REQUEST_HEADERS = ("Authorization", "Content-Type", "Accept")
FORWARDED_RESPONSE_HEADERS = ("Content-Type", "Cache-Control", "Retry-After", "WWW-Authenticate")


class IssuerFront:
    """Sits before the real issuer: counts requests, answers scripted ones, forwards the rest.

    ``script`` holds (status, headers, body) answers given, in order, to the next token
    requests instead of forwarding them; ``delay`` slows every token request.
    """

    url = ""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.hits: Counter[str] = Counter()
        self.script: deque[tuple[int, dict[str, str], dict[str, Any]]] = deque()
        self.delay = 0.0
        self._lock = threading.Lock()
        self._http = requests.Session()

    @property
    def token_url(self) -> str:
        """Return the token endpoint as seen through the front."""
        return f"{self.url}/oauth/token"

    def fail_next(self, times: int, status: int, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` token requests with ``status`` instead of forwarding."""
        body = {"error": "temporarily_unavailable", "error_description": f"scripted {status}"}
        for _ in range(times):
            self.script.append((status, headers or {}, body))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        is_token = request.path == "/oauth/token"
        with self._lock:
            self.hits[request.path] += 1
            canned = self.script.popleft() if is_token and self.script else None
        if is_token and self.delay:
            time.sleep(self.delay)
        if canned is not None:
            status, headers, body = canned
            response = Response(json.dumps(body), status, headers, mimetype="application/json")
            return response(environ, start_response)
        upstream = self._http.request(
            request.method,
            self.upstream + request.full_path.rstrip("?"),
            data=request.get_data(),
            headers={k: v for k, v in request.headers.items() if k in FORWARDED_REQUEST_HEADERS},
            timeout=10,
        )
        headers = {
            k: v for k, v in upstream.headers.items() if k.title() in FORWARDED_RESPONSE_HEADERS
        }
        return Response(upstream.content, upstream.status_code, headers)(environ, start_response)


class ProtectedApi:
    """An API that verifies bearer tokens offline against the issuer's JWKS.

    ``rejected_jtis`` are refused with ``invalid_token`` as if revoked; ``mode`` forces every
    answer: ``"reject"`` (401 invalid_token) or ``"bare-401"`` (401 with no error code).
    """

    url = ""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.jwks = jwt.PyJWKClient(f"{issuer}/jwks.json")
        self.rejected_jtis: set[str] = set()
        self.mode = "verify"
        self.seen: list[str | None] = []  # the jti of each request's token, None if refused
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self._answer(request)(environ, start_response)

    def _answer(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        claims = None
        if scheme == "Bearer" and self.mode == "verify":
            try:
                key = self.jwks.get_signing_key_from_jwt(token)
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=["ES256", "RS256", "EdDSA"],
                    audience=self.issuer,
                    issuer=self.issuer,
                )
            except jwt.PyJWTError:
                claims = None
        if claims is not None and claims["jti"] in self.rejected_jtis:
            claims = None
        with self._lock:
            self.seen.append(None if claims is None else claims["jti"])
        if self.mode == "bare-401":
            return Response("", 401, {"WWW-Authenticate": 'Bearer realm="api"'})
        if claims is None:
            challenge = 'Bearer realm="api", error="invalid_token"'
            return Response("", 401, {"WWW-Authenticate": challenge})
        body = {
            "client_id": claims["client_id"],
            "jti": claims["jti"],
            "body": request.get_data(as_text=True),
        }
        return Response(json.dumps(body), 200, mimetype="application/json")


@contextmanager
def serving(app: Any) -> Iterator[Any]:
    """Serve a WSGI app on a loopback port for the block; set its ``url``."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        server.server_close()


def tokens_issued(issuer_url: str) -> float:
    """Return the issuer's ``keyswap_tokens_issued_total``, summed over grant types."""
    return metric_total(issuer_url, "keyswap_tokens_issued_total")


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class SleepRecorder:
    """A ``sleep`` that records each wait and does not wait (or, if ``real``, does)."""

    def __init__(self, real: bool = False) -> None:
        self.waits: list[float] = []
        self._real = real

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self._real:
            time.sleep(seconds)
