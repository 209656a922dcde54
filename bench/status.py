"""Benchmark: Token Status Lists: list size on the wire, verifier cost, issuance cost.

Three measurements, in one run:

1. **Bytes on the wire** of a signed list covering 10k, 100k and 1M live tokens (1M is one
   whole keyswap list), with 0 %, 0.1 % and 1 % of the entries revoked at random: the
   list is encoded by the issuer's own ``encode_bits`` and signed by an ES256 key, as
   ``GET /statuslists/{id}`` serves it.
2. **Verifier cost per check with a warm list**: ``Verifier.verify`` with and without
   ``check_status`` on the same token, the list (1M entries) and keys served from a tiny
   loopback server and fetched once; median over alternating rounds, in CPU time of the
   measuring thread.
3. **Token issuance with and without status lists**, same run, same app: the real token
   endpoint (``client_credentials``) through the WSGI stack in-process, on a scratch
   SQLite or PostgreSQL (``--backend``) database; "without" swaps the process's leases for a
   stub that hands out no entry, so the difference is the whole cost of the feature
   (allocation, block leases amortised, the bigger claim set). Requests alternate one by
   one between the two, in CPU time of the requesting thread; the median over rounds.

    python -m bench status [--rounds 9] [--iterations 2000] [--tokens 400]
                           [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from keyswap.clients.verifier import Verifier
from keyswap.issuer import create_app
from keyswap.issuer.config import Settings
from keyswap.issuer.context import Keyswap
from keyswap.issuer.db import transaction, upgrade_schema
from keyswap.issuer.keyring import ensure_signing_key
from keyswap.issuer.lifecycle import add_user, register_client
from keyswap.issuer.status_lists import STATUS_LIST_TYP, encode_bits
from keyswap.jwks import KeyPair, generate_key

from .report import machine_info, save
from .servers import Database

AUDIENCE = "https://orders.example"
SIZES = (10_000, 100_000, 1_000_000)
REVOKED = (0.0, 0.001, 0.01)


def _bits(entries: int, revoked: float, rng: random.Random) -> bytes:
    bits = bytearray((entries + 7) // 8)
    for idx in rng.sample(range(entries), int(entries * revoked)):
        bits[idx // 8] |= 1 << (idx % 8)
    return bytes(bits)


def _list_jwt(key: KeyPair, uri: str, bits: bytes) -> str:
    now = int(time.time())
    claims = {
        "iss": uri.rsplit("/statuslists/", 1)[0],
        "sub": uri,
        "iat": now,
        "exp": now + 300,
        "ttl": 60,
        "status_list": {"bits": 1, "lst": encode_bits(bits)},
    }
    return key.sign(claims, typ=STATUS_LIST_TYP)


def wire_sizes(key: KeyPair) -> list[dict[str, Any]]:
    """Return the signed list's size for each live-token count and revoked share."""
    rng = random.Random(14)
    rows = []
    for entries in SIZES:
        for revoked in REVOKED:
            body = _list_jwt(
                key, "https://issuer.example/statuslists/0", _bits(entries, revoked, rng)
            )
            rows.append({"entries": entries, "revoked": revoked, "bytes": len(body)})
    return rows


