"""Every query keyswap runs, as functions taking a ``Session``.

The issuance hot path reads a client, its secrets, its owner and the owner's tenant in
one round trip (``load_client_record``) into plain frozen values.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from .db import PreparedRead, Reader

# Re-exported: where storage callers have always found them.
from .errors import Conflict as Conflict
from .errors import NotFound as NotFound
from .models import (
    AuditEvent,
    AuthMethod,
    Client,
    ClientSecret,
    KeyState,
    SigningKey,
    Tenant,
    TenantStatus,
    User,
    UserKind,
    UserStatus,
)


@dataclass(frozen=True, slots=True)
class OwnerStatus:
    """The live state of a credential's owner and tenant, as read in this request."""

    user_id: str
    user_status: UserStatus
    tenant: str
    tenant_status: TenantStatus
    #: The later of the owner's and the tenant's revocation cutoffs.
    tokens_revoked_before: datetime | None = None

    @classmethod
    def of(
        cls,
        user_id: str,
        user_status: UserStatus,
        user_cutoff: datetime | None,
        tenant: str,
        tenant_status: TenantStatus,
        tenant_cutoff: datetime | None,
    ) -> OwnerStatus:
        """Return the status read from a user's and its tenant's columns."""
        cutoffs = [t for t in (user_cutoff, tenant_cutoff) if t is not None]
        return cls(user_id, user_status, tenant, tenant_status, max(cutoffs, default=None))


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """One stored client secret: its keyed hash and its life."""

    secret_hash: str
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A client with everything issuance needs, read in one query."""

    client_id: str
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    token_ttl: int | None
    auth_method: AuthMethod
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    enabled: bool
    disabled_at: datetime | None
    can_introspect: bool
    introspect_any_tenant: bool
    tokens_revoked_before: datetime | None
    owner: OwnerStatus
    secrets: tuple[SecretRecord, ...]


# Built once, with a bound parameter: executing the same statement object lets SQLAlchemy
# reuse its compiled form and result metadata instead of re-deriving them per request.
_CLIENT_RECORD_QUERY = (
    select(
        Client.id,
        Client.scopes,
        Client.audiences,
        Client.token_ttl,
        Client.auth_method,
        Client.jwks,
        Client.jwks_uri,
        Client.enabled,
        Client.disabled_at,
        Client.can_introspect,
        Client.introspect_any_tenant,
        Client.tokens_revoked_before.label("client_cutoff"),
        User.id.label("user_id"),
        User.status.label("user_status"),
        User.tokens_revoked_before.label("user_cutoff"),
        Tenant.name.label("tenant"),
        Tenant.status.label("tenant_status"),
        Tenant.tokens_revoked_before.label("tenant_cutoff"),
        ClientSecret.secret_hash,
        ClientSecret.expires_at,
        ClientSecret.revoked_at,
    )
    .join(User, User.id == Client.owner_id)
    .join(Tenant, Tenant.id == User.tenant_id)
    .outerjoin(ClientSecret, ClientSecret.client_id == Client.id)
    .where(Client.id == bindparam("client_id"))
    .order_by(ClientSecret.id)
)
_CLIENT_RECORD = PreparedRead(_CLIENT_RECORD_QUERY)


def load_client_record(reader: Reader, client_id: str) -> ClientRecord | None:
    """Read a client, its secrets, owner and tenant in one round trip, or None."""
    rows = reader.rows(_CLIENT_RECORD, client_id=client_id)
    if not rows:
        return None
    first = rows[0]
    (
        client_id, scopes, audiences, token_ttl, auth_method, jwks, jwks_uri, enabled,
        disabled_at, can_introspect, any_tenant, client_cutoff, user_id, user_status,
        user_cutoff, tenant, tenant_status, tenant_cutoff,
    ) = first[:18]  # fmt: skip
    return ClientRecord(
        client_id=client_id,
        scopes=tuple(scopes.split()),
        audiences=tuple(audiences or ()),
        token_ttl=token_ttl,
        auth_method=auth_method,
        jwks=jwks,
        jwks_uri=jwks_uri,
        enabled=enabled,
        disabled_at=disabled_at,
        can_introspect=can_introspect,
        introspect_any_tenant=any_tenant,
        tokens_revoked_before=client_cutoff,
        owner=OwnerStatus.of(
            user_id, user_status, user_cutoff, tenant, tenant_status, tenant_cutoff
        ),
        secrets=tuple(SecretRecord(r[18], r[19], r[20]) for r in rows if r[18] is not None),
    )


# --- tenants -------------------------------------------------------------------------


def get_tenant(session: Session, name: str) -> Tenant:
    """Return the tenant called ``name`` or raise NotFound."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise NotFound(f"no tenant named {name!r}")
    return tenant


