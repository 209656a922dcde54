"""Serving: start-up checks, then worker processes under granian (the shim uses gunicorn).

Start-up (in the main process, once): migrate the schema, make sure a signing key exists,
and open it — a wrong key-encryption key stops here with a clear message, before any
worker starts. Then granian runs ``worker_app(settings)`` in each worker process. Never Flask's
development server.

Why granian: measured with ``python -m bench`` on two cores (c=32, PostgreSQL), the same app
served 2,170 tokens/s at p99 22 ms and 780 us of CPU per token under granian (2 workers),
against 1,000/s, p99 53 ms, 1,670 us under gunicorn's sync workers (4; no keep-alive, so
a TCP connection per token) and 1,470/s, p99 68 ms, 1,120 us under gthread (2 x 4).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask
from gunicorn.app.base import BaseApplication

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

from keyswap.jwks import KeyUnsealError

from .app import create_app
from .config import Settings
from .context import Keyswap
from .db import transaction, upgrade_schema
from .errors import StartupError as StartupError  # re-exported
from .keyring import ensure_signing_key
from .storage import list_signing_keys

log = logging.getLogger(__name__)


def prepare(app: Flask) -> None:
    """Migrate, ensure an active signing key, and check the KEK opens it."""
    keyswap: Keyswap = app.extensions["keyswap"]
    settings = keyswap.settings
    upgrade_schema(keyswap.engine)
    with transaction(keyswap.sessions) as session:
        if settings.generated_kek_file is not None and list_signing_keys(session):
            # A new KEK cannot open existing keys; never start a second key set beside them.
            settings.generated_kek_file.unlink(missing_ok=True)
            raise StartupError(
                "the database has signing keys but no key-encryption key was given: set "
                "KEYSWAP_KEY_ENCRYPTION_KEY (or restore "
                f"{settings.generated_kek_file}) to the key this database was created with."
            )
        ensure_signing_key(session, keyswap.sealer, settings.signing_alg, now=keyswap.clock())
    try:
        keyswap.keyring.reload()
    except KeyUnsealError as exc:
        raise StartupError(
            f"{exc}. Set KEYSWAP_KEY_ENCRYPTION_KEY (or {keyswap.settings.data_dir}/kek) to the "
            "key this database was created with."
        ) from None


def listen_url(host: str, port: int) -> str:
    """Return the base URL of a server listening on ``host:port``."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def reserve_port(host: str, port: int) -> socket.socket | None:
    """Check that ``host:port`` is free and hold it for this server; StartupError if taken.

    granian's workers each bind with SO_REUSEPORT, so without this a second server on a
    taken port would start, and the kernel would split connections between two unrelated
    servers. A probe bound without SO_REUSEPORT is refused while any socket listens on the
    port. Then a guard socket, bound with SO_REUSEPORT alone and never listening, holds the
    port until the server stops: the kernel refuses every later probe (another keyswap's,
    while this one migrates or respawns workers), lets this server's workers bind beside
    it, and sends it no connections. Close the returned socket when the server stops.
    """
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As every server does: a port left in TIME_WAIT by a stopped server is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"cannot listen on {host}:{port}: address already in use (another server "
                    "is listening there; stop it or choose another --port)"
                ) from None
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    guard = socket.socket(family, kind, proto)
    guard.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        guard.bind(address)
    except OSError:
        # Connections in TIME_WAIT from a server without SO_REUSEPORT refuse the guard
        # (not the probe) for a minute; the probe's check must then do on its own.
        guard.close()
        return None
    return guard


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    logging.getLogger("alembic").setLevel(logging.WARNING)


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application serving one prepared WSGI app (the legacy-key shim's)."""

    def __init__(self, app: WSGIApplication, options: dict[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        """Apply the options keyswap chose."""
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> WSGIApplication:
        """Return the already-built app (the master prepared it before forking)."""
        return self._app


def worker_app(settings: Settings) -> Flask:
    """Build the app in a server worker (granian calls this once per worker process).

    ``settings`` are those ``run`` was given, passed to the worker by granian's target
    loader, never read again from the environment. The main process has already migrated
    the database and written any generated key-encryption key to the data dir. Each
    worker runs its own maintenance loop (``keyswap.issuer.maintenance``).
    """
    _configure_logging()
    app = create_app(settings)
    # Rotation steps and key re-reads run here, beside the requests, never in them.
    app.extensions["keyswap"].maintenance.start()
    return app


def run(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    setup: Callable[[Flask], None] | None = None,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Prepare the database and keys, run ``setup``, then serve on ``host:port`` until stopped.

    Every worker builds its app from ``settings`` (granian hands each one a loader holding
    them; they are pickled if workers are spawned rather than forked). A port already in
    use stops start-up (StartupError) before anything is changed; ``on_listening`` gets
    the server's URL once granian has bound the port.
    """
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    guard = reserve_port(host, port)
    _configure_logging()
    metrics_dir = tempfile.mkdtemp(prefix="keyswap-metrics-")
    # Must be set before prometheus_client is first imported (create_app imports it);
    # the workers inherit it and count into the same directory.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        app = create_app(settings)
        prepare(app)
        if setup is not None:
            setup(app)
        # Nothing opened here may be shared with the workers.
        app.extensions["keyswap"].dispose()
        server = Server(
            "keyswap.issuer.serving:worker_app",
            interface=Interfaces.WSGI,
            address=host,
            port=port,
            workers=workers,
            blocking_threads=threads,
            websockets=False,
            log_level=LogLevels.warning,
            log_access=False,  # a token request's query string is never logged
            respawn_failed_workers=True,
            # A worker that ignores the stop signal is killed rather than waited on forever
            # (seen once under load in testing).
            workers_kill_timeout=10,
        )
        if on_listening is not None:
            url = listen_url(host, port)
            server.on_startup(lambda: on_listening(url))
        # The loader runs in each worker: granian's own one would import a factory that
        # takes no arguments, leaving the workers to read the environment again.
        server.serve(target_loader=functools.partial(worker_app, settings), wrap_loader=False)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        if guard is not None:
            guard.close()
