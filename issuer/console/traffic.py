"""Token traffic for the console's charts: counted in memory, written coalesced, pruned.

The token endpoint adds one to an in-memory counter per issued token, and the refusal
ledger one per refusal: a dictionary increment under a lock, nothing else. A background
timer writes the counts at most once per ``interval`` (a minute) per process, as the
legacy key usage is written (``keyswap.issuer.legacy.usage``): one statement per row that
adds to the stored count, so any number of processes on one database add up exactly;
counts that could not be written are kept for the next flush. Each flush also deletes
rows older than the retention. Two tables:

- ``traffic_minutes``: per minute, tenant, outcome and reason (the overview's charts);
- ``traffic_hours``: per hour and proven credential (top refused credentials, legacy
  calls per day per key, legacy against token calls).

A refusal before the credential was proven names no credential and no tenant. One that
names a credential gets its tenant at flush time, from the database, off the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..coalescing import CoalescedWriter
from ..db import transaction
from ..legacy.keys import CLIENT_ID_PREFIX as LEGACY_PREFIX
from ..models import Client, LegacyKey, Tenant, TrafficHour, TrafficMinute, User

ISSUED = "issued"
REFUSED = "refused"
DEFAULT_FLUSH_INTERVAL = 60.0

#: (minute, tenant or None, credential or None, outcome, reason)
Key = tuple[datetime, str | None, str | None, str, str]


@dataclass(frozen=True, slots=True)
class Count:
    """One counted group of token requests (a pending or a stored one)."""

    minute: datetime
    tenant: str
    credential: str | None
    outcome: str
    reason: str
    count: int


def grant_name(grant_type: str) -> str:
    """Return a grant type's short name: ``client_credentials``, ``token-exchange``, ..."""
    return grant_type.rsplit(":", 1)[-1]


def _upsert(session: Session, table: Any, keys: dict[str, Any], extra: dict[str, Any]) -> None:
    # As in legacy.usage: add to the row if it exists, else insert it; a concurrent first
    # insert by another process turns into an add.
    where = [getattr(table, name) == bindparam(f"k_{name}") for name in keys]
    params = {f"k_{name}": value for name, value in keys.items()} | {"n": extra["count"]}
    add = (
        update(table)
        .where(*where)
        .values(count=table.count + bindparam("n"))
        .execution_options(synchronize_session=False)
    )
    if session.execute(add, params).rowcount:  # type: ignore[attr-defined]
        return
    try:
        with session.begin_nested():
            session.execute(insert(cast(Table, table.__table__)).values(**keys, **extra))
    except IntegrityError:
        session.execute(add, params)


def tenants_of(session: Session, credentials: Iterable[str]) -> dict[str, str]:
    """Return the tenant of each client id or ``legacy:<key id>`` that exists."""
    wanted = set(credentials)
    clients = [c for c in wanted if not c.startswith(LEGACY_PREFIX)]
    keys = [c[len(LEGACY_PREFIX) :] for c in wanted if c.startswith(LEGACY_PREFIX)]
    found: dict[str, str] = {}
    if clients:
        rows = session.execute(
            select(Client.id, Tenant.name)
            .join(User, User.id == Client.owner_id)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(Client.id.in_(clients))
        )
        found.update({client_id: tenant for client_id, tenant in rows})
    if keys:
        rows = session.execute(
            select(LegacyKey.id, Tenant.name)
            .join(User, User.id == LegacyKey.owner_id)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(LegacyKey.id.in_(keys))
        )
        found.update({LEGACY_PREFIX + key_id: tenant for key_id, tenant in rows})
    return found


def resolve(session: Session, pending: dict[Key, int]) -> list[Count]:
    """Turn pending counts into rows, looking up the tenant of credentials that lack one."""
    unknown = {cred for (_, tenant, cred, _, _) in pending if tenant is None and cred}
    tenants = tenants_of(session, unknown) if unknown else {}
    return [
        Count(
            minute=minute,
            tenant=tenant if tenant is not None else tenants.get(cred or "", ""),
            credential=cred,
            outcome=outcome,
            reason=reason,
            count=count,
        )
        for (minute, tenant, cred, outcome, reason), count in pending.items()
    ]


class TrafficCounter(CoalescedWriter):
    """Per-process counts of issued and refused token requests, flushed in batches."""

    what = "token traffic counts"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
        *,
        enabled: bool,
        retention: timedelta,
        interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        super().__init__(interval)
        self._sessions = sessions
        self._clock = clock
        self.enabled = enabled
        self.retention = retention
        self._pending: dict[Key, int] = {}

    def _count(self, tenant: str | None, credential: str | None, outcome: str, reason: str) -> None:
        minute = self._clock().replace(second=0, microsecond=0)
        key = (minute, tenant, credential, outcome, reason)
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + 1
            self._schedule()

    def issued(self, grant_type: str, client_id: str, tenant: str) -> None:
        """Count one issued token (an in-memory increment; written at the next flush)."""
        if self.enabled:
            self._count(tenant, client_id, ISSUED, grant_name(grant_type))

    def refused(self, reason: str, client_id: str | None) -> None:
        """Count one refused token request; ``client_id`` only if it proved its credential."""
        if self.enabled:
            self._count(None, client_id, REFUSED, reason)

    def pending(self) -> dict[Key, int]:
        """Return the counts not yet written (the console adds them to what is stored)."""
        with self._lock:
            return dict(self._pending)

    def flush(self) -> int:
        """Write every pending count now and prune old rows; return how many were written.

        On a database error the counts are kept for the next flush and the error raised.
        """
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            with transaction(self._sessions) as session:
                rows = resolve(session, batch)
                self._write(session, rows)
                self._prune(session)
        except Exception:
            with self._lock:
                for key, count in batch.items():
                    self._pending[key] = self._pending.get(key, 0) + count
            raise
        return len(rows)

    @staticmethod
    def _write(session: Session, rows: list[Count]) -> None:
        minutes: dict[tuple[datetime, str, str, str], int] = {}
        hours: dict[tuple[datetime, str, str, str], tuple[str, int]] = {}
        for row in rows:
            key = (row.minute, row.tenant, row.outcome, row.reason)
            minutes[key] = minutes.get(key, 0) + row.count
            if row.credential:
                hour = row.minute.replace(minute=0)
                hkey = (hour, row.credential, row.outcome, row.reason)
                hours[hkey] = (row.tenant, hours.get(hkey, ("", 0))[1] + row.count)
        for (minute, tenant, outcome, reason), count in minutes.items():
            keys = {"minute": minute, "tenant": tenant, "outcome": outcome, "reason": reason}
            _upsert(session, TrafficMinute, keys, {"count": count})
        for (hour, credential, outcome, reason), (tenant, count) in hours.items():
            keys = {"hour": hour, "credential": credential, "outcome": outcome, "reason": reason}
            _upsert(session, TrafficHour, keys, {"tenant": tenant, "count": count})

    def _prune(self, session: Session) -> None:
        cutoff = self._clock() - self.retention
        session.execute(delete(TrafficMinute).where(TrafficMinute.minute < cutoff))
        session.execute(delete(TrafficHour).where(TrafficHour.hour < cutoff))

    def _has_pending(self) -> bool:
        return bool(self._pending)
