"""The servers a benchmark measures: keyswap (`keyswap serve`), its database, and the reference.

- ``Database``: a temporary SQLite file, or a fresh PostgreSQL database created for the run
  and dropped after it.
- ``KeyswapServer``: ``keyswap serve`` on 127.0.0.1 in its own process group, with its own data
  directory and key-encryption key; principals are created through the ``keyswap`` CLI.
- ``OidcAnchor``: panva's node-oidc-provider, started and stopped by ``anchors.sh``.

Rate limits stay on, raised far above any load generated here, so the limiter's own cost is
part of every figure while it never answers 429.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from .load import token_request

#: Where PostgreSQL databases for a run are created (trust auth on loopback).
POSTGRES_ENV = "KEYSWAP_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
#: Far above what two cores can serve, so no request is refused, yet the limiter runs.
BENCH_RATE_LIMIT = "1000000/second"
SCOPE = "orders:read orders:write"
TOKEN_SCOPE = "orders:read"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Database:
    """A throwaway database for one server: ``sqlite`` (a file) or ``postgres`` (a new database)."""

    def __init__(self, backend: str, workdir: Path, admin_url: str | None = None) -> None:
        if backend not in ("sqlite", "postgres"):
            raise ValueError(f"unknown backend {backend!r}: sqlite or postgres")
        self.backend = backend
        self._workdir = workdir
        admin = admin_url or os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES
        self._admin = make_url(admin).set(drivername="postgresql+psycopg")
        self._name = f"keyswap_bench_{secrets.token_hex(4)}"
        self.url = ""

    def __enter__(self) -> Database:
        if self.backend == "sqlite":
            self.url = f"sqlite:///{self._workdir / f'{self._name}.db'}"
            return self
        with self._admin_engine() as connection:
            connection.execute(text(f'CREATE DATABASE "{self._name}"'))
        url = self._admin.set(database=self._name).render_as_string(hide_password=False)
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.backend == "postgres" and self.url:
            with self._admin_engine() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)'))

    def _admin_engine(self) -> Any:
        engine = create_engine(self._admin, isolation_level="AUTOCOMMIT")
        connection = engine.connect()
        # Close the connection and the pool together.
        connection.info["engine"] = engine
        return _Closing(connection)

    def backend_pids(self) -> list[int]:
        """Return the PostgreSQL backend processes connected to this database (none for SQLite)."""
        if self.backend != "postgres":
            return []
        with self._admin_engine() as connection:
            rows = connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
                {"name": self._name},
            )
            return [int(pid) for (pid,) in rows]


class _Closing:
    """Use a connection in ``with``, disposing its engine after."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def __enter__(self) -> Any:
        return self._connection

    def __exit__(self, *exc: object) -> None:
        engine = self._connection.info.pop("engine")
        self._connection.close()
        engine.dispose()


@dataclass(frozen=True)
class Principals:
    """The credentials a benchmark uses; secrets stay in memory and are never printed."""

    client_id: str
    client_secret: str
    introspector_id: str
    introspector_secret: str
    api_key: str