def _serve(documents: dict[str, tuple[bytes, str]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
            body, media_type = documents.get(self.path, (b"{}", "application/json"))
            self.send_response(200 if self.path in documents else 404)
            self.send_header("Content-Type", media_type)
            self.send_header("Cache-Control", "public, max-age=300")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _cpu_rate(call: Callable[[], object], iterations: int) -> float:
    started = time.thread_time()
    for _ in range(iterations):
        call()
    return iterations / (time.thread_time() - started)


def verifier_cost(key: KeyPair, rounds: int, iterations: int) -> dict[str, Any]:
    """Return µs per ``verify`` with and without ``check_status``, list warm."""
    documents: dict[str, tuple[bytes, str]] = {}
    server = _serve(documents)
    issuer = f"http://127.0.0.1:{server.server_port}"
    uri = f"{issuer}/statuslists/0"
    documents["/.well-known/oauth-authorization-server"] = (
        json.dumps({"issuer": issuer, "jwks_uri": f"{issuer}/jwks.json"}).encode(),
        "application/json",
    )
    documents["/jwks.json"] = (
        json.dumps({"keys": [dict(key.public_jwk)]}).encode(),
        "application/json",
    )
    bits = _bits(1_000_000, 0.01, random.Random(7))
    documents["/statuslists/0"] = (
        _list_jwt(key, uri, bits).encode(),
        "application/statuslist+jwt",
    )
    try:
        now = int(time.time())
        idx = next(i for i in range(1_000_000) if not bits[i // 8] >> (i % 8) & 1)
        token = key.sign(
            {
                "iss": issuer,
                "sub": "svc_bench",
                "aud": AUDIENCE,
                "exp": now + 3600,
                "iat": now,
                "nbf": now,
                "jti": uuid.uuid4().hex,
                "client_id": "ks_bench",
                "scope": "orders:read",
                "tenant": "bench",
                "status": {"status_list": {"idx": idx, "uri": uri}},
            },
            typ="at+jwt",
        )
        plain = Verifier(issuer, AUDIENCE)
        checked = Verifier(issuer, AUDIENCE, check_status=True)

        def without() -> object:
            return plain.verify(token)

        def with_status() -> object:
            return checked.verify(token)

        claims = checked.verify(token).claims

        def check_only() -> object:
            return checked._check_status(claims, fetch=True)

        for call in (without, with_status, check_only):
            call()  # warm-up: metadata, keys, list
            _cpu_rate(call, iterations // 4)
        plain_rates, status_rates, check_rates = [], [], []
        for _ in range(rounds):
            plain_rates.append(_cpu_rate(without, iterations))
            status_rates.append(_cpu_rate(with_status, iterations))
            check_rates.append(_cpu_rate(check_only, iterations * 10))
    finally:
        server.shutdown()
        server.server_close()
    plain_us = 1e6 / statistics.median(plain_rates)
    status_us = 1e6 / statistics.median(status_rates)
    return {
        "list_entries": 1_000_000,
        "verify_us": round(plain_us, 2),
        "verify_check_status_us": round(status_us, 2),
        # The status check alone: the difference of the two medians above is within noise.
        "status_check_alone_us": round(1e6 / statistics.median(check_rates), 2),
    }


class _NoStatus:
    """Leases stub: hands out no entry, so tokens are minted as before status lists."""

    def entry(self, **_: Any) -> None:
        return None


def issuance_cost(rounds: int, tokens: int, backend: str) -> dict[str, Any]:
    """Return ms per token request with and without status lists, alternating rounds."""
    with tempfile.TemporaryDirectory() as scratch, Database(backend, Path(scratch)) as database:
        url = database.url
        settings = Settings(
            data_dir=Path(scratch),
            database_url=url,
            key_encryption_key=secrets.token_bytes(32),
            rate_limit_client="off",
            rate_limit_address="off",
            rate_limit_failures="off",
        )
        app = create_app(settings)
        keyswap: Keyswap = app.extensions["keyswap"]
        upgrade_schema(keyswap.engine)
        owner = f"bench-{uuid.uuid4().hex[:8]}"
        with transaction(keyswap.sessions) as session:
            ensure_signing_key(session, keyswap.sealer, now=keyswap.clock())
            add_user(session, owner, actor="bench")
        with transaction(keyswap.sessions) as session:
            created = register_client(
                session,
                keyswap.hasher,
                owner=owner,
                scope="orders:read",
                max_token_ttl=settings.max_token_ttl,
                now=keyswap.clock(),
                actor="bench",
            )
            client_id, secret = created.client.id, created.secret
        assert secret is not None
        http = app.test_client()
        real = keyswap.server.status_leases
        stub = _NoStatus()

        def request() -> None:
            response = http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(client_id, secret),
            )
            assert response.status_code == 200, response.get_data(as_text=True)

        def timed_pair() -> tuple[float, float]:
            # Requests alternate one by one between the two, so the machine's drift (shared
            # cores, frequency) falls on both alike. CPU time of this thread: the whole
            # request, and SQLite's work, run in it.
            spent = {"with": 0.0, "without": 0.0}
            for _ in range(tokens):
                for side, leases in (("without", stub), ("with", real)):
                    keyswap.server.status_leases = leases  # type: ignore[assignment]
                    started = time.thread_time()
                    request()
                    spent[side] += time.thread_time() - started
            return spent["with"] / tokens, spent["without"] / tokens

        timed_pair()  # warm-up
        with_ms, without_ms = [], []
        for _ in range(rounds):
            w, wo = timed_pair()
            with_ms.append(w)
            without_ms.append(wo)
        keyswap.server.status_leases = real
        leased = real.leased
        keyswap.dispose()
    w, wo = statistics.median(with_ms) * 1e3, statistics.median(without_ms) * 1e3
    return {
        "database": backend,
        "clock": "thread CPU time (PostgreSQL's own work not included)",
        "token_ms_without_status": round(wo, 3),
        "token_ms_with_status": round(w, 3),
        "overhead_percent": round((w / wo - 1) * 100, 1),
        "blocks_leased": leased,
        "tokens_with_status": tokens * (rounds + 1),
    }


def main(argv: list[str]) -> int:
    """Run the three measurements, print the tables and write JSON to ``bench/results/``."""
    parser = argparse.ArgumentParser(prog="python -m bench status", description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args(argv)
    key = generate_key("ES256")
    sizes = wire_sizes(key)
    print("| live tokens | revoked | list bytes on the wire |")
    print("|---:|---:|---:|")
    for row in sizes:
        print(f"| {row['entries']:,} | {row['revoked'] * 100:g} % | {row['bytes']:,} |")
    verify = verifier_cost(key, args.rounds, args.iterations)
    print(
        f"\nverify: {verify['verify_us']} µs plain, {verify['verify_check_status_us']} µs with "
        f"check_status (warm 1M-entry list); the status check alone "
        f"{verify['status_check_alone_us']} µs"
    )
    issuance = issuance_cost(args.rounds, args.tokens, args.backend)
    print(
        f"issuance ({issuance['database']}): {issuance['token_ms_without_status']} ms without, "
        f"{issuance['token_ms_with_status']} ms with status lists "
        f"({issuance['overhead_percent']:+g} %), {issuance['blocks_leased']} block leases for "
        f"{issuance['tokens_with_status']} tokens"
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = save(
        "status",
        stamp,
        {
            "machine": machine_info(),
            "wire": sizes,
            "verifier": verify,
            "issuance": issuance,
        },
    )
    print(f"wrote {path}")
    return 0
