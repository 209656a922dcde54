"""Serving under gunicorn: start-up checks, then pre-forked workers.

Start-up (in the master, once): migrate the schema, make sure a signing key exists,
and open it — a wrong key-encryption key stops here with a clear message, before any
worker starts. Never Flask's development server.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask
from gunicorn.app.base import BaseApplication

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

from jwks import KeyUnsealError

from .app import Keyswap, create_app
from .config import Settings
from .db import transaction, upgrade_schema
from .keyring import ensure_signing_key
from .storage import list_signing_keys

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The server cannot start; the message says why and what to do."""


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
        ensure_signing_key(session, keyswap.sealer, settings.signing_alg)
    try:
        keyswap.keyring.reload()
    except KeyUnsealError as exc:
        raise StartupError(
            f"{exc}. Set KEYSWAP_KEY_ENCRYPTION_KEY (or {keyswap.settings.data_dir}/kek) to the "
            "key this database was created with."
        ) from None


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    logging.getLogger("alembic").setLevel(logging.WARNING)


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application serving one prepared WSGI app (keyswap's, or the shim)."""

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


def _post_fork(server: Any, worker: Any) -> None:
    # Connections opened by the master must not be shared with the workers.
    app: Flask = worker.app.load()
    keyswap: Keyswap = app.extensions["keyswap"]
    keyswap.engine.dispose(close=False)


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def run(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    setup: Callable[[Flask], None] | None = None,
) -> None:
    """Prepare the database and keys, run ``setup``, then serve on ``host:port`` until stopped."""
    _configure_logging()
    metrics_dir = tempfile.mkdtemp(prefix="keyswap-metrics-")
    # Must be set before prometheus_client is first imported (create_app imports it).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        app = create_app(settings)
        prepare(app)
        if setup is not None:
            setup(app)
        app.extensions["keyswap"].engine.dispose()
        options: dict[str, Any] = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread" if threads > 1 else "sync",
            "threads": threads,
            "timeout": 30,
            "graceful_timeout": 10,
            "keepalive": 5,
            "limit_request_line": 4094,
            "limit_request_fields": 50,
            "post_fork": _post_fork,
            "child_exit": _child_exit,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "keyswap",
            "control_socket_disable": True,
        }
        GunicornServer(app, options).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