def create_tenant(session: Session, name: str) -> Tenant:
    """Create an active tenant; Conflict if the name is taken."""
    if session.scalar(select(Tenant.id).where(Tenant.name == name)) is not None:
        raise Conflict(f"a tenant named {name!r} already exists")
    tenant = Tenant(name=name, status=TenantStatus.ACTIVE)
    session.add(tenant)
    session.flush()
    return tenant


def list_tenants(session: Session, name: str | None = None) -> Sequence[Tenant]:
    """Return every tenant (or only the one called ``name``), by name."""
    query = select(Tenant).order_by(Tenant.name)
    if name is not None:
        query = query.where(Tenant.name == name)
    return session.scalars(query).all()


def get_or_create_tenant(session: Session, name: str) -> Tenant:
    """Return the tenant called ``name``, creating it active if it does not exist."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    return tenant if tenant is not None else create_tenant(session, name)


# --- users ---------------------------------------------------------------------------


def new_user_id(kind: UserKind) -> str:
    """Return a fresh stable id: the ``sub`` of every token the user's credentials get."""
    prefix = "svc" if kind is UserKind.SERVICE_ACCOUNT else "usr"
    return f"{prefix}_{secrets.token_hex(12)}"


def get_user(session: Session, name: str) -> User:
    """Return the user called ``name`` (tombstones included) or raise NotFound."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def list_users(session: Session, tenant: str | None = None) -> Sequence[User]:
    """Return every user and service account (tombstones included), by name."""
    query = select(User).order_by(User.name)
    if tenant is not None:
        query = query.join(User.tenant).where(Tenant.name == tenant)
    return session.scalars(query).all()


def create_user(session: Session, name: str, tenant: Tenant, kind: UserKind) -> User:
    """Create an active user or service account; Conflict if the name is taken."""
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"a user named {name!r} already exists")
    user = User(id=new_user_id(kind), name=name, tenant=tenant, kind=kind)
    session.add(user)
    session.flush()
    return user


# --- clients -------------------------------------------------------------------------


def get_client(session: Session, client_id: str) -> Client:
    """Return the client ``client_id`` or raise NotFound."""
    client = session.get(Client, client_id)
    if client is None:
        raise NotFound(f"no client {client_id!r}")
    return client


def list_clients(session: Session, tenant: str | None = None) -> Sequence[Client]:
    """Return every client (or only those owned in ``tenant``), oldest first."""
    query = select(Client).order_by(Client.created_at, Client.id)
    if tenant is not None:
        query = (
            query.join(User, User.id == Client.owner_id)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(Tenant.name == tenant)
        )
    return session.scalars(query).all()


_REQUESTABLE_SCOPES = PreparedRead(select(Client.scopes).where(Client.enabled).distinct())


def requestable_scopes(reader: Reader) -> list[str]:
    """Return every scope an enabled client may request, sorted (for discovery)."""
    rows = reader.rows(_REQUESTABLE_SCOPES)
    return sorted({scope for (scopes,) in rows for scope in scopes.split()})


def add_client(session: Session, client: Client) -> Client:
    """Insert a client row."""
    session.add(client)
    session.flush()
    return client


def add_secret(
    session: Session, client: Client, secret_hash: str, *, expires_at: datetime | None = None
) -> ClientSecret:
    """Attach a new secret hash to ``client``."""
    row = ClientSecret(client=client, secret_hash=secret_hash, expires_at=expires_at)
    session.add(row)
    session.flush()
    return row


# --- signing keys --------------------------------------------------------------------


def list_signing_keys(
    session: Session, states: Sequence[KeyState] | None = None
) -> list[SigningKey]:
    """Return signing keys (optionally only in ``states``), newest first."""
    query = select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.kid)
    if states is not None:
        query = query.where(SigningKey.state.in_(states))
    return list(session.scalars(query))


def active_signing_key(session: Session) -> SigningKey | None:
    """Return the one active signing key, if there is one."""
    return session.scalar(select(SigningKey).where(SigningKey.state == KeyState.ACTIVE))


# --- audit ---------------------------------------------------------------------------


def add_audit_event(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Record a lifecycle event in the same transaction as the change it describes."""
    event = AuditEvent(actor=actor, action=action, subject=subject, reason=reason, details=details)
    if at is not None:
        event.at = at
    session.add(event)
    return event


def list_audit_events(
    session: Session, since: datetime | None = None, limit: int | None = None
) -> Sequence[AuditEvent]:
    """Return audit events, newest first, optionally only those at or after ``since``."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return session.scalars(query).all()


def find_audit_events(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    subject: str | None = None,
    action: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> Sequence[AuditEvent]:
    """Return one page of audit events, newest first, filtered; ``before_id`` pages on."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    if subject is not None:
        query = query.where(AuditEvent.subject == subject)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return session.scalars(query).all()
