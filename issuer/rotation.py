"""Carrying out signing-key rotation in the database, safely from many processes.

``keyswap.jwks.rotation.next_step`` decides; this module applies a step in one transaction whose
updates are guarded by the states it read, so when several processes race the first
wins and the others change nothing. Two partial unique indexes keep at most one
``active`` and one ``next`` key whatever happens. Steps run in each process's
maintenance loop (``keyswap.issuer.maintenance``), never on a request.

Also the key-compromise runbook's two operations: ``rotate_now(immediate=True)`` (a new
key that signs as soon as every process publishes it) and ``revoke_key``.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from keyswap.jwks import DEFAULT_ALG, KeyView, Promote, Schedule, Sealer, next_step

from . import events
from .keyring import create_signing_key
from .models import KeyState, SigningKey
from .status_lists import revoke_blocks
from .storage import Conflict, NotFound, list_signing_keys

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system:rotation"


def _views(rows: list[SigningKey]) -> list[KeyView]:
    return [
        KeyView(r.kid, r.state.value, r.activates_at, r.activated_at, r.created_at) for r in rows
    ]


def publish_next_key(
    session: Session,
    sealer: Sealer,
    *,
    alg: str,
    activates_at: datetime,
    actor: str,
    now: datetime,
) -> SigningKey:
    """Publish a new key that starts signing at ``activates_at``; Conflict if one waits."""
    waiting = list_signing_keys(session, [KeyState.NEXT])
    if waiting:
        raise Conflict(
            f"key {waiting[0].kid} is already published and signs from {waiting[0].activates_at}"
        )
    try:
        with session.begin_nested():
            row = create_signing_key(session, sealer, alg, KeyState.NEXT, now=now)
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
    now: datetime,
) -> bool:
    """Apply the rotation step due now, if any; return True if the key table changed."""
    with sessions() as session:
        step = next_step(_views(list_signing_keys(session)), now, schedule)
        if step is None:
            return False
        try:
            if isinstance(step, Promote):
                changed = promote(session, step, now=now, actor=SYSTEM_ACTOR)
            else:
                publish_next_key(
                    session,
                    sealer,
                    alg=alg,
                    activates_at=step.activates_at,
                    actor=SYSTEM_ACTOR,
                    now=now,
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
    session: Session,
    sealer: Sealer,
    *,
    alg: str,
    schedule: Schedule,
    actor: str,
    immediate: bool = False,
    now: datetime,
) -> SigningKey:
    """Start a rotation by hand: publish a new key that signs after the pre-publication window.

    ``immediate`` (``keys rotate --now``) skips the window: the key signs once it has
    settled, that is once every process publishes it. A key already waiting is then
    brought forward instead of stacking a second one.
    """
    if immediate:
        waiting = list_signing_keys(session, [KeyState.NEXT])
        if waiting:
            return _bring_forward(session, waiting[0], schedule, now=now, actor=actor)
    return publish_next_key(
        session,
        sealer,
        alg=alg,
        activates_at=now + schedule.lead(immediate=immediate),
        actor=actor,
        now=now,
    )


def _bring_forward(
    session: Session, row: SigningKey, schedule: Schedule, *, now: datetime, actor: str
) -> SigningKey:
    """Make a waiting key sign as soon as it has settled."""
    settled = row.created_at + schedule.settle
    row.activates_at = max(now, settled)
    session.flush()
    events.record(
        session,
        events.KEY_EXPEDITED,
        f"key:{row.kid}",
        actor=actor,
        activates_at=row.activates_at.isoformat(),
    )
    return row


def revoke_key(
    session: Session,
    kid: str,
    schedule: Schedule,
    *,
    actor: str,
    reason: str | None = None,
    now: datetime,
) -> SigningKey:
    """Withdraw a (compromised) key from the JWK Set at once; it never signs again.

    The active key is revoked only when a waiting key can take over, which is then
    brought forward (it signs once it has settled; until then no token is issued, rather
    than one signed by the compromised key). Run ``keys rotate --now`` first, and revoke
    once the new key is active, for no pause at all.
    """
    row = session.scalar(select(SigningKey).where(SigningKey.kid == kid))
    if row is None:
        raise NotFound(f"no signing key {kid}")
    state = row.state
    if state is KeyState.REVOKED:
        raise Conflict(f"key {kid} is already revoked")
    successor = None
    if state is KeyState.ACTIVE:
        waiting = list_signing_keys(session, [KeyState.NEXT])
        if not waiting:
            raise Conflict(
                f"key {kid} is the only signing key: run `keyswap keys rotate --now` first, "
                "then revoke it once the new key is active"
            )
        successor = _bring_forward(session, waiting[0], schedule, now=now, actor=actor)
    # Guarded by the state read above: a rotation step of another process in between
    # makes this fail rather than revoke a key in a state nobody looked at.
    revoked = session.execute(
        update(SigningKey)
        .where(SigningKey.kid == kid, SigningKey.state == state)
        .values(
            state=KeyState.REVOKED,
            retired_at=now if state is KeyState.ACTIVE else row.retired_at,
        )
        .execution_options(synchronize_session="fetch")
    )
    if revoked.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"key {kid} changed state meanwhile; look again with `keyswap keys list`")
    # Verifiers drop the key with the JWK Set; status lists say so to those still holding it.
    revoke_blocks(session, now, kid=kid)
    events.record(
        session,
        events.KEY_REVOKED,
        f"key:{kid}",
        actor=actor,
        reason=reason,
        previous_state=state.value,
        successor=successor.kid if successor is not None else None,
    )
    return row
