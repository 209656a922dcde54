"""The legacy key report: who still uses which key, and who has already migrated.

Per key: owner, tenant, the key's status, the owner's and tenant's, last use, uses,
refused attempts by reason and the last one, sunset date, and whether the owner has an
enabled client (migrated): a caller still sending a retired key shows up here though it
gets no token. Usage and refusals are written coalesced (see ``usage``), so the figures
may trail the last minute of traffic.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Client, LegacyKey, LegacyKeyRefusal, Tenant, User, UserStatus


class KeyStatus(enum.StrEnum):
    """A legacy key's own state, in the order exchange checks it."""

    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"
    RETIRED = "retired"


def key_status(
    now: datetime,
    *,
    revoked_at: datetime | None,
    expires_at: datetime | None,
    sunset_at: datetime | None,
) -> KeyStatus:
    """Return the key's state at ``now``, as the exchange would judge it."""
    if revoked_at is not None and revoked_at <= now:
        return KeyStatus.REVOKED
    if expires_at is not None and expires_at <= now:
        return KeyStatus.EXPIRED
    if sunset_at is not None and sunset_at <= now:
        return KeyStatus.RETIRED
    return KeyStatus.ACTIVE


_MIGRATED = select(Client.id).where(Client.owner_id == User.id, Client.enabled).exists()

_REPORT_QUERY = (
    select(
        LegacyKey.id,
        User.name,
        User.status,
        Tenant.name,
        Tenant.status,
        LegacyKey.revoked_at,
        LegacyKey.expires_at,
        LegacyKey.sunset_at,
        LegacyKey.last_used_at,
        LegacyKey.use_count,
        _MIGRATED.label("migrated"),
    )
    .join(User, User.id == LegacyKey.owner_id)
    .join(Tenant, Tenant.id == User.tenant_id)
    .order_by(Tenant.name, User.name, LegacyKey.id)
)


_REFUSALS_QUERY = select(
    LegacyKeyRefusal.key_id,
    LegacyKeyRefusal.reason,
    LegacyKeyRefusal.count,
    LegacyKeyRefusal.last_refused_at,
).order_by(LegacyKeyRefusal.key_id, LegacyKeyRefusal.reason)


def _refusals(session: Session) -> dict[str, tuple[dict[str, int], datetime]]:
    by_key: dict[str, tuple[dict[str, int], datetime]] = {}
    for key_id, reason, count, last in session.execute(_REFUSALS_QUERY):
        reasons, latest = by_key.get(key_id, ({}, last))
        reasons[reason] = count
        by_key[key_id] = (reasons, max(latest, last))
    return by_key


def legacy_report(session: Session, now: datetime) -> dict[str, Any]:
    """Return ``{"keys": [...], "totals": {...}}`` for every imported key."""
    keys: list[dict[str, Any]] = []
    week, month = now - timedelta(days=7), now - timedelta(days=30)
    totals = dict.fromkeys(
        ("keys", "active_7d", "active_30d", "orphaned", "past_sunset", "migrated", "refused"), 0
    )
    refusals = _refusals(session)
    for row in session.execute(_REPORT_QUERY):
        (
            key_id, owner, owner_status, tenant, tenant_status, revoked_at, expires_at,
            sunset_at, last_used_at, uses, migrated,
        ) = row  # fmt: skip
        status = key_status(now, revoked_at=revoked_at, expires_at=expires_at, sunset_at=sunset_at)
        reasons, last_refused_at = refusals.get(key_id, ({}, None))
        keys.append(
            {
                "key_id": key_id,
                "owner": owner,
                "tenant": tenant,
                "status": status,
                "owner_status": owner_status,
                "tenant_status": tenant_status,
                "last_used_at": last_used_at,
                "uses": uses,
                "refused": sum(reasons.values()),
                "refusals": reasons,
                "last_refused_at": last_refused_at,
                "sunset_at": sunset_at,
                "migrated": bool(migrated),
            }
        )
        totals["keys"] += 1
        totals["active_7d"] += last_used_at is not None and last_used_at >= week
        totals["active_30d"] += last_used_at is not None and last_used_at >= month
        totals["orphaned"] += owner_status is UserStatus.DELETED
        totals["past_sunset"] += sunset_at is not None and sunset_at <= now
        totals["migrated"] += bool(migrated)
        totals["refused"] += sum(reasons.values())
    return {"keys": keys, "totals": totals}
