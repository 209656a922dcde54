"""Drive load with wrk through the shared harness, and read process CPU and memory from /proc.

The harness is ``run_load.py`` in the anchors directory (``bench/anchors`` unless
``--anchors`` or ``KEYSWAP_BENCH_ANCHORS`` says otherwise). It writes the wrk Lua script for
one request, bounds every run in time and in requests, checks each response body, and
measures the server process tree's CPU. This module loads it once and adds what keyswap's
benchmarks need on top: a request builder per endpoint, database-backend CPU, and a run that
cycles through several requests (the soak test, and issuance over many clients).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

#: Environment variable naming the anchors directory (the reference servers and harness).
ANCHORS_ENV = "KEYSWAP_BENCH_ANCHORS"
#: Shipped in the repository, so a fresh clone can run the suite (``anchors.sh setup`` once).
DEFAULT_ANCHORS = Path(__file__).resolve().parent / "anchors"
#: RFC 8693 token exchange of a legacy key (CONTRACT "Token endpoint grants").
EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
API_KEY_TOKEN_TYPE = "urn:keyswap:params:oauth:token-type:api-key"

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_FORM = "application/x-www-form-urlencoded"


def anchors_dir(value: str | None = None) -> Path:
    """Return the anchors directory: ``value``, else ``$KEYSWAP_BENCH_ANCHORS``, else default."""
    path = Path(value or os.environ.get(ANCHORS_ENV) or DEFAULT_ANCHORS)
    if not (path / "run_load.py").is_file():
        raise SystemExit(f"no run_load.py in {path}: pass --anchors DIR (see bench/suite.py)")
    return path


def load_harness(anchors: Path) -> ModuleType:
    """Import ``run_load.py`` from ``anchors`` without writing bytecode next to it."""
    spec = importlib.util.spec_from_file_location("run_load", anchors / "run_load.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {anchors / 'run_load.py'}")
    module = importlib.util.module_from_spec(spec)
    # The shared directory is meant to stay read-only: no __pycache__ in it.
    previous, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = previous
    if shutil.which("wrk") is None:
        raise SystemExit(f"wrk not found: run {anchors / 'anchors.sh'} setup")
    return module


@dataclass(frozen=True)
class Request:
    """One HTTP request to replay, and the marker every 2xx body must contain."""

    kind: str
    method: str
    url: str
    body: str
    headers: dict[str, str]
    expect: str


def basic_auth(client_id: str, secret: str) -> str:
    """Return an HTTP Basic header value, form-encoding id and secret first (RFC 6749 §2.3.1)."""
    import base64

    raw = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def token_request(url: str, client_id: str, secret: str, scope: str | None) -> Request:
    """Build a client_credentials request with client_secret_basic."""
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    headers = {
        "Accept": "application/json",
        "Content-Type": _FORM,
        "Authorization": basic_auth(client_id, secret),
    }
    return Request("token", "POST", url, urllib.parse.urlencode(form), headers, "access_token")


def exchange_request(url: str, api_key: str, scope: str | None = None) -> Request:
    """Build an RFC 8693 exchange of a legacy API key (the key is the credential)."""
    form = {
        "grant_type": EXCHANGE_GRANT,
        "subject_token_type": API_KEY_TOKEN_TYPE,
        "subject_token": api_key,
    }
    if scope:
        form["scope"] = scope
    headers = {"Accept": "application/json", "Content-Type": _FORM}
    return Request("exchange", "POST", url, urllib.parse.urlencode(form), headers, "access_token")


def introspect_request(url: str, client_id: str, secret: str, token: str) -> Request:
    """Build an RFC 7662 introspection request for ``token``; the answer must be active."""
    headers = {
        "Accept": "application/json",
        "Content-Type": _FORM,
        "Authorization": basic_auth(client_id, secret),
    }
    body = urllib.parse.urlencode({"token": token})
    return Request("introspect", "POST", url, body, headers, '"active":true')


def get_request(url: str, expect: str, kind: str = "jwks") -> Request:
    """Build a GET (the JWK Set) whose body must contain ``expect``."""
    return Request(kind, "GET", url, "", {"Accept": "application/json"}, expect)


def check(harness: ModuleType, request: Request, count: int = 3) -> str:
    """Send ``count`` requests with urllib and exit unless each is a 2xx with the marker."""
    expect = request.expect
    if request.kind == "introspect":
        # JSON spacing differs between servers; the harness finds how this one spells it.
        expect = harness.pick_active_marker(request.url, request.body, request.headers)
    result: str = harness.sample_check(
        request.url, request.method, request.body, request.headers, expect, count, request.kind
    )
    return result


def measure(
    harness: ModuleType,
    request: Request,
    concurrency: int,
    duration: int,
    *,
    label: str,
    server_pid: int | None = None,
    db_pids: Callable[[], Iterable[int]] | None = None,
    max_requests: int = 2_000_000,
    threads: int = 1,
    timeout: int = 10,
) -> dict[str, Any]:
    """Run wrk once with ``request``; return the harness's result plus database CPU per request.

    ``server_pid`` is the root of the server's process tree (the server's main process, whose
    workers are counted too). ``db_pids`` lists the database backends serving it, whose CPU
    the process tree does not include.
    """
    expect = request.expect
    if request.kind == "introspect":
        expect = harness.pick_active_marker(request.url, request.body, request.headers)
    before = cpu_by_pid(db_pids()) if db_pids else {}
    result: dict[str, Any] = harness.run_wrk(
        request.url,
        request.method,
        request.body,
        request.headers,
        expect,
        concurrency,
        duration,
        threads,
        max_requests,
        timeout,
        label,
        request.kind,
        server_pid=server_pid,
    )
    if db_pids is not None:
        after = cpu_by_pid(db_pids())
        # A backend opened during the run started from zero CPU.
        spent = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
        result["db_cpu_s"] = spent
        result["db_cpu_us_per_req"] = 1e6 * spent / result["n"] if result["n"] else 0.0
    result["errors"] = result["non2xx"] + result["bad_body"] + result["sock_err"]
    return result


def cpu_by_pid(pids: Iterable[int]) -> dict[int, float]:
    """Return user+system CPU seconds of each live process in ``pids`` (proc(5) fields 14, 15)."""
    seconds = {}
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        seconds[pid] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return seconds


def child_pids(pid: int) -> list[int]:
    """Return the direct children of ``pid`` (a server's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in children.read_text().split()]
    except OSError:
        return []


def rss_bytes(pid: int) -> int | None:
    """Return the resident set size of ``pid``, or None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# A wrk script that cycles through several prepared requests (each thread from a different
# starting point) and reports the same figures as the harness's single-request script.
_MIX_LUA = r"""
local requests = {}
local threads = {}
local specs = %(specs)s
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  for i, s in ipairs(specs) do
    requests[i] = wrk.format(s[1], s[2], s[3], s[4])
  end
  counter = id or 0
  non2xx = 0
  seen = 0
end
function request()
  counter = counter + 1
  return requests[(counter %% #requests) + 1]
end
function response(status, headers, body)
  seen = seen + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end
function done(summary, latency, requests)
  local n2 = 0
  for _, t in ipairs(threads) do
    n2 = n2 + (t:get("non2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"sock_err":%%d,"non2xx":%%d,' ..
    '"lat_p50_us":%%d,"lat_p99_us":%%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, n2,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def _lua_spec(request: Request) -> str:
    parts = urllib.parse.urlsplit(request.url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = ", ".join(
        f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in request.headers.items()
    )
    body = _lua_string(request.body) if request.body else "nil"
    return f"{{{_lua_string(request.method)}, {_lua_string(path)}, {{{headers}}}, {body}}}"


def run_mix(
    requests: Sequence[Request],
    concurrency: int,
    duration: int,
    *,
    server_pid: int | None = None,
    db_pids: Callable[[], Iterable[int]] | None = None,
    threads: int = 1,
    timeout: int = 10,
) -> dict[str, Any]:
    """Run wrk for ``duration`` seconds cycling through ``requests`` (all on one host).

    Counts non-2xx answers only (the bodies differ per request); returns req/s, p50, p99,
    errors and, with ``server_pid`` and ``db_pids`` as for ``measure``, CPU per request.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found")
    base = urllib.parse.urlsplit(requests[0].url)
    if not base.netloc.startswith(("127.", "localhost")):
        raise SystemExit(f"refusing non-loopback target {requests[0].url!r}")
    specs = "{" + ", ".join(_lua_spec(r) for r in requests) + "}"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_MIX_LUA % {"specs": specs})
    wrk_threads = max(1, min(threads, concurrency))
    command = [
        wrk,
        "-t",
        str(wrk_threads),
        "-c",
        str(concurrency),
        "-d",
        f"{duration}s",
        "--timeout",
        f"{timeout}s",
        "-s",
        script.name,
        f"{base.scheme}://{base.netloc}/",
    ]
    cpu_before = _tree_cpu(server_pid)
    db_before = cpu_by_pid(db_pids()) if db_pids else {}
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + 15, check=False
        )
    finally:
        os.unlink(script.name)
    cpu_after = _tree_cpu(server_pid)
    db_after = cpu_by_pid(db_pids()) if db_pids else {}
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise SystemExit(
            f"wrk failed rc={done.returncode}: {done.stdout[-500:]} {done.stderr[-500:]}"
        )
    raw = json.loads(line[len("WRKJSON ") :])
    seconds = raw["duration_us"] / 1e6 or (time.monotonic() - started)
    result: dict[str, Any] = {
        "c": concurrency,
        "d": duration,
        "n": raw["requests"],
        "rps": raw["requests"] / seconds,
        "p50_ms": raw["lat_p50_us"] / 1000,
        "p99_ms": raw["lat_p99_us"] / 1000,
        "non2xx": raw["non2xx"],
        "sock_err": raw["sock_err"],
        "errors": raw["non2xx"] + raw["sock_err"],
    }
    if server_pid is not None and raw["requests"]:
        result["cpu_us_per_req"] = 1e6 * (cpu_after - cpu_before) / raw["requests"]
    if db_pids is not None and raw["requests"]:
        spent = sum(seconds - db_before.get(pid, 0.0) for pid, seconds in db_after.items())
        result["db_cpu_us_per_req"] = 1e6 * spent / raw["requests"]
    return result


def _tree_cpu(root: int | None) -> float:
    if root is None:
        return 0.0
    pids = [root, *child_pids(root)]
    return sum(cpu_by_pid(pids).values())
