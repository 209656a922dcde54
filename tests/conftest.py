"""Shared fixtures: settings, app, live server over real HTTP, database, CLI runner.

The database is SQLite in a temporary directory unless ``KEYSWAP_TEST_DATABASE_URL``
names a PostgreSQL server: then a fresh database is created on it for this run and
dropped afterwards. ``.ci/run`` runs the suite both ways.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.serving import BaseWSGIServer, make_server

from keyswap.issuer import create_app
from keyswap.issuer.config import Settings
from keyswap.issuer.context import Keyswap
from keyswap.issuer.db import Base, transaction, upgrade_schema, utcnow
from keyswap.issuer.keyring import ensure_signing_key
from keyswap.issuer.legacy.usage import usage_for
from keyswap.issuer.lifecycle import add_user, register_client, set_tenant_status, set_user_status
from keyswap.issuer.models import AuthMethod, TenantStatus, UserKind, UserStatus
from keyswap.issuer.storage import NotFound, get_user

TEST_DATABASE_URL = os.environ.get("KEYSWAP_TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("KEYSWAP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
#: Tables the per-test cleanup keeps: the session-wide server's signing keys.
KEPT_TABLES = frozenset({"signing_keys"})
_real_connect = socket.socket.connect


# --- guards --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's KEYSWAP_* variables out of every test."""
    for name in list(os.environ):
        if name.startswith("KEYSWAP_"):
            monkeypatch.delenv(name)


