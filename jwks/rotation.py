"""Signing-key rotation, as a plan over key states (RFC 7517 key sets; RFC 9068 §4).

A key is published as ``next`` before it signs anything, so verifiers that cache the JWK
Set already hold it; at ``activates_at`` it becomes ``active`` and the previous key is
``retired``; a retired key stays published until every token it signed has expired.
This module decides what should happen at a given time; the issuer carries it out in
one database transaction. It knows no database and no Flask.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

State = Literal["next", "active", "retired"]


@dataclass(frozen=True, slots=True)
class KeyView:
    """What the plan needs to know about one stored key."""

    kid: str
    state: State
    activates_at: datetime | None
    activated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Promote:
    """Make ``next_kid`` the signer and retire ``active_kid`` (if any)."""

    next_kid: str
    active_kid: str | None


@dataclass(frozen=True, slots=True)
class PublishNext:
    """Create a new key that starts signing at ``activates_at``."""

    activates_at: datetime


Step = Promote | PublishNext


@dataclass(frozen=True, slots=True)
class Schedule:
    """The rotation policy: how long a key signs, and how long it is published first."""

    period: timedelta | None
    prepublish: timedelta


def next_step(keys: Iterable[KeyView], now: datetime, schedule: Schedule) -> Step | None:
    """Return the one step due at ``now``, or None.

    A due ``next`` key is promoted. Otherwise, when the active key's period ends within
    the pre-publication window and no key waits, a new key is to be published so it can
    take over exactly at the end of the period (or a full window from now, if later).
    """
    keys = list(keys)
    active = next((k for k in keys if k.state == "active"), None)
    waiting = next((k for k in keys if k.state == "next"), None)
    if waiting is not None:
        if waiting.activates_at is None or waiting.activates_at <= now:
            return Promote(next_kid=waiting.kid, active_kid=active.kid if active else None)
        return None
    if schedule.period is None or active is None or active.activated_at is None:
        return None
    ends = active.activated_at + schedule.period
    if ends - schedule.prepublish <= now:
        return PublishNext(activates_at=max(ends, now + schedule.prepublish))
    return None
