"""Carrying out signing-key rotation in the database, safely from many processes.

``keyswap.jwks.rotation.next_step`` decides; this module applies a step in one transaction whose
updates are guarded by the states it read, so when several processes race the first
wins and the others change nothing. Two partial unique indexes keep at most one
``active`` and one ``next`` key whatever happens.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from keyswap.jwks import DEFAULT_ALG, KeyView, Promote, Schedule, Sealer, next_step

from . import events
from .db import utcnow
from .keyring import create_signing_key
from .models import KeyState, SigningKey
from .storage import Conflict, list_signing_keys

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system:rotation"


def _views(rows: list[SigningKey]) -> list[KeyView]:
    return [KeyView(r.kid, r.state.value, r.activates_at, r.activated_at) for r in rows]


def publish_next_key(
    session: Session, sealer: Sealer, *, alg: str, activates_at: datetime, actor: str
) -> SigningKey:
    """Publish a new key that starts signing at ``activates_at``; Conflict if one waits."""
    waiting = list_signing_keys(session, [KeyState.NEXT])
    if waiting:
        raise Conflict(
            f"key {waiting[0].kid} is already published and signs from {waiting[0].activates_at}"
        )
    try:
        with session.begin_nested():
            row = create_signing_key(session, sealer, alg, KeyState.NEXT)
            row.activates_at = activates_at
    except IntegrityError:
        raise Conflict("another process published a next key at the same time") from None
    events.record(
        session,
        events.KEY_PUBLISHED,
        f"key:{row.kid}",
        actor=actor,
        alg=alg,
        activates_at=activates_at.isoformat(),
    )
    return row


def promote(session: Session, step: Promote, *, now: datetime, actor: str) -> bool:
    """Make the next key the signer and retire the old one; False if another process did."""
    if step.active_kid is not None:
        retired = session.execute(
            update(SigningKey)
            .where(SigningKey.kid == step.active_kid, SigningKey.state == KeyState.ACTIVE)
            .values(state=KeyState.RETIRED, retired_at=now)
        )
        if retired.rowcount != 1:  # type: ignore[attr-defined]
            return False
    promoted = session.execute(
        update(SigningKey)
        .where(SigningKey.kid == step.next_kid, SigningKey.state == KeyState.NEXT)
        .values(state=KeyState.ACTIVE, activated_at=now)
    )
    if promoted.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return False
    events.record(
        session, events.KEY_ROTATED, f"key:{step.next_kid}", actor=actor, retired=step.active_kid
    )
    return True


def advance(
    sessions: sessionmaker[Session],
    sealer: Sealer,
    schedule: Schedule,
    *,
    alg: str = DEFAULT_ALG,
    now: datetime | None = None,
) -> bool:
    """Apply the rotation step due now, if any; return True if the key table changed."""
    now = now or utcnow()
    with sessions() as session:
        step = next_step(_views(list_signing_keys(session)), now, schedule)
        if step is None:
            return False
        try:
            if isinstance(step, Promote):
                changed = promote(session, step, now=now, actor=SYSTEM_ACTOR)
            else:
                publish_next_key(
                    session, sealer, alg=alg, activates_at=step.activates_at, actor=SYSTEM_ACTOR
                )
                changed = True
            if changed:
                session.commit()
            return changed
        except (Conflict, IntegrityError, OperationalError):
            # Another process took the step first (SQLite reports the lost race as a
            # locked database, PostgreSQL as a unique violation): nothing to do here.
            session.rollback()
            return False


def rotate_now(
    session: Session, sealer: Sealer, *, alg: str, prepublish: timedelta, actor: str
) -> SigningKey:
    """Start a rotation by hand: publish a new key that signs after the pre-publication window."""
    return publish_next_key(
        session, sealer, alg=alg, activates_at=utcnow() + prepublish, actor=actor
    )
