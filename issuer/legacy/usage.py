"""Legacy key usage and refusals, per key, written coalesced, never per request.

Each process counts exchanges, and refusals of known keys by reason (retired, revoked,
owner deactivated, ...), in memory and flushes at most once per ``interval`` (a minute by
default) from a background timer, and once more at process exit. A flush is one
statement per key (and per key and reason) that adds its count and keeps the later time,
so any number of processes on one database add up exactly. Counts are best effort: a
process killed outright loses at most one interval of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Integer, String, Table, bindparam, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..coalescing import CoalescedWriter
from ..db import UTCDateTime, transaction
from ..models import LegacyKey, LegacyKeyRefusal

if TYPE_CHECKING:
    from flask import Flask


DEFAULT_FLUSH_INTERVAL = 60.0

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
_ADD_REFUSAL = (
    update(LegacyKeyRefusal)
    .where(
        LegacyKeyRefusal.key_id == bindparam("refused_key"),
        LegacyKeyRefusal.reason == bindparam("refused_reason"),
    )
    .values(
        count=LegacyKeyRefusal.count + bindparam("uses"),
        last_refused_at=case(
            (
                LegacyKeyRefusal.last_refused_at < bindparam("used_at", type_=UTCDateTime),
                bindparam("used_at", type_=UTCDateTime),
            ),
            else_=LegacyKeyRefusal.last_refused_at,
        ),
    )
    .execution_options(synchronize_session=False)
)
#: The first refusal of a key for a reason; nothing if the key is gone meanwhile. (A Core
#: insert: with parameters, an ORM one would be taken for a bulk insert of rows.)
_NEW_REFUSAL = insert(cast(Table, LegacyKeyRefusal.__table__)).from_select(
    ["key_id", "reason", "count", "last_refused_at"],
    select(
        LegacyKey.id,
        bindparam("refused_reason", type_=String),
        bindparam("uses", type_=Integer),
        bindparam("used_at", type_=UTCDateTime),
    ).where(LegacyKey.id == bindparam("refused_key")),
)

Counts = dict[str, tuple[int, datetime]]
RefusalCounts = dict[tuple[str, str], tuple[int, datetime]]


def _add(pending: dict[Any, tuple[int, datetime]], key: Any, uses: int, at: datetime) -> None:
    more, last = pending.get(key, (0, at))
    pending[key] = (uses + more, max(last, at))


def _write_refusal(session: Session, params: dict[str, Any]) -> None:
    if session.execute(_ADD_REFUSAL, params).rowcount:  # type: ignore[attr-defined]
        return
    try:
        with session.begin_nested():
            session.execute(_NEW_REFUSAL, params)
    except IntegrityError:  # another process wrote the first one meanwhile
        session.execute(_ADD_REFUSAL, params)


class UsageAccumulator(CoalescedWriter):
    """Per-process usage and refusal counts of legacy keys, flushed in batches."""

    what = "legacy key usage"

    def __init__(
        self, sessions: sessionmaker[Session], *, interval: float = DEFAULT_FLUSH_INTERVAL
    ) -> None:
        super().__init__(interval)
        self._sessions = sessions
        self._pending: Counts = {}
        self._refused: RefusalCounts = {}

    def record(self, key_id: str, at: datetime) -> None:
        """Count one use of ``key_id`` at ``at``; the write happens at the next flush."""
        with self._lock:
            _add(self._pending, key_id, 1, at)
            self._schedule()

    def record_refusal(self, key_id: str, reason: str, at: datetime) -> None:
        """Count one refusal of the known key ``key_id`` for ``reason``; written at next flush."""
        with self._lock:
            _add(self._refused, (key_id, reason), 1, at)
            self._schedule()

    def pending(self) -> dict[str, int]:
        """Return the use counts not yet written, by key id."""
        with self._lock:
            return {key_id: uses for key_id, (uses, _) in self._pending.items()}

    def pending_refusals(self) -> dict[tuple[str, str], int]:
        """Return the refusal counts not yet written, by key id and reason."""
        with self._lock:
            return {key: count for key, (count, _) in self._refused.items()}

    def flush(self) -> int:
        """Write every pending count now (one statement per key, or key and reason).

        Return how many rows were counted. On a database error the counts are kept for the
        next flush and the error raised.
        """
        with self._lock:
            batch, self._pending = self._pending, {}
            refused, self._refused = self._refused, {}
        if not batch and not refused:
            return 0
        try:
            with transaction(self._sessions) as session:
                for key_id, (uses, at) in batch.items():
                    session.execute(_ADD_USE, {"key_id": key_id, "uses": uses, "used_at": at})
                for (key_id, reason), (count, at) in refused.items():
                    _write_refusal(
                        session,
                        {
                            "refused_key": key_id,
                            "refused_reason": reason,
                            "uses": count,
                            "used_at": at,
                        },
                    )
        except Exception:
            self._restore(batch, refused)
            raise
        return len(batch) + len(refused)

    def _restore(self, batch: Counts, refused: RefusalCounts) -> None:
        with self._lock:
            for key_id, (uses, at) in batch.items():
                _add(self._pending, key_id, uses, at)
            for key, (count, at) in refused.items():
                _add(self._refused, key, count, at)

    def _has_pending(self) -> bool:
        return bool(self._pending or self._refused)


def usage_for(app: Flask) -> UsageAccumulator:
    """Return ``app``'s usage accumulator (part of the wiring ``create_app`` builds)."""
    usage = app.extensions["keyswap"].usage
    assert isinstance(usage, UsageAccumulator)
    return usage