def _is_local(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX socket path
        return True
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_only(self: socket.socket, address: Any) -> None:
    if not _is_local(address):
        raise OSError(f"tests may only connect to loopback addresses, not {address!r}")
    _real_connect(self, address)


@pytest.fixture(autouse=True)
def _refuse_non_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that tries to reach beyond this machine."""
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


# --- database ------------------------------------------------------------------------


class DatabaseFactory:
    """Makes empty databases for this run: SQLite files, or databases on the test PostgreSQL."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._created: list[str] = []
        self._admin = None
        if TEST_DATABASE_URL:
            admin_url = make_url(TEST_DATABASE_URL).set(drivername="postgresql+psycopg")
            self._admin_url = admin_url
            self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")

    @property
    def is_postgres(self) -> bool:
        """Tell whether the databases are PostgreSQL ones."""
        return self._admin is not None

    def create(self) -> str:
        """Return the URL of a new, empty database."""
        name = f"keyswap_test_{secrets.token_hex(4)}"
        if self._admin is None:
            return f"sqlite:///{self._tmp / (name + '.db')}"
        try:
            with self._admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # .ci/run checks PostgreSQL is up before the run
            pytest.exit(f"KEYSWAP_TEST_DATABASE_URL is set but unusable: {exc}", returncode=3)
        self._created.append(name)
        return self._admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        """Drop every database this factory made."""
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            for name in self._created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    """Yield the factory of empty databases; they are dropped at the end of the run."""
    factory = DatabaseFactory(tmp_path_factory.mktemp("db"))
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def database_url(databases: DatabaseFactory) -> str:
    """Return the URL of the session-wide server's database."""
    return databases.create()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Return the test Redis URL, or skip (under CI, fail) when it cannot be reached."""
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs Redis at {TEST_REDIS_URL}: {exc}")
        pytest.skip(f"no Redis at {TEST_REDIS_URL}: {exc}")
    finally:
        client.close()
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def kek() -> bytes:
    """Return this run's key-encryption key."""
    return secrets.token_bytes(32)


def make_settings(database_url: str, kek: bytes, data_dir: Path, **changes: Any) -> Settings:
    """Build test settings; ``changes`` override fields.

    Rate limits are off unless a test sets them: every test calls from 127.0.0.1, and
    many fail authentication on purpose.
    """
    limits_off = {
        f"rate_limit_{kind}": "off" for kind in ("client", "address", "failures", "unknown_keys")
    }
    base = Settings(data_dir=data_dir, database_url=database_url, key_encryption_key=kek)
    return base.with_changes(**{**limits_off, **changes})


# --- live server ---------------------------------------------------------------------


class _Dispatcher:
    """A WSGI app that forwards to whatever app is set, so the port is known first."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


@dataclass
class LiveServer:
    """A keyswap app served over real HTTP on 127.0.0.1."""

    app: Flask
    url: str
    #: None when the app is served elsewhere (e.g. by `keyswap serve` processes).
    server: BaseWSGIServer | None = None

    @property
    def keyswap(self) -> Keyswap:
        """Return the app's wiring."""
        return self.app.extensions["keyswap"]  # type: ignore[no-any-return]


@dataclass
class MovingClock:
    """An app's clock, stopped at its start and moved by hand (``isolated_issuer(clock)``)."""

    now: datetime = field(default_factory=utcnow)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def start_live_server(build: Callable[[str], Flask]) -> LiveServer:
    """Bind a port, build the app for that URL with ``build(url)``, serve it in a thread."""
    dispatcher = _Dispatcher()
    server = make_server("127.0.0.1", 0, dispatcher, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    dispatcher.app = build(url)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return LiveServer(app=dispatcher.app, url=url, server=server)


def prepared_app(settings: Settings, clock: Callable[[], datetime] = utcnow) -> Flask:
    """Create an app, migrate its database, and make sure it has a signing key."""
    app = create_app(settings, clock=clock)
    keyswap: Keyswap = app.extensions["keyswap"]
    upgrade_schema(keyswap.engine)
    with transaction(keyswap.sessions) as session:
        ensure_signing_key(session, keyswap.sealer, now=keyswap.clock())
    return app


@pytest.fixture(scope="session")
def live_server(
    database_url: str, kek: bytes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Serve one app for the whole run; tests get a clean database through ``db``."""
    data_dir = tmp_path_factory.mktemp("data")
    live = start_live_server(
        lambda url: prepared_app(make_settings(database_url, kek, data_dir, issuer=url))
    )
    yield live
    stop_live_server(live)


def stop_live_server(live: LiveServer) -> None:
    """Stop serving and release the app's connections."""
    if live.server is not None:
        live.server.shutdown()
        live.server.server_close()
    # Write pending legacy key counts while the database is still there.
    usage_for(live.app).close()
    live.keyswap.traffic.close()
    live.keyswap.dispose()


@pytest.fixture
def app(live_server: LiveServer, db: None) -> Flask:
    """Return the live server's app, on a clean database."""
    return live_server.app


@pytest.fixture
def settings(live_server: LiveServer) -> Settings:
    """Return the live server's settings."""
    return live_server.keyswap.settings


@pytest.fixture
def db(live_server: LiveServer) -> Iterator[None]:
    """Empty every table but the signing keys before the test."""
    with transaction(live_server.keyswap.sessions) as session:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in KEPT_TABLES:
                session.execute(table.delete())
    # Leased status blocks and served lists named rows that are gone now.
    live_server.keyswap.server.status_leases.forget()
    live_server.keyswap.status_lists.forget()
    yield


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Return Flask's test client (in-process, for non-HTTP checks)."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """Return a CLI runner bound to the app."""
    return app.test_cli_runner()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """Return a requests session closed after the test."""
    with requests.Session() as session:
        yield session


# --- issuer fixture for end-to-end tests ---------------------------------------------


@dataclass(frozen=True)
class Creds:
    """A registered client's credentials and owner."""

    client_id: str
    client_secret: str | None
    user: str
    tenant: str


class LiveIssuer:
    """A running issuer plus the admin actions tests need, done through
    ``keyswap.issuer.lifecycle``."""

    _names = itertools.count(1)

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.app = live.app
        self.url = live.url
        self.token_url = f"{live.url}/oauth/token"
        self.jwks_url = f"{live.url}/jwks.json"

    @property
    def keyswap(self) -> Keyswap:
        """Return the app's wiring."""
        return self.live.keyswap

    def create_client(
        self,
        *,
        scope: str = "orders:read orders:write",
        audience: list[str] | None = None,
        token_ttl: int | None = None,
        user: str | None = None,
        tenant: str = "acme",
        can_introspect: bool = False,
        any_tenant: bool = False,
        auth_method: AuthMethod = AuthMethod.CLIENT_SECRET_BASIC,
        service_account: bool = False,
    ) -> Creds:
        """Register a client (and its owner, if new) and return its credentials."""
        user = user or f"user-{next(self._names)}"
        kind = UserKind.SERVICE_ACCOUNT if service_account else UserKind.USER
        with transaction(self.keyswap.sessions) as session:
            try:
                owner = get_user(session, user)
            except NotFound:
                owner = add_user(session, user, tenant=tenant, kind=kind, actor="test")
            created = register_client(
                session,
                self.keyswap.hasher,
                owner=user,
                scope=scope,
                audiences=audience or (),
                token_ttl=token_ttl,
                max_token_ttl=self.keyswap.settings.max_token_ttl,
                auth_method=auth_method,
                can_introspect=can_introspect,
                any_tenant=any_tenant,
                now=self.keyswap.clock(),
                actor="test",
            )
            tenant_name = owner.tenant.name
        return Creds(created.client.id, created.secret, user, tenant_name)

    def set_user_status(self, user: str, status: str) -> None:
        """Change a user's status: active, suspended, deactivated or deleted."""
        with transaction(self.keyswap.sessions) as session:
            set_user_status(
                session, user, UserStatus(status), now=self.keyswap.clock(), actor="test"
            )

    def set_tenant_status(self, tenant: str, status: str) -> None:
        """Suspend or reactivate a tenant."""
        with transaction(self.keyswap.sessions) as session:
            set_tenant_status(
                session, tenant, TenantStatus(status), now=self.keyswap.clock(), actor="test"
            )

    def user_id(self, user: str) -> str:
        """Return the stable id (the ``sub``) of ``user``."""
        with transaction(self.keyswap.sessions) as session:
            return get_user(session, user).id

    def token(self, creds: Creds, **form: str) -> requests.Response:
        """POST a client credentials request with Basic auth; return the raw response."""
        data = {"grant_type": "client_credentials", **form}
        assert creds.client_secret is not None
        return requests.post(
            self.token_url, data=data, auth=(creds.client_id, creds.client_secret), timeout=10
        )


@pytest.fixture
def isolated_issuer(
    databases: DatabaseFactory, kek: bytes, tmp_path: Path
) -> Iterator[Callable[..., LiveIssuer]]:
    """Return a factory of issuers on their own new database, with settings changed.

    For tests that change shared state (signing keys) or need settings of their own.
    """
    started: list[LiveServer] = []

    def start(clock: Callable[[], datetime] = utcnow, **changes: Any) -> LiveIssuer:
        url = databases.create()
        live = start_live_server(
            lambda base: prepared_app(
                make_settings(url, kek, tmp_path, issuer=base, **changes), clock
            )
        )
        started.append(live)
        return LiveIssuer(live)

    yield start
    for live in started:
        stop_live_server(live)


@pytest.fixture
def live_issuer(live_server: LiveServer, db: None) -> LiveIssuer:
    """Return the running issuer on a clean database."""
    return LiveIssuer(live_server)


# --- fault injection -----------------------------------------------------------------


class TcpProxy:
    """A loopback TCP proxy to a database server that a test can cut, like an outage."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.port = 0
        self._listen()

    def _listen(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self._listener.getsockname()[1]
        self._open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def resume(self) -> None:
        """Listen again on the same port: the database is back."""
        self._listen()

    def _accept(self) -> None:
        while self._open:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._conns += [downstream, upstream]
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Close the listener and every connection: the database is gone."""
        self._open = False
        # A blocked accept() in another thread keeps a merely closed listener alive;
        # shutdown wakes it (Linux), so new connections are refused from here on.
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._conns.clear()


@pytest.fixture
def proxied_issuer(
    databases: DatabaseFactory, kek: bytes, tmp_path: Path
) -> Iterator[tuple[LiveIssuer, TcpProxy]]:
    """An issuer on a fresh PostgreSQL database reached through a proxy the test can cut."""
    if not databases.is_postgres:
        pytest.skip("needs PostgreSQL: SQLite has no connection to lose")
    real = make_url(databases.create())
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    live = start_live_server(
        lambda base: prepared_app(make_settings(url, kek, tmp_path, issuer=base))
    )
    yield LiveIssuer(live), proxy
    stop_live_server(live)
    proxy.cut()
