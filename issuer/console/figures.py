"""What the console's pages show: traffic figures read from the coalesced counts.

Each figure adds this process's counts not yet written (``TrafficCounter.pending``) to
the stored ones, so a refusal shows at once here, and in other processes after their
next flush (at most a minute). A tenant admin's figures hold only their tenant's rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..legacy.keys import CLIENT_ID_PREFIX as LEGACY_PREFIX
from ..models import TrafficHour, TrafficMinute
from .traffic import ISSUED, REFUSED, Count, TrafficCounter, resolve

DAY = timedelta(days=1)
TOP = 10


def _pending(session: Session, counter: TrafficCounter) -> list[Count]:
    pending = counter.pending()
    return resolve(session, pending) if pending else []


def minute_counts(
    session: Session, counter: TrafficCounter, *, since: datetime, tenant: str | None
) -> list[Count]:
    """Return the per-minute counts since ``since``, stored and pending."""
    query = select(
        TrafficMinute.minute,
        TrafficMinute.tenant,
        TrafficMinute.outcome,
        TrafficMinute.reason,
        TrafficMinute.count,
    ).where(TrafficMinute.minute >= since)
    if tenant is not None:
        query = query.where(TrafficMinute.tenant == tenant)
    rows = [Count(m, t, None, o, r, n) for m, t, o, r, n in session.execute(query)]
    rows += [
        c
        for c in _pending(session, counter)
        if c.minute >= since and (tenant is None or c.tenant == tenant)
    ]
    return rows


def hour_counts(
    session: Session, counter: TrafficCounter, *, since: datetime, tenant: str | None
) -> list[Count]:
    """Return the per-hour, per-credential counts since ``since``, stored and pending."""
    query = select(
        TrafficHour.hour,
        TrafficHour.tenant,
        TrafficHour.credential,
        TrafficHour.outcome,
        TrafficHour.reason,
        TrafficHour.count,
    ).where(TrafficHour.hour >= since)
    if tenant is not None:
        query = query.where(TrafficHour.tenant == tenant)
    rows = [Count(h, t, c, o, r, n) for h, t, c, o, r, n in session.execute(query)]
    for c in _pending(session, counter):
        hour = c.minute.replace(minute=0)
        if c.credential and hour >= since and (tenant is None or c.tenant == tenant):
            rows.append(Count(hour, c.tenant, c.credential, c.outcome, c.reason, c.count))
    return rows


def overview(
    session: Session, counter: TrafficCounter, now: datetime, tenant: str | None
) -> dict[str, Any]:
    """Return the overview: per-minute issued/refused over the last day, reasons, top refused."""
    end = now.replace(second=0, microsecond=0)
    start = end - DAY + timedelta(minutes=1)
    minutes = int((end - start) / timedelta(minutes=1)) + 1
    issued, refused = [0] * minutes, [0] * minutes
    reasons: Counter[str] = Counter()
    for c in minute_counts(session, counter, since=start, tenant=tenant):
        slot = int((c.minute - start) / timedelta(minutes=1))
        if not 0 <= slot < minutes:
            continue
        if c.outcome == ISSUED:
            issued[slot] += c.count
        else:
            refused[slot] += c.count
            reasons[c.reason] += c.count
    top: dict[str, Counter[str]] = {}
    for c in hour_counts(session, counter, since=end.replace(minute=0) - DAY, tenant=tenant):
        if c.outcome == REFUSED and c.credential:
            top.setdefault(c.credential, Counter())[c.reason] += c.count
    ranked = sorted(top.items(), key=lambda item: (-item[1].total(), item[0]))[:TOP]
    return {
        "start": start,
        "end": end,
        "issued": issued,
        "refused": refused,
        "reasons": reasons.most_common(),
        "top_refused": [
            {"credential": cred, "total": counts.total(), "reasons": counts.most_common()}
            for cred, counts in ranked
        ],
    }


def days_between(first: date, last: date) -> list[date]:
    """Return every day from ``first`` to ``last``, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def legacy_traffic(
    session: Session, counter: TrafficCounter, now: datetime, tenant: str | None, days: int
) -> dict[str, Any]:
    """Return legacy key calls per day per key, and legacy against client tokens per day."""
    first = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first, datetime.min.time(), tzinfo=now.tzinfo)
    per_key: dict[str, Counter[date]] = {}
    legacy: Counter[date] = Counter()
    tokens: Counter[date] = Counter()
    for c in hour_counts(session, counter, since=since, tenant=tenant):
        day = c.minute.date()
        cred = c.credential or ""
        if cred.startswith(LEGACY_PREFIX):
            per_key.setdefault(cred[len(LEGACY_PREFIX) :], Counter())[day] += c.count
            if c.outcome == ISSUED:
                legacy[day] += c.count
        elif c.outcome == ISSUED:
            tokens[day] += c.count
    calendar = days_between(first, now.date())
    return {
        "days": calendar,
        "per_key": {key: [counts[d] for d in calendar] for key, counts in sorted(per_key.items())},
        "legacy": [legacy[d] for d in calendar],
        "tokens": [tokens[d] for d in calendar],
    }


def keys_by_state(keys: Iterable[dict[str, Any]]) -> list[tuple[str, int]]:
    """Count legacy keys (rows of ``legacy_report``) by their state."""
    return sorted(Counter(str(k["status"]) for k in keys).items())


def called_after_sunset(keys: Iterable[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Return the keys past their sunset that callers still send (refused as retired, or used)."""
    late = []
    for k in keys:
        sunset = k["sunset_at"]
        if sunset is None or sunset > now:
            continue
        used_late = k["last_used_at"] is not None and k["last_used_at"] > sunset
        if k["refusals"].get("api_key_retired") or used_late:
            late.append(k)
    return late


def owners_without_client(keys: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return each owner of legacy keys who has no enabled client yet, with their keys."""
    owners: dict[str, dict[str, Any]] = {}
    for k in keys:
        if k["migrated"] or k["owner_status"] == "deleted":
            continue
        entry = owners.setdefault(
            k["owner"], {"owner": k["owner"], "tenant": k["tenant"], "key_ids": []}
        )
        entry["key_ids"].append(k["key_id"])
    return list(owners.values())
