"""The benchmark suite: keyswap's endpoints under load, next to the raw ES256 limit and a reference.

One command starts ``keyswap serve`` (granian workers) on 127.0.0.1 for each database backend,
creates a tenant, a service account, a client, an introspecting client and a legacy key
through the ``keyswap`` CLI, and drives each endpoint with wrk (through the shared harness
``run_load.py``) at each concurrency:

- token: ``client_credentials`` with ``client_secret_basic``;
- exchange: RFC 8693 exchange of the imported legacy key;
- introspect: RFC 7662 introspection of a fresh token by the introspecting client;
- jwks: ``GET /jwks.json``.

Beside them, in the same run: the raw limit, ES256 signatures per second on one core
(``cryptography``, one thread, a token-sized payload), measured at the start and at the end;
and panva's node-oidc-provider (started by ``anchors.sh``) doing the same client-credentials
grant. Every load step is repeated in alternating rounds (keyswap and the reference run
back to back, the order reversed each round) because this machine's speed drifts; the table
shows medians. Server CPU per request is the server process and its workers' CPU time from
/proc over the step, divided by the requests served; PostgreSQL backends' CPU is a separate
column. Results are written to ``bench/results/suite-<UTC time>.json``.

    python -m bench [--quick] [--duration S] [--rounds N] [--concurrency 1,8,32]
                    [--backends sqlite,postgres] [--endpoints token,exchange,introspect,jwks]
                    [--workers N] [--no-anchor] [--anchors DIR] [--no-save]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from . import load
from .report import (
    ENDPOINTS,
    FLOOR,
    FLOOR_READ,
    REFERENCE,
    machine_info,
    render,
    save,
    summarise,
    verdict,
)
from .servers import TOKEN_SCOPE, Database, FloorServer, KeyswapServer, OidcAnchor, Principals

# A realistic RFC 9068 signing input: base64url header "." base64url claims, about 450 bytes.
_PAYLOAD = (
    b"eyJhbGciOiJFUzI1NiIsImtpZCI6IkkxQ2NBRXdfN3hQTkQ4c3BlRFRTaHJUT0dWOFZ1RkhwWFRNREtuUGU5OGsi"
    b"LCJ0eXAiOiJhdCtqd3QifQ."
    + b"eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjgwMDAiLCJzdWIiOiJzdmNfMDFIWjhFM0tHNlE3WVZXOUZQUjJN"
    * 4
)


def es256_signatures_per_second(seconds: float) -> float:
    """Return ES256 signatures per second on this thread over ``seconds`` (the raw limit)."""
    key = ec.generate_private_key(ec.SECP256R1())
    algorithm = ec.ECDSA(hashes.SHA256())
    for _ in range(200):  # warm the code path before timing
        key.sign(_PAYLOAD, algorithm)
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(100):
            key.sign(_PAYLOAD, algorithm)
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


@dataclass
class Target:
    """One load step's subject: a server's endpoint, how to build its request, whose CPU to read."""

    server: str
    database: str
    endpoint: str
    build: Callable[[], load.Request]
    server_pid: int
    db_pids: Callable[[], Iterable[int]] | None = None

    @property
    def label(self) -> str:
        """Return ``server/database/endpoint``, the key of its rows."""
        return f"{self.server}/{self.database}/{self.endpoint}"


def keyswap_targets(
    server: KeyswapServer, principals: Principals, database: Database, endpoints: Iterable[str]
) -> list[Target]:
    """Return the load targets for one keyswap server, in ``ENDPOINTS`` order."""
    url = server.url

    def introspect() -> load.Request:
        # A new token per step: a step outlasting the token's 300 s would measure "inactive".
        return load.introspect_request(
            f"{url}/oauth/introspect",
            principals.introspector_id,
            principals.introspector_secret,
            server.issue_token(principals),
        )

    builders: dict[str, Callable[[], load.Request]] = {
        "token": lambda: load.token_request(
            f"{url}/oauth/token", principals.client_id, principals.client_secret, TOKEN_SCOPE
        ),
        "exchange": lambda: load.exchange_request(f"{url}/oauth/token", principals.api_key),
        "introspect": introspect,
        "jwks": lambda: load.get_request(f"{url}/jwks.json", '"keys"'),
    }
    db_pids = database.backend_pids if database.backend == "postgres" else None
    return [
        Target("keyswap", database.backend, name, builders[name], server.pid, db_pids)
        for name in ENDPOINTS
        if name in endpoints
    ]


def anchor_target(anchor: OidcAnchor) -> Target:
    """Return the reference's client-credentials target."""
    env = anchor.env
    return Target(
        REFERENCE,
        "memory",
        "token",
        lambda: load.token_request(
            env["OIDC_TOKEN_URL"], env["OIDC_CLIENT_ID"], env["OIDC_CLIENT_SECRET"], TOKEN_SCOPE
        ),
        anchor.pid,
    )


