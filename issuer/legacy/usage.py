"""Legacy key usage: last-used time and use count, written coalesced, never per request.

Each process counts exchanges in memory and flushes at most once per ``interval``
(a minute by default) from a background timer, and once more at process exit. A flush is
one ``UPDATE`` per key that adds its count and keeps the later last-used time, so any
number of processes on one database add up exactly. Counts are best effort: a process
killed outright loses at most one interval of them.
"""

from __future__ import annotations

import atexit
import logging
import threading
from datetime import datetime

from flask import Flask
from sqlalchemy import bindparam, case, or_, update
from sqlalchemy.orm import Session, sessionmaker

from ..db import UTCDateTime, transaction
from ..models import LegacyKey

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL = 60.0
#: Where an app keeps its accumulator (created on the first exchange).
USAGE_EXTENSION = "keyswap.legacy_usage"
_create_lock = threading.Lock()

_ADD_USE = (
    update(LegacyKey)
    .where(LegacyKey.id == bindparam("key_id"))
    .values(
        use_count=LegacyKey.use_count + bindparam("uses"),
        last_used_at=case(
            (
                or_(
                    LegacyKey.last_used_at.is_(None),
                    LegacyKey.last_used_at < bindparam("used_at", type_=UTCDateTime),
                ),
                bindparam("used_at", type_=UTCDateTime),
            ),
            else_=LegacyKey.last_used_at,
        ),
    )
    .execution_options(synchronize_session=False)
)


class UsageAccumulator:
    """Per-process usage counts of legacy keys, flushed to the database in batches."""

    def __init__(
        self, sessions: sessionmaker[Session], *, interval: float = DEFAULT_FLUSH_INTERVAL
    ) -> None:
        self._sessions = sessions
        self.interval = interval
        self._pending: dict[str, tuple[int, datetime]] = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False
        atexit.register(self.close)

    def record(self, key_id: str, at: datetime) -> None:
        """Count one use of ``key_id`` at ``at``; the write happens at the next flush."""
        with self._lock:
            uses, last = self._pending.get(key_id, (0, at))
            self._pending[key_id] = (uses + 1, max(last, at))
            if self._timer is None and not self._closed:
                self._timer = threading.Timer(self.interval, self._flush_from_timer)
                self._timer.daemon = True
                self._timer.start()

    def pending(self) -> dict[str, int]:
        """Return the counts not yet written, by key id."""
        with self._lock:
            return {key_id: uses for key_id, (uses, _) in self._pending.items()}

    def flush(self) -> int:
        """Write every pending count now (one UPDATE per key); return how many keys.

        On a database error the counts are kept for the next flush and the error raised.
        """
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        params = [
            {"key_id": key_id, "uses": uses, "used_at": at} for key_id, (uses, at) in batch.items()
        ]
        try:
            with transaction(self._sessions) as session:
                for one in params:
                    session.execute(_ADD_USE, one)
        except Exception:
            self._restore(batch)
            raise
        return len(batch)

    def _restore(self, batch: dict[str, tuple[int, datetime]]) -> None:
        with self._lock:
            for key_id, (uses, at) in batch.items():
                more, last = self._pending.get(key_id, (0, at))
                self._pending[key_id] = (uses + more, max(last, at))

    def _flush_from_timer(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self.flush()
        except Exception as exc:
            log.warning("could not write legacy key usage (kept for later): %s", exc)
        if self.pending() and not self._closed:
            with self._lock:
                if self._timer is None:
                    self._timer = threading.Timer(self.interval, self._flush_from_timer)
                    self._timer.daemon = True
                    self._timer.start()

    def close(self) -> None:
        """Stop the timer and write what is pending (run at exit; safe to call twice)."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        try:
            self.flush()
        except Exception as exc:
            log.warning("legacy key usage lost at shutdown: %s", exc)
        atexit.unregister(self.close)


def usage_for(app: Flask, *, interval: float = DEFAULT_FLUSH_INTERVAL) -> UsageAccumulator:
    """Return ``app``'s usage accumulator, creating it on first use."""
    usage = app.extensions.get(USAGE_EXTENSION)
    if usage is None:
        with _create_lock:
            usage = app.extensions.get(USAGE_EXTENSION)
            if usage is None:
                sessions = app.extensions["keyswap"].sessions
                usage = app.extensions[USAGE_EXTENSION] = UsageAccumulator(
                    sessions, interval=interval
                )
    assert isinstance(usage, UsageAccumulator)
    return usage
