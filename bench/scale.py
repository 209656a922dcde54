"""Scale: does token issuance cost grow with the number of registered clients?

Two ``keyswap serve`` instances run side by side, each on its own scratch database: one
holding a single client, one holding 100,000 (by default). Both are built the same way:
the measured client through the ``keyswap`` CLI, the others inserted in bulk through the
issuer's own models (owners through ``lifecycle.add_user``, 100 clients each, every client
with a real HMAC-hashed secret), then ``ANALYZE`` on PostgreSQL as autovacuum would do.
wrk then drives ``client_credentials`` in alternating rounds:

- ``1 client``: the only client, again and again;
- ``N clients, same client``: the measured client among N;
- ``N clients, rotating``: a different client on each request, over 1,000 of the N
  (a cold row more often than not, as in production).

Signing keys are not scaled: the database allows one active key and one waiting key
(partial unique indexes), retired keys leave once their last token has expired, and each
worker keeps the signer in memory (``keyswap.issuer.keyring``), so the key count cannot reach a
size where issuance would notice it.

    python -m bench scale [--clients 1 --clients 100000] [--backend sqlite|postgres]
                          [--concurrency 1,8] [--duration 10] [--rounds 3] [--rotate 1000]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from keyswap.issuer import create_app
from keyswap.issuer.config import Settings
from keyswap.issuer.context import Keyswap
from keyswap.issuer.db import transaction, utcnow
from keyswap.issuer.hashing import new_secret
from keyswap.issuer.lifecycle import add_user
from keyswap.issuer.models import Client, ClientSecret, UserKind

from . import load
from .report import machine_info, save
from .servers import SCOPE, TOKEN_SCOPE, Database, KeyswapServer

_BATCH = 10_000
_PER_OWNER = 100


def bulk_clients(server: KeyswapServer, count: int, keep: int) -> list[tuple[str, str]]:
    """Insert ``count`` clients with secrets into the server's database; return ``keep`` of them.

    Uses the issuer's models and secret hasher under the server's own settings, so each
    row is what ``keyswap clients create`` would have stored, minus its audit event.
    """
    if count <= 0:
        return []
    app = create_app(Settings.from_env(server.env))
    keyswap: Keyswap = app.extensions["keyswap"]
    kept: list[tuple[str, str]] = []
    try:
        with transaction(keyswap.sessions) as session:
            owners = [
                add_user(
                    session,
                    f"scale-owner-{n}",
                    tenant="bench",
                    kind=UserKind.SERVICE_ACCOUNT,
                    actor="bench",
                ).id
                for n in range(math.ceil(count / _PER_OWNER))
            ]
            now = utcnow()
            for start in range(0, count, _BATCH):
                clients, hashes = [], []
                for n in range(start, min(count, start + _BATCH)):
                    client_id, secret = f"ks_{new_secret()[:22]}", new_secret()
                    if len(kept) < keep:
                        kept.append((client_id, secret))
                    clients.append(
                        {
                            "id": client_id,
                            "owner_id": owners[n // _PER_OWNER],
                            "scopes": SCOPE,
                            "audiences": [],
                            "created_at": now,
                        }
                    )
                    hashes.append(
                        {
                            "client_id": client_id,
                            "secret_hash": keyswap.hasher.hash(secret),
                            "created_at": now,
                        }
                    )
                session.execute(insert(Client), clients)
                session.execute(insert(ClientSecret), hashes)
        if server.database.backend == "postgres":
            with keyswap.engine.connect() as connection:
                connection.execute(text("ANALYZE"))
                connection.commit()
    finally:
        keyswap.usage.close()
        keyswap.dispose()
    return kept


def prepare(
    server: KeyswapServer, clients: int, rotate: int
) -> tuple[str, str, list[tuple[str, str]]]:
    """Create the measured client by CLI and ``clients - 1`` more in bulk; start the server.

    Returns the measured client's id and secret, and up to ``rotate`` bulk clients' ids
    and clear secrets.
    """
    server.cli("db", "upgrade")
    server.cli("tenants", "create", "bench")
    server.cli("users", "create", "bench-svc", "--tenant", "bench", "--service-account")
    created = server.cli("clients", "create", "--owner", "bench-svc", "--scope", SCOPE)
    started = time.perf_counter()
    kept = bulk_clients(server, clients - 1, rotate)
    _progress(f"{clients:,} clients ready in {time.perf_counter() - started:.1f} s")
    server.start()
    return created["client_id"], created["client_secret"], kept


def _progress(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the scale benchmark; print p50/p99 and req/s, write ``bench/results/scale-*.json``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, action="append", help="client counts (2 at most)")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--duration", type=int, default=10, help="seconds per load step")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--rotate", type=int, default=1000, help="clients to rotate over")
    parser.add_argument("--workers", type=int, help="server workers (default: keyswap's own)")
    parser.add_argument("--postgres-url", help="admin URL where a scratch database is created")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    counts = sorted(set(args.clients or [1, 100_000]))
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    machine = machine_info()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="keyswap-scale-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        targets: list[tuple[str, list[load.Request], KeyswapServer, Database]] = []
        for count in counts:
            database = stack.enter_context(Database(args.backend, workdir, args.postgres_url))
            server = stack.enter_context(
                KeyswapServer(f"clients-{count}", database, workdir, workers=args.workers)
            )
            client_id, secret, rotation = prepare(server, count, args.rotate)
            url = f"{server.url}/oauth/token"
            same = [load.token_request(url, client_id, secret, TOKEN_SCOPE)]
            label = f"{count:,} client" + ("s" if count > 1 else "")
            targets.append(
                (label if count == 1 else f"{label}, same client", same, server, database)
            )
            if len(rotation) > 1:
                rotating = [
                    load.token_request(url, client, secret, TOKEN_SCOPE)
                    for client, secret in rotation
                ]
                targets.append(
                    (f"{label}, rotating over {len(rotation):,}", rotating, server, database)
                )
        for _label, requests, _server, _database in targets:
            # Warm every worker's caches and connection pool; discarded.
            load.run_mix(requests, max(concurrencies), 3)
        for round_no in range(args.rounds):
            ordered = targets if round_no % 2 == 0 else list(reversed(targets))
            for concurrency in concurrencies:
                for label, requests, server, database in ordered:
                    db_pids = database.backend_pids if database.backend == "postgres" else None
                    result = load.run_mix(
                        requests,
                        concurrency,
                        args.duration,
                        server_pid=server.pid,
                        db_pids=db_pids,
                    )
                    result.update(label=label, round=round_no)
                    runs.append(result)
                    _progress(
                        f"round {round_no + 1} c={concurrency} {label}: {result['rps']:.0f} req/s "
                        f"p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms "
                        f"errors {result['errors']}"
                    )
                    time.sleep(1)
    rows = _summarise(runs, [t[0] for t in targets], concurrencies)
    print(_render(rows, args))
    if not args.no_save:
        document = {
            "machine": machine,
            "settings": vars(args) | {"postgres_url": None},
            "rows": rows,
            "runs": runs,
        }
        print(f"wrote {save('scale', stamp, document)}")
    return 0


def _summarise(
    runs: list[dict[str, Any]], labels: list[str], concurrencies: list[int]
) -> list[dict[str, Any]]:
    rows = []
    for concurrency in concurrencies:
        for label in labels:
            group = [r for r in runs if r["label"] == label and r["c"] == concurrency]
            row: dict[str, Any] = {
                "label": label,
                "c": concurrency,
                "rps": statistics.median(r["rps"] for r in group),
                "p50_ms": statistics.median(r["p50_ms"] for r in group),
                "p99_ms": statistics.median(r["p99_ms"] for r in group),
                "errors": sum(r["errors"] for r in group),
            }
            for field in ("cpu_us_per_req", "db_cpu_us_per_req"):
                if all(field in r for r in group):
                    row[field] = statistics.median(r[field] for r in group)
            rows.append(row)
    return rows


def _render(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    width = max(len(r["label"]) for r in rows) + 2
    lines = [
        f"token issuance vs registered clients ({args.backend}; medians of {args.rounds} "
        f"alternating rounds x {args.duration} s)",
        f"{'database holds':<{width}}{'c':>3}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'errors':>7}{'cpu us/req':>11}{'db us/req':>10}",
    ]
    for row in rows:
        cpu = row.get("cpu_us_per_req")
        db = row.get("db_cpu_us_per_req")
        lines.append(
            f"{row['label']:<{width}}{row['c']:>3}{row['rps']:>9,.0f}{row['p50_ms']:>8.2f}"
            f"{row['p99_ms']:>8.2f}{row['errors']:>7}"
            f"{'-' if cpu is None else format(cpu, ',.0f'):>11}"
            f"{'-' if db is None else format(db, ',.0f'):>10}"
        )
    return "\n".join(lines)
