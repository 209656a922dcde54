"""Token revocation (RFC 7009) and the jti denylist that introspection consults.

A revoked token is remembered by its ``jti`` only until its own ``exp``; after that it is
inactive anyway, so rows are pruned and the table does not grow with issuance volume.
Whole groups of tokens (a user's, a client's, a tenant's, a legacy key's) are revoked
without enumerating them, by a cutoff time compared with ``iat`` (see ``policy``), and
in the status lists by their blocks (``status_lists.revoke_blocks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Insert, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .db import PreparedRead, Reader
from .models import RevokedToken
from .status_lists import entry_of_jti, revoke_entry


def _insert_ignoring_duplicates(session: Session) -> Insert:
    # RFC 7009 §2.2: revoking an already revoked token succeeds. Two requests (two server
    # processes) revoking one token at once both passed a "not yet there" check and the
    # second insert hit the primary key; INSERT ... ON CONFLICT DO NOTHING lets the
    # database settle it, so neither request fails.
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(RevokedToken).on_conflict_do_nothing(index_elements=["jti"])
    if dialect == "sqlite":
        return sqlite.insert(RevokedToken).on_conflict_do_nothing(index_elements=["jti"])
    raise NotImplementedError(f"no idempotent insert for {dialect}")


def revoke_jti(
    session: Session,
    *,
    jti: str,
    client_id: str,
    expires_at: datetime,
    now: datetime,
    tenant: str | None = None,
) -> bool:
    """Add ``jti`` to the denylist until ``expires_at``; False if it was already there.

    The token's status list bit, named by its ``jti``, is set too (only in ``tenant``'s
    blocks when given: a tenant's administrator names only its own tokens).
    """
    prune_revoked(session, now)
    entry = entry_of_jti(jti)
    if entry is not None:
        revoke_entry(session, entry, now, tenant=tenant)
    inserted = session.execute(
        _insert_ignoring_duplicates(session)
        .values(jti=jti, client_id=client_id, expires_at=expires_at, revoked_at=now)
        .returning(RevokedToken.jti)  # no row back: it was already there
    ).first()
    return inserted is not None


def revoke_claims(session: Session, claims: Mapping[str, Any], now: datetime) -> bool:
    """Revoke the token whose verified claims are ``claims``."""
    return revoke_jti(
        session,
        jti=str(claims["jti"]),
        client_id=str(claims["client_id"]),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        now=now,
    )


_IS_REVOKED = select(RevokedToken.jti).where(RevokedToken.jti == bindparam("jti"))
_IS_REVOKED_READ = PreparedRead(_IS_REVOKED)


def is_revoked(reader: Reader, jti: str) -> bool:
    """Tell whether ``jti`` is on the denylist."""
    return bool(reader.rows(_IS_REVOKED_READ, jti=jti))


def prune_revoked(session: Session, now: datetime) -> int:
    """Forget revoked tokens that have expired by now; return how many."""
    result = session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
