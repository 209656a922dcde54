"""A loopback server for remote JWK Set tests: serves, drips, floods, redirects or fails.

Each path is given a behaviour; the server counts TCP connections and hits per path, and
can hold a response until the test releases it (``gate``), to see what happens meanwhile.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Behaviour = Callable[[BaseHTTPRequestHandler, "JwksServer"], None]


class JwksServer:
    """A ThreadingHTTPServer on 127.0.0.1 whose paths behave as the test says."""

    def __init__(self) -> None:
        self.routes: dict[str, Behaviour] = {}
        self.hits: Counter[str] = Counter()
        self.connections = 0
        #: Set once a request arrived at a held (gated or dripping) path.
        self.holding = threading.Event()
        #: Set by the test to let held responses finish.
        self.gate = threading.Event()
        #: Set when a dripping response found its client gone.
        self.client_left = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with owner._lock:
                    owner.hits[self.path] += 1
                behaviour = owner.routes.get(self.path)
                if behaviour is None:
                    self.send_error(404)
                    return
                behaviour(self, owner)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                request = super().get_request()
                with owner._lock:
                    owner.connections += 1
                return request

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """Return the http URL of ``path`` on this server."""
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        """Release held responses and stop serving."""
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()


def serve_json(document: Any, headers: dict[str, str] | None = None) -> Behaviour:
    """Answer 200 with ``document`` as JSON."""
    body = json.dumps(document).encode()

    def behave(handler: BaseHTTPRequestHandler, server: JwksServer) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    return behave


def gated(document: Any) -> Behaviour:
    """Answer like ``serve_json``, but only once the test sets ``server.gate``."""
    serve = serve_json(document)

    def behave(handler: BaseHTTPRequestHandler, server: JwksServer) -> None:
        server.holding.set()
        server.gate.wait(60)
        serve(handler, server)

    return behave


def drip(interval: float) -> Behaviour:
    """Send the headers, then one byte every ``interval`` seconds until the gate or a hang-up."""

    def behave(handler: BaseHTTPRequestHandler, server: JwksServer) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        handler.wfile.flush()
        server.holding.set()
        try:
            handler.wfile.write(b'{"keys": [')
            handler.wfile.flush()
            while not server.gate.wait(interval):
                handler.wfile.write(b" ")
                handler.wfile.flush()
        except OSError:
            server.client_left.set()

    return behave


def flood(total: int, *, declare_length: bool) -> Behaviour:
    """Send a JSON document of ``total`` bytes (a JWK Set padded with whitespace)."""
    head, tail = b'{"keys": [', b"]}"
    padding = total - len(head) - len(tail)

    def behave(handler: BaseHTTPRequestHandler, server: JwksServer) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if declare_length:
            handler.send_header("Content-Length", str(total))
        handler.end_headers()
        try:
            handler.wfile.write(head)
            chunk = b" " * 65536
            for _ in range(padding // len(chunk)):
                handler.wfile.write(chunk)
            handler.wfile.write(b" " * (padding % len(chunk)) + tail)
        except OSError:
            server.client_left.set()

    return behave


def redirect(location: str) -> Behaviour:
    """Answer 302 to ``location``."""

    def behave(handler: BaseHTTPRequestHandler, server: JwksServer) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return behave


def fail(status: int = 500) -> Behaviour:
    """Answer ``status`` with an empty body."""

    def behave(handler: BaseHTTPRequestHandler, server: JwksServer) -> None:
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return behave