def floor_target(floor: FloorServer, database: Database | None = None) -> Target:
    """Return a framework floor's client-credentials target (with ``database``: live reads)."""
    return Target(
        FLOOR_READ if database else FLOOR,
        database.backend if database else "memory",
        "token",
        lambda: load.token_request(
            f"{floor.url}/oauth/token", floor.client_id, floor.client_secret, TOKEN_SCOPE
        ),
        floor.pid,
        database.backend_pids if database else None,
    )


def order_targets(keyswap: list[Target], *others: Target | None) -> list[Target]:
    """Put the reference and the floor right after keyswap's PostgreSQL (else last) token step.

    Back-to-back steps see the same machine speed; reversing the list each round keeps
    them neighbours.
    """
    extra = [target for target in others if target is not None]
    if not extra:
        return keyswap
    tokens = [i for i, t in enumerate(keyswap) if t.endpoint == "token"]
    pg = [i for i in tokens if keyswap[i].database == "postgres"]
    at = (pg or tokens or [len(keyswap) - 1])[-1] + 1
    return [*keyswap[:at], *extra, *keyswap[at:]]


def run_rounds(
    harness: ModuleType, targets: list[Target], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Warm each target up, then run every (concurrency, target) step in alternating rounds."""
    concurrencies = args.concurrency
    for target in targets:
        request = target.build()
        _progress(f"check {target.label}: {load.check(harness, request)}")
        if args.warmup:
            load.measure(harness, request, max(concurrencies), args.warmup, label="warmup")
    runs = []
    for round_no in range(args.rounds):
        ordered = targets if round_no % 2 == 0 else list(reversed(targets))
        for concurrency in concurrencies:
            for target in ordered:
                result = load.measure(
                    harness,
                    target.build(),
                    concurrency,
                    args.duration,
                    label=target.label,
                    server_pid=target.server_pid,
                    db_pids=target.db_pids,
                    threads=args.wrk_threads,
                )
                result.update(
                    round=round_no,
                    server=target.server,
                    database=target.database,
                    endpoint=target.endpoint,
                )
                _progress(f"round {round_no + 1}/{args.rounds} " + harness.fmt(result))
                runs.append(result)
                time.sleep(args.pause)
    return runs


def _progress(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def _concurrencies(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def _names(allowed: Iterable[str]) -> Callable[[str], list[str]]:
    allowed = tuple(allowed)

    def parse(text: str) -> list[str]:
        names = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return names

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the suite's options; ``--quick`` lowers the defaults of duration, rounds, warm-up."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="3 s steps, 1 round, 1 s warm-up")
    parser.add_argument("--duration", type=int, help="seconds per load step (default 10)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3)")
    parser.add_argument("--warmup", type=int, help="discarded seconds per target (default 3)")
    parser.add_argument("--concurrency", type=_concurrencies, default=[1, 8, 32])
    parser.add_argument(
        "--backends", type=_names(("sqlite", "postgres")), default=["sqlite", "postgres"]
    )
    parser.add_argument("--endpoints", type=_names(ENDPOINTS), default=list(ENDPOINTS))
    parser.add_argument("--workers", type=int, help="server workers (default: keyswap's own)")
    parser.add_argument("--threads", type=int, default=1, help="request threads per worker")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between steps")
    parser.add_argument("--no-anchor", action="store_true", help="skip the node-oidc-provider")
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the Flask + Authlib floors (token only)"
    )
    parser.add_argument(
        "--anchors",
        help=f"anchors directory (default ${load.ANCHORS_ENV} or {load.DEFAULT_ANCHORS})",
    )
    parser.add_argument("--postgres-url", help="admin URL where a scratch database is created")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (3 if quick else 10)
    args.rounds = args.rounds or (1 if quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    return args


def _default_workers() -> int:
    # What ``keyswap serve`` picks without --workers: 1 per core, 2 to 8.
    return max(2, min(os.cpu_count() or 1, 8))


def main(argv: list[str] | None = None) -> int:
    """Run the suite; print the table and write ``bench/results/suite-<time>.json``."""
    args = parse_args(argv)
    anchors = load.anchors_dir(args.anchors)
    harness = load.load_harness(anchors)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    machine = machine_info(anchors)  # before the run: the code measured, not the code after
    meta: dict[str, Any] = {
        "workers": args.workers or _default_workers(),
        "threads": args.threads,
        "rounds": args.rounds,
        "duration": args.duration,
        "loadavg_start": os.getloadavg(),
    }
    es256_seconds = 1.0 if args.quick else 3.0
    es_start = es256_signatures_per_second(es256_seconds)
    _progress(f"ES256 raw limit at start: {es_start:,.0f}/s")
    with tempfile.TemporaryDirectory(prefix="keyswap-suite-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        targets: list[Target] = []
        live: tuple[Database, Principals] | None = None  # what the live-read floor reads
        for backend in args.backends:
            database = stack.enter_context(Database(backend, workdir, args.postgres_url))
            server = stack.enter_context(
                KeyswapServer(
                    backend, database, workdir, workers=args.workers, threads=args.threads
                )
            )
            principals = server.create_principals()
            server.start()
            _progress(f"keyswap on {backend} at {server.url} (pid {server.pid})")
            targets += keyswap_targets(server, principals, database, args.endpoints)
            if backend == "postgres":
                live = (database, principals)
        reference = None
        if not args.no_anchor:
            anchor = stack.enter_context(OidcAnchor(anchors))
            reference = anchor_target(anchor)
            _progress(f"{REFERENCE} at {anchor.env['OIDC_TOKEN_URL']} (pid {anchor.pid})")
        floor = floor_read = None
        if not args.no_floor and "token" in args.endpoints:
            workers = args.workers or _default_workers()
            floor = floor_target(stack.enter_context(FloorServer(workers, args.threads)))
            _progress(f"{FLOOR} floor at {floor.build().url}")
            if live is not None:
                database, principals = live
                reader = FloorServer(
                    workers,
                    args.threads,
                    database_url=database.url,
                    live_client_id=principals.client_id,
                )
                floor_read = floor_target(stack.enter_context(reader), database)
                _progress(f"{FLOOR_READ} floor at {floor_read.build().url}")
        targets = order_targets(targets, reference, floor, floor_read)
        runs = run_rounds(harness, targets, args)
    es_end = es256_signatures_per_second(es256_seconds)
    es256 = (es_start + es_end) / 2
    meta["es256"] = {"per_second": es256, "start": es_start, "end": es_end}
    meta["loadavg_end"] = os.getloadavg()
    rows = summarise(runs, es256)
    judged = verdict(rows)
    print(render(rows, meta, judged))
    if not args.no_save:
        document = {
            "machine": machine,
            "settings": {
                k: v for k, v in vars(args).items() if k not in ("anchors", "postgres_url")
            },
            **meta,
            "rows": rows,
            "verdict": judged,
            "runs": runs,
        }
        print(f"wrote {save('suite', stamp, document)}")
    return 0
