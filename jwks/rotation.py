"""Signing-key rotation, as a plan over key states (RFC 7517 key sets; RFC 9068 §4).

A key is published as ``next`` before it signs anything, so verifiers that cache the JWK
Set already hold it; at ``activates_at`` it becomes ``active`` and the previous key is
``retired``; a retired key stays published until every token it signed has expired.
A compromised key is ``revoked``: withdrawn from the JWK Set at once, never signing again.

Every process serves the JWK Set from its own copy of the key table, re-read every few
seconds, so a new key may sign only once it has been in the table for ``settle``: by then
every process publishes it, whatever the pre-publication window for outside verifiers.
This module decides what should happen at a given time; the issuer carries it out in
one database transaction. It knows no database and no Flask.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

State = Literal["next", "active", "retired", "revoked"]


@dataclass(frozen=True, slots=True)
class KeyView:
    """What the plan needs to know about one stored key."""

    kid: str
    state: State
    activates_at: datetime | None
    activated_at: datetime | None
    #: When the key entered the table (None for a key of unknown age: no settle wait).
    created_at: datetime | None = None

    def signs_from(self, settle: timedelta) -> datetime | None:
        """Return when a waiting key may start signing: its due time, once every process has it."""
        if self.created_at is None:
            return self.activates_at
        settled = self.created_at + settle
        return settled if self.activates_at is None else max(self.activates_at, settled)


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
    """The rotation policy: how long a key signs, and how long it is published first.

    ``settle`` is how long a new key must be in the key table before any process may sign
    with it (every process has re-read the table by then); it bounds the pre-publication
    window from below, so even ``prepublish=0`` or ``keys rotate --now`` never lets a token
    be signed by a key that some process's JWK Set still lacks.
    """

    period: timedelta | None
    prepublish: timedelta
    settle: timedelta = timedelta(0)

    def lead(self, *, immediate: bool = False) -> timedelta:
        """Return how long after publication a new key signs (``immediate``: as soon as safe)."""
        return self.settle if immediate else max(self.prepublish, self.settle)


def next_step(keys: Iterable[KeyView], now: datetime, schedule: Schedule) -> Step | None:
    """Return the one step due at ``now``, or None.

    A ``next`` key is promoted once it is due and has settled (been in the table for
    ``schedule.settle``). Otherwise, when the active key's period ends within the
    pre-publication window and no key waits, a new key is to be published so it can take
    over exactly at the end of the period (or a full window from now, if later).
    """
    keys = list(keys)
    active = next((k for k in keys if k.state == "active"), None)
    waiting = next((k for k in keys if k.state == "next"), None)
    if waiting is not None:
        due = waiting.signs_from(schedule.settle)
        if due is None or due <= now:
            return Promote(next_kid=waiting.kid, active_kid=active.kid if active else None)
        return None
    if schedule.period is None or active is None or active.activated_at is None:
        return None
    ends = active.activated_at + schedule.period
    lead = schedule.lead()
    if ends - lead <= now:
        return PublishNext(activates_at=max(ends, now + lead))
    return None
