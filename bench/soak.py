"""Memory soak: load one server worker for N minutes and watch its resident memory.

Starts ``keyswap serve --workers 1`` on a scratch database and drives it with wrk, cycling
through a token request, a legacy-key exchange, an introspection and a JWKS fetch, in
one-minute segments (each with a freshly issued token to introspect). Every few seconds it
samples the worker's RSS from /proc. It prints the RSS at start, at the end of warm-up, at
the end and at most, and the slope after warm-up (least squares, MiB per minute): flat
means below about 1 MiB/min. A worker that restarted (a different pid) is reported.

    python -m bench soak [--minutes 5] [--backend sqlite|postgres] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import load
from .report import machine_info, save
from .servers import TOKEN_SCOPE, Database, KeyswapServer, Principals

MIB = 1024 * 1024


class RssSampler(threading.Thread):
    """Sample the RSS of the server's (single) worker every ``interval`` seconds."""

    def __init__(self, master: int, interval: float) -> None:
        super().__init__(daemon=True)
        self._master = master
        self._interval = interval
        self._stop_event = threading.Event()
        self.started_at = time.monotonic()
        #: (seconds since start, worker pid, RSS bytes)
        self.samples: list[tuple[float, int, int]] = []

    def run(self) -> None:
        """Sample until stopped."""
        while not self._stop_event.is_set():
            workers = load.child_pids(self._master)
            if workers:
                rss = load.rss_bytes(workers[0])
                if rss is not None:
                    elapsed = time.monotonic() - self.started_at
                    self.samples.append((elapsed, workers[0], rss))
            self._stop_event.wait(self._interval)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop_event.set()
        self.join()


def _requests(server: KeyswapServer, principals: Principals) -> list[load.Request]:
    token_url = f"{server.url}/oauth/token"
    token = load.token_request(
        token_url, principals.client_id, principals.client_secret, TOKEN_SCOPE
    )
    introspect = load.introspect_request(
        f"{server.url}/oauth/introspect",
        principals.introspector_id,
        principals.introspector_secret,
        server.issue_token(principals),
    )
    return [
        token,
        load.exchange_request(token_url, principals.api_key),
        introspect,
        load.get_request(f"{server.url}/jwks.json", '"keys"'),
    ]


def slope_mib_per_minute(samples: list[tuple[float, int, int]]) -> float | None:
    """Return the least-squares slope of RSS over time, in MiB per minute."""
    if len(samples) < 3:
        return None
    times = [t / 60 for t, _, _ in samples]
    sizes = [rss / MIB for _, _, rss in samples]
    return statistics.linear_regression(times, sizes).slope


def summarise(samples: list[tuple[float, int, int]], warmup: float) -> dict[str, Any]:
    """Return start, warm-up end, end, max RSS (MiB) and the slopes before and after warm-up."""
    settled = [s for s in samples if s[0] >= warmup]
    return {
        "samples": len(samples),
        "worker_pids": sorted({pid for _, pid, _ in samples}),
        "rss_start_mib": samples[0][2] / MIB,
        "rss_after_warmup_mib": settled[0][2] / MIB if settled else None,
        "rss_end_mib": samples[-1][2] / MIB,
        "rss_max_mib": max(rss for _, _, rss in samples) / MIB,
        "slope_all_mib_per_min": slope_mib_per_minute(samples),
        "slope_after_warmup_mib_per_min": slope_mib_per_minute(settled),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print the RSS figures and write ``bench/results/soak-<time>.json``."""
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds left out of the slope")
    parser.add_argument("--segment", type=int, default=60, help="seconds per wrk run")
    parser.add_argument("--postgres-url", help="admin URL where a scratch database is created")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    machine = machine_info()
    total = args.minutes * 60
    segments: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="keyswap-soak-") as tmp,
        Database(args.backend, Path(tmp), args.postgres_url) as database,
        KeyswapServer("soak", database, Path(tmp), workers=1) as server,
    ):
        principals = server.create_principals()
        server.start()
        sampler = RssSampler(server.pid, args.interval)
        sampler.start()
        try:
            while (left := total - (time.monotonic() - sampler.started_at)) >= 1:
                duration = int(min(args.segment, left))
                result = load.run_mix(
                    _requests(server, principals),
                    args.concurrency,
                    duration,
                    server_pid=server.pid,
                )
                segments.append(result)
                print(
                    f"# {time.monotonic() - sampler.started_at:6.0f} s: {result['rps']:.0f} req/s, "
                    f"{result['errors']} errors, worker RSS "
                    f"{sampler.samples[-1][2] / MIB if sampler.samples else 0:.1f} MiB",
                    flush=True,
                )
        finally:
            sampler.stop()
    summary = summarise(sampler.samples, args.warmup)
    requests = sum(s["n"] for s in segments)
    errors = sum(s["errors"] for s in segments)
    slope = summary["slope_after_warmup_mib_per_min"]
    print(
        f"soak: {args.minutes:g} min on {args.backend}, 1 worker, c={args.concurrency}, "
        f"{requests:,} requests ({requests / total:,.0f}/s), {errors} errors; "
        f"worker RSS start {summary['rss_start_mib']:.1f} MiB, after {args.warmup:.0f} s warm-up "
        f"{summary['rss_after_warmup_mib'] or 0:.1f}, end {summary['rss_end_mib']:.1f}, "
        f"max {summary['rss_max_mib']:.1f}; slope after warm-up "
        + ("-" if slope is None else f"{slope:+.2f} MiB/min")
        + (" (flat)" if slope is not None and abs(slope) < 1 else "")
        + (
            f"; worker restarted: pids {summary['worker_pids']}"
            if len(summary["worker_pids"]) > 1
            else ""
        )
    )
    if not args.no_save:
        document = {
            "machine": machine,
            "settings": vars(args) | {"postgres_url": None},
            "summary": summary | {"requests": requests, "errors": errors},
            "segments": segments,
            "samples": [{"t": t, "pid": pid, "rss": rss} for t, pid, rss in sampler.samples],
        }
        print(f"wrote {save('soak', stamp, document)}")
    return 0
