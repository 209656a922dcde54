"""One-time login links to the console: made by ``keyswap console link``, used once.

A link carries a 256-bit random secret; only its keyed hash is stored (``hashing``), with
the tenant it is limited to, its maker and a short expiry. Redeeming it marks it used by
a guarded update (``used_at IS NULL``), so two sign-ins racing on one link cannot both win.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import events
from ..hashing import SecretHasher, new_secret
from ..models import ConsoleLink
from ..storage import get_tenant

LINK_CREATED = "console.link_created"
SIGNED_IN = "console.signed_in"
LOGIN_PATH = "/console/login/"


@dataclass(frozen=True)
class NewLink:
    """A made link: its URL holds the secret, shown once."""

    id: str
    url: str
    tenant: str | None
    expires_at: datetime


@dataclass(frozen=True)
class Operator:
    """Who signed in with a link: the audit log's actor, and the tenant they are limited to."""

    actor: str
    tenant: str | None


def create_link(
    session: Session,
    hasher: SecretHasher,
    *,
    issuer: str,
    tenant: str | None,
    ttl: int,
    actor: str,
    now: datetime,
) -> NewLink:
    """Store a new one-time link (for one tenant, or for every tenant) and return it."""
    if tenant is not None:
        tenant = get_tenant(session, tenant).name  # NotFound for an unknown tenant
    secret = new_secret()
    link = ConsoleLink(
        id=f"cl_{secrets.token_hex(8)}",
        token_hash=hasher.hash(secret),
        tenant=tenant,
        created_by=actor,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    session.add(link)
    events.record(
        session,
        LINK_CREATED,
        f"console:{link.id}",
        actor=actor,
        tenant=tenant,
        expires_at=link.expires_at.isoformat(),
    )
    return NewLink(link.id, f"{issuer}{LOGIN_PATH}{secret}", tenant, link.expires_at)


def redeem_link(
    session: Session, hasher: SecretHasher, secret: str, *, now: datetime
) -> Operator | None:
    """Use the link holding ``secret`` once; None if unknown, expired or already used."""
    if not secret or len(secret) > 100:
        return None
    link = session.scalar(select(ConsoleLink).where(ConsoleLink.token_hash == hasher.hash(secret)))
    if link is None or link.expires_at <= now:
        return None
    claimed = session.execute(
        update(ConsoleLink)
        .where(ConsoleLink.id == link.id, ConsoleLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return None
    operator = Operator(actor=f"console:{link.created_by} ({link.id})", tenant=link.tenant)
    events.record(
        session, SIGNED_IN, f"console:{link.id}", actor=operator.actor, tenant=link.tenant
    )
    return operator
