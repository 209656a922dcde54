"""Real servers for the legacy-key shim tests: a WSGI app on a loopback port, `keyswap shim`
as a process, and a legacy key imported into a live issuer."""

from __future__ import annotations

import io
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from werkzeug.serving import make_server

from keyswap.issuer.db import transaction
from keyswap.issuer.legacy.importing import import_legacy_keys, parse_csv


def import_key(
    live_issuer: Any,
    owner: str = "billing-svc",
    scopes: str = "orders:read orders:write",
    sunset_at: str = "",
) -> tuple[str, str]:
    """Import one new legacy key for ``owner`` (created if need be); return (key, key id)."""
    live_issuer.create_client(user=owner)  # creates the owner
    api_key = "sk_" + secrets.token_urlsafe(24)
    text = f"api_key,owner,scopes,sunset_at\n{api_key},{owner},{scopes},{sunset_at}\n"
    with transaction(live_issuer.keyswap.sessions) as session:
        report = import_legacy_keys(
            session,
            live_issuer.keyswap.hasher,
            parse_csv(io.StringIO(text)),
            now=live_issuer.keyswap.clock(),
            actor="test",
        )
    key_id = report.results[0].key_id
    assert report.ok and key_id is not None
    return api_key, key_id


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve a WSGI app on a loopback port (threaded); yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def shim_process(issuer: str, upstream: str, *options: str) -> Iterator[ShimProcess]:
    """Run `keyswap shim` in front of ``upstream`` until the block ends."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSWAP_")}
    process = subprocess.Popen(
        [
            sys.executable, "-m", "keyswap.issuer.cli", "shim",
            "--listen", f"127.0.0.1:{port}", "--upstream", upstream,
            "--issuer", issuer, "--threads", "4", *options,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    shim = ShimProcess(f"http://127.0.0.1:{port}", port, process)
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(shim.url, timeout=1)
            break
        except requests.ConnectionError:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "keyswap shim did not start"
            time.sleep(0.1)
    try:
        yield shim
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None and not process.stdout.closed:
            process.stdout.close()


class ShimProcess:
    """A running `keyswap shim`: its URL, port and process."""

    def __init__(self, url: str, port: int, process: subprocess.Popen[str]) -> None:
        self.url, self.port, self.process = url, port, process
