"""Counts kept in memory per process and written coalesced: at most once per interval, and at exit.

Legacy key usage (``legacy.usage``) and the console's token traffic (``console.traffic``) are
counted on the request path; a write per request is what they avoid. A subclass keeps its
counts under ``self._lock``, calls ``self._schedule()`` (under that lock) after adding to them,
and provides ``flush()`` and ``_has_pending()``; this base owns the timer, the retry of a failed
write at the next interval, and the exit hook.
"""

from __future__ import annotations

import atexit
import logging
import threading
from abc import ABC, abstractmethod

log = logging.getLogger(__name__)


class CoalescedWriter(ABC):
    """In-memory counts written in batches by one background timer, never per request."""

    #: What the counts are, for log lines ("legacy key usage").
    what = "counts"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False
        self._at_exit = False

    @abstractmethod
    def flush(self) -> int:
        """Write what is pending now; return how many rows were written."""

    @abstractmethod
    def _has_pending(self) -> bool:
        """Tell whether anything is waiting to be written (called under ``self._lock``)."""

    def _schedule(self) -> None:
        # Under self._lock. The exit hook is registered only once there is something to
        # write, so apps that never count anything leave nothing behind.
        if self._timer is None and not self._closed:
            self._timer = threading.Timer(self.interval, self._flush_from_timer)
            self._timer.daemon = True
            self._timer.start()
            if not self._at_exit:
                atexit.register(self.close)
                self._at_exit = True

    def _flush_from_timer(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self.flush()
        except Exception as exc:
            log.warning("could not write %s (kept for later): %s", self.what, exc)
        with self._lock:
            if self._has_pending():
                self._schedule()

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
            log.warning("%s lost at shutdown: %s", self.what, exc)
        atexit.unregister(self.close)
