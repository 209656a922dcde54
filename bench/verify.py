"""Benchmark: ``keyswap.clients.Verifier.verify`` next to PyJWT's raw ``jwt.decode``.

A key is generated in-process, and its JWK Set and RFC 8414 metadata are served from a
tiny HTTP server on 127.0.0.1, so the Verifier starts exactly as it would against keyswap.
Both sides verify the same token with the same key and the same claim checks (iss, aud,
exp/nbf/iat with leeway, required claims); the Verifier adds the ``typ`` check, the key
lookup by ``kid`` and the ``Principal``. After a warm-up, rounds alternate between the two;
the figure is each side's median rate over the rounds (in CPU time of the measuring
thread), and the ratio of the medians.

    python -m bench verify [--alg ES256] [--rounds 21] [--iterations 1000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyswap.clients.verifier import REQUIRED_CLAIMS, Verifier

RESULTS_DIR = Path(__file__).resolve().parent / "results"
AUDIENCE = "https://orders.example"


def _generate(alg: str) -> tuple[Any, dict[str, Any]]:
    """Return a private key for ``alg`` and its public JWK."""
    private_key: Any
    if alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    elif alg == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    else:
        private_key = ed25519.Ed25519PrivateKey.generate()
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    jwk.pop("key_ops", None)
    return private_key, {**jwk, "kid": uuid.uuid4().hex, "alg": alg, "use": "sig"}


def _serve(documents: dict[str, bytes]) -> ThreadingHTTPServer:
    """Serve ``documents`` (path -> JSON bytes) on 127.0.0.1 in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
            body = documents.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=300")
            self.end_headers()
            self.wfile.write(body or b"{}")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _rate(call: Callable[[], object], iterations: int) -> float:
    # CPU time of this thread, not wall time: other work on a shared machine inflates
    # wall time at random and would decide the ratio more than the code does.
    started = time.thread_time()
    for _ in range(iterations):
        call()
    return iterations / (time.thread_time() - started)


def run(alg: str, rounds: int, iterations: int) -> dict[str, Any]:
    """Measure both sides for ``alg``; return the figures."""
    private_key, jwk = _generate(alg)
    holder: dict[str, bytes] = {"/jwks.json": json.dumps({"keys": [jwk]}).encode()}
    server = _serve(holder)
    issuer = f"http://127.0.0.1:{server.server_port}"
    holder["/.well-known/oauth-authorization-server"] = json.dumps(
        {"issuer": issuer, "jwks_uri": f"{issuer}/jwks.json"}
    ).encode()
    try:
        now = int(time.time())
        claims = {
            "iss": issuer,
            "sub": "svc_bench",
            "aud": AUDIENCE,
            "exp": now + 3600,
            "iat": now,
            "nbf": now,
            "jti": uuid.uuid4().hex,
            "client_id": "ks_bench",
            "scope": "orders:read orders:write",
            "tenant": "bench",
        }
        token = jwt.encode(
            claims, private_key, algorithm=alg, headers={"kid": jwk["kid"], "typ": "at+jwt"}
        )
        verifier = Verifier(issuer, AUDIENCE)
        public_key = jwt.PyJWK(jwk).key
        options: Any = {"require": list(REQUIRED_CLAIMS)}

        def raw() -> object:
            return jwt.decode(
                token,
                public_key,
                algorithms=[alg],
                audience=AUDIENCE,
                issuer=issuer,
                leeway=30,
                options=options,
            )

        def ours() -> object:
            return verifier.verify(token)

        assert ours() and raw()  # warm-up: fetches metadata and keys, fills caches
        for call in (raw, ours):
            _rate(call, iterations // 4)
        raw_rates, our_rates = [], []
        for _ in range(rounds):
            raw_rates.append(_rate(raw, iterations))
            our_rates.append(_rate(ours, iterations))
        fetches = verifier.keys.fetches
    finally:
        server.shutdown()
        server.server_close()
    raw_median, our_median = statistics.median(raw_rates), statistics.median(our_rates)
    return {
        "alg": alg,
        "rounds": rounds,
        "iterations_per_round": iterations,
        "pyjwt_decode_per_s": round(raw_median, 1),
        "verifier_per_s": round(our_median, 1),
        "ratio": round(our_median / raw_median, 3),
        "pyjwt_decode_us": round(1e6 / raw_median, 2),
        "verifier_us": round(1e6 / our_median, 2),
        "jwks_fetches": fetches,
        "clock": "thread CPU time",
    }


def main(argv: list[str]) -> int:
    """Run the benchmark, print a table and write JSON to ``bench/results/``."""
    parser = argparse.ArgumentParser(prog="python -m bench verify", description=__doc__)
    parser.add_argument("--alg", action="append", choices=["ES256", "RS256", "EdDSA"])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args(argv)
    results = [run(alg, args.rounds, args.iterations) for alg in args.alg or ["ES256"]]
    print(f"{'alg':<6} {'jwt.decode/s':>13} {'Verifier/s':>11} {'ratio':>6} {'fetches':>8}")
    for r in results:
        print(
            f"{r['alg']:<6} {r['pyjwt_decode_per_s']:>13,.0f} {r['verifier_per_s']:>11,.0f}"
            f" {r['ratio']:>6.3f} {r['jwks_fetches']:>8}"
        )
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"verify-{stamp}.json"
    document = {
        "benchmark": "verify",
        "when": stamp,
        "python": platform.python_version(),
        "pyjwt": jwt.__version__,
        "machine": platform.machine(),
        "results": results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path}")
    return 0