class KeyswapServer:
    """``keyswap serve`` on 127.0.0.1 with its own data directory, database and KEK."""

    def __init__(
        self,
        name: str,
        database: Database,
        workdir: Path,
        *,
        workers: int | None = None,
        threads: int = 1,
        kek: str | None = None,
    ) -> None:
        self.name = name
        self.database = database
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.threads = threads
        self._data = workdir / f"data-{name}"
        self._data.mkdir(parents=True, exist_ok=True)
        self._log_path = workdir / f"server-{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.kek = kek or _new_kek()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSWAP_")}
        env.update(
            KEYSWAP_DATA_DIR=str(self._data),
            KEYSWAP_DATABASE_URL=database.url,
            KEYSWAP_ISSUER=self.url,
            KEYSWAP_KEY_ENCRYPTION_KEY=self.kek,
            KEYSWAP_RATE_LIMIT_CLIENT=BENCH_RATE_LIMIT,
            KEYSWAP_RATE_LIMIT_ADDRESS=BENCH_RATE_LIMIT,
        )
        self.env = env

    @property
    def pid(self) -> int:
        """Return the server's main process id."""
        if self._process is None:
            raise RuntimeError("server not started")
        return self._process.pid

    def cli(self, *args: str) -> Any:
        """Run ``keyswap ARGS --json`` against this server's database; return the parsed output."""
        command = [sys.executable, "-m", "keyswap.issuer.cli", *args, "--json"]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            # stderr carries the message only; stdout may hold a secret, so it is not shown.
            raise RuntimeError(f"keyswap {shlex.join(args[:2])} failed: {done.stderr.strip()}")
        return json.loads(done.stdout) if done.stdout.strip() else None

    def create_principals(self, *, token_ttl: int | None = None) -> Principals:
        """Create a tenant, a service account, a client, an introspecting client, a legacy key."""
        self.cli("db", "upgrade")
        self.cli("tenants", "create", "bench")
        self.cli("users", "create", "bench-svc", "--tenant", "bench", "--service-account")
        ttl = ["--token-ttl", str(token_ttl)] if token_ttl else []
        client = self.cli("clients", "create", "--owner", "bench-svc", "--scope", SCOPE, *ttl)
        introspector = self.cli(
            "clients", "create", "--owner", "bench-svc", "--scope", TOKEN_SCOPE, "--can-introspect"
        )
        api_key = f"bench_{secrets.token_urlsafe(24)}"
        csv = self._data / "legacy.csv"
        fd = os.open(csv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"api_key,owner,scopes\n{api_key},bench-svc,{TOKEN_SCOPE}\n")
        try:
            self.cli("legacy", "import", str(csv))
        finally:
            csv.unlink()
        return Principals(
            client_id=client["client_id"],
            client_secret=client["client_secret"],
            introspector_id=introspector["client_id"],
            introspector_secret=introspector["client_secret"],
            api_key=api_key,
        )

    def issue_token(self, principals: Principals) -> str:
        """Return a fresh access token for the benchmark client (to introspect)."""
        request = token_request(
            f"{self.url}/oauth/token", principals.client_id, principals.client_secret, TOKEN_SCOPE
        )
        http = urllib.request.Request(request.url, request.body.encode(), request.headers)
        with urllib.request.urlopen(http, timeout=10) as response:
            token: str = json.load(response)["access_token"]
            return token

    def start(self, timeout: float = 60.0) -> None:
        """Start ``keyswap serve`` and wait until ``/readyz`` answers 200."""
        command = [sys.executable, "-m", "keyswap.issuer.cli", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--threads", str(self.threads)]
        if self.workers:
            command += ["--workers", str(self.workers)]
        with open(self._log_path, "wb") as log:
            self._process = subprocess.Popen(
                command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"keyswap serve exited: {self.log_tail()}")
            if _ready(f"{self.url}/readyz"):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"keyswap serve not ready after {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """Return the end of the server's log (the server log; no access log)."""
        try:
            return "\n".join(self._log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM to its main process), or kill its process group."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group this server was started in
            process.wait(timeout=5)

    def __enter__(self) -> KeyswapServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _new_kek() -> str:
    from keyswap import jwks

    kek: str = jwks.generate_kek()
    return kek


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class OidcAnchor:
    """panva's node-oidc-provider, started by ``anchors.sh start oidc`` and stopped after.

    If ``anchors.sh`` finds it already running (someone else started it), it is used but
    left running.
    """

    def __init__(self, anchors: Path) -> None:
        self._script = anchors / "anchors.sh"
        self.env: dict[str, str] = {}
        self._started = False

    def __enter__(self) -> OidcAnchor:
        done = subprocess.run(
            [str(self._script), "start", "oidc"], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"anchors.sh start oidc failed: {done.stderr.strip()[-500:]}")
        self._started = "already running" not in done.stderr
        for line in done.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                self.env[key] = shlex.split(value)[0] if value else ""
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            subprocess.run(
                [str(self._script), "stop", "oidc"], capture_output=True, text=True, check=False
            )

    @property
    def pid(self) -> int:
        """Return the node process id (for its CPU per request)."""
        return int(self.env["OIDC_PID"])


class FloorServer:
    """The framework floor (``bench/floor_app.py``) under granian, with keyswap's workers.

    Flask and Authlib's client-credentials grant with one in-memory client and nothing of
    keyswap's work: what a token costs in the framework keyswap is built on. Given a
    database, it adds one live status read per token: the floor for a live check.
    """

    def __init__(
        self,
        workers: int,
        threads: int = 1,
        *,
        database_url: str | None = None,
        live_client_id: str | None = None,
    ) -> None:
        """``database_url`` and ``live_client_id``: one live status read per token (floor_app)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = "floor-client"
        self.client_secret = secrets.token_urlsafe(24)
        self._workers = workers
        self._threads = threads
        self._live = (
            {"FLOOR_DATABASE_URL": database_url, "FLOOR_LIVE_CLIENT_ID": live_client_id or ""}
            if database_url
            else {}
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """Return granian's main process id (its workers are counted with it)."""
        if self._process is None:
            raise RuntimeError("floor not started")
        return self._process.pid

    def __enter__(self) -> FloorServer:
        env = dict(
            os.environ,
            FLOOR_CLIENT_ID=self.client_id,
            FLOOR_CLIENT_SECRET=self.client_secret,
            FLOOR_ISSUER=self.url,
            AUTHLIB_INSECURE_TRANSPORT="1",  # plain HTTP on 127.0.0.1, as keyswap's bench
            PYTHONPATH=str(Path(__file__).resolve().parent.parent),
            **self._live,
        )
        command = [sys.executable, "-m", "granian", "--interface", "wsgi"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--no-ws"]
        command += ["--workers", str(self._workers), "--blocking-threads", str(self._threads)]
        command += ["--log-level", "warning", "--no-access-log", "bench.floor_app:app"]
        self._process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("the floor server exited")
            if _answers(self.url + "/oauth/token"):
                return self
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("the floor server did not start within 30 s")

    def __exit__(self, *exc: object) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _answers(url: str) -> bool:
    # A GET on the token endpoint: any HTTP answer (405) means it is serving.
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False
