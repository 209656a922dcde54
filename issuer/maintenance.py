"""The process's maintenance loop: signing-key rotation steps and key re-reads, off requests.

One loop per server process (``keyswap serve`` starts it in each worker). Every
``key_refresh_interval`` seconds it applies the rotation step that is due, if any
(several processes coordinate through the database: the first to take a step wins, see
``keyswap.issuer.rotation``), then re-reads the key table into the process's key ring. Requests
only read the ring, so no token request ever writes a key, generates one, or waits on
the database for one; a failed pass is logged and simply tried again next interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from keyswap.jwks import Schedule, Sealer

from .keyring import KeyRing
from .rotation import advance

log = logging.getLogger(__name__)

#: The shortest pause between passes, whatever the refresh interval (0 means "as often as
#: sensible", not a busy loop).
MIN_INTERVAL = 0.05


class Maintenance:
    """Applies due rotation steps and refreshes one key ring, in a background thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sealer: Sealer,
        keyring: KeyRing,
        schedule: Schedule,
        *,
        alg: str,
        interval: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self._keyring = keyring
        self._schedule = schedule
        self._alg = alg
        self._interval = max(interval, MIN_INTERVAL)
        self._clock = clock
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> bool:
        """Apply the due rotation step, then re-read the keys; return False if a part failed."""
        ok = True
        try:
            advance(self._sessions, self._sealer, self._schedule, alg=self._alg, now=self._clock())
        except Exception:  # the next pass retries; a failed step changed nothing
            log.warning("key rotation step failed; retrying next interval", exc_info=True)
            ok = False
        try:
            self._keyring.reload()
        except Exception:  # the ring keeps the keys it holds
            log.warning("could not re-read signing keys; keeping the cached ones", exc_info=True)
            ok = False
        return ok

    def start(self) -> None:
        """Run a first pass now, then one every interval in a daemon thread."""
        self._keyring.refresh_in_background()
        self.run_once()
        self._thread = threading.Thread(target=self._loop, name="keyswap-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop after the pass in progress."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            self.run_once()
