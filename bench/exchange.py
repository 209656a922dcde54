"""Benchmark: legacy API key exchange (RFC 8693) latency with few and with many imported keys.

For each key count (default 100 and 100,000) it builds a fresh database, imports that many
keys, serves the app on 127.0.0.1 (werkzeug, in a thread), and times sequential exchanges
over real HTTP with random keys: p50/p99 end to end, and the indexed lookup alone. Prints
a table and writes JSON to ``bench/results/``. Equal figures within noise show the lookup
is one index probe, not a scan.

    python -m bench exchange [--keys 100 --keys 100000] [--requests 1000]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import secrets
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import insert
from werkzeug.serving import make_server

from keyswap.issuer import create_app
from keyswap.issuer.config import Settings
from keyswap.issuer.context import Keyswap
from keyswap.issuer.db import transaction, upgrade_schema, utcnow
from keyswap.issuer.grants.token_exchange import API_KEY_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from keyswap.issuer.keyring import ensure_signing_key
from keyswap.issuer.legacy.keys import hash_api_key, load_legacy_key, new_key_id
from keyswap.issuer.lifecycle import add_user
from keyswap.issuer.models import LegacyKey, UserKind

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_BATCH = 10_000


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _import_keys(keyswap: Keyswap, count: int, sample: int) -> list[str]:
    """Insert ``count`` keys for one owner in one transaction; return ``sample`` clear keys."""
    clear = [f"bench_{n}_{secrets.token_urlsafe(18)}" for n in range(count)]
    now = utcnow()
    with transaction(keyswap.sessions) as session:
        owner = add_user(
            session, f"bench-{secrets.token_hex(4)}", kind=UserKind.SERVICE_ACCOUNT, actor="bench"
        )
        for start in range(0, count, _BATCH):
            session.execute(
                insert(LegacyKey),
                [
                    {
                        "id": new_key_id(),
                        "key_hash": hash_api_key(keyswap.hasher, key),
                        "owner_id": owner.id,
                        "scopes": "bench:read",
                        "audiences": [],
                        "created_at": now,
                        "use_count": 0,
                    }
                    for key in clear[start : start + _BATCH]
                ],
            )
    return random.sample(clear, min(sample, count))


def _time_lookups(keyswap: Keyswap, keys: list[str], rounds: int) -> list[float]:
    hashes = [hash_api_key(keyswap.hasher, key) for key in keys]
    samples = []
    for n in range(rounds):
        key_hash = hashes[n % len(hashes)]
        started = time.perf_counter()
        # As the exchange reads it: one live read on the autocommit pool.
        assert keyswap.reads(partial(load_legacy_key, key_hash=key_hash)) is not None
        samples.append(time.perf_counter() - started)
    return samples


def _time_exchanges(url: str, keys: list[str], requests_count: int, warmup: int) -> list[float]:
    samples = []
    with requests.Session() as http:
        for n in range(warmup + requests_count):
            data = {
                "grant_type": TOKEN_EXCHANGE_GRANT,
                "subject_token_type": API_KEY_TOKEN_TYPE,
                "subject_token": random.choice(keys),
            }
            started = time.perf_counter()
            response = http.post(f"{url}/oauth/token", data=data, timeout=10)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"exchange failed: {response.status_code} {response.text}")
            if n >= warmup:
                samples.append(elapsed)
    return samples


def run_one(count: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Measure exchange latency with ``count`` imported keys on a fresh database."""
    database_url = f"sqlite:///{workdir / f'keys-{count}.db'}"
    server = make_server("127.0.0.1", 0, lambda e, s: app(e, s), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    limits_off = {f"rate_limit_{kind}": "off" for kind in ("client", "address", "failures")}
    settings = Settings(
        data_dir=workdir,
        database_url=database_url,
        key_encryption_key=secrets.token_bytes(32),
        issuer=url,
        **limits_off,  # type: ignore[arg-type]
    )
    app = create_app(settings)
    keyswap: Keyswap = app.extensions["keyswap"]
    upgrade_schema(keyswap.engine)
    with transaction(keyswap.sessions) as session:
        ensure_signing_key(session, keyswap.sealer, now=keyswap.clock())
    started = time.perf_counter()
    keys = _import_keys(keyswap, count, sample=500)
    import_seconds = time.perf_counter() - started
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        lookups = _time_lookups(keyswap, keys, rounds=args.requests)
        exchanges = _time_exchanges(url, keys, args.requests, warmup=args.warmup)
    finally:
        server.shutdown()
        server.server_close()
        keyswap.usage.close()
        keyswap.dispose()
    return {
        "keys": count,
        "import_seconds": round(import_seconds, 3),
        "requests": len(exchanges),
        "exchange_p50_ms": round(1000 * statistics.median(exchanges), 3),
        "exchange_p99_ms": round(1000 * _percentile(exchanges, 0.99), 3),
        "exchange_mean_ms": round(1000 * statistics.fmean(exchanges), 3),
        "lookup_p50_us": round(1e6 * statistics.median(lookups), 1),
        "lookup_p99_us": round(1e6 * _percentile(lookups, 0.99), 1),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [
        "  ".join(str(r[c]).rjust(w) for c, w in zip(columns, widths, strict=True)) for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table and write ``bench/results/exchange-<time>.json``."""
    parser = argparse.ArgumentParser(prog="python -m bench exchange", description=__doc__)
    parser.add_argument("--keys", type=int, action="append", help="key counts (repeatable)")
    parser.add_argument("--requests", type=int, default=1000, help="timed exchanges per count")
    parser.add_argument("--warmup", type=int, default=100, help="untimed exchanges first")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    random.seed(args.seed)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    counts = args.keys or [100, 100_000]
    with tempfile.TemporaryDirectory(prefix="keyswap-bench-") as tmp:
        rows = [run_one(count, args, Path(tmp)) for count in counts]
    print(_table(rows))
    if not args.no_save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS_DIR / f"exchange-{stamp}.json"
        document = {
            "benchmark": "exchange",
            "at": stamp,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "database": "sqlite",
            "results": rows,
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
