"""What the CLI and the admin API show of tenants, users, clients, keys and audit events.

One representation per object, so a command's ``--json`` and the admin API's body agree
field for field. Never a secret or private key material.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from .keyring import is_published
from .models import AuditEvent, Client, KeyState, SigningKey, Tenant, User

EXPIRING_SOON = timedelta(days=7)


def tenant_view(tenant: Tenant) -> dict[str, Any]:
    """Return what is shown about a tenant."""
    return {"name": tenant.name, "status": tenant.status, "changed_at": tenant.status_changed_at}


def user_view(user: User) -> dict[str, Any]:
    """Return what is shown about a user or service account."""
    return {
        "name": user.name,
        "id": user.id,
        "tenant": user.tenant.name,
        "kind": user.kind,
        "status": user.status,
        "changed_at": user.status_changed_at,
    }


def _secret_expiry(client: Client, now: datetime) -> datetime | None:
    live = [
        s.expires_at
        for s in client.secrets
        if s.revoked_at is None and (s.expires_at is None or s.expires_at > now)
    ]
    if not live or None in live:
        return None
    return max(t for t in live if t is not None)


def client_view(client: Client, now: datetime) -> dict[str, Any]:
    """Return what is shown about a client at ``now`` (never a secret)."""
    expiry = _secret_expiry(client, now)
    return {
        "client_id": client.id,
        "owner": client.owner.name,
        "tenant": client.owner.tenant.name,
        "scopes": client.scope_list,
        "audiences": list(client.audiences),
        "token_ttl": client.token_ttl,
        "auth_method": client.auth_method,
        "jwks_uri": client.jwks_uri,
        "enabled": client.enabled,
        "can_introspect": client.can_introspect,
        "introspect_any_tenant": client.introspect_any_tenant,
        "secrets_expire_at": expiry,
        "expiring_soon": expiry is not None and expiry - now < EXPIRING_SOON,
        "created_at": client.created_at,
    }


def key_view(row: SigningKey, max_token_ttl: int, now: datetime) -> dict[str, Any]:
    """Return what is shown about a signing key at ``now`` (never private material)."""
    published_until = (
        row.retired_at + timedelta(seconds=max_token_ttl)
        if row.retired_at is not None and row.state is not KeyState.REVOKED
        else None
    )
    return {
        "kid": row.kid,
        "alg": row.alg,
        "state": row.state,
        "published": is_published(row, now, max_token_ttl),
        "created_at": row.created_at,
        "activates_at": row.activates_at,
        "activated_at": row.activated_at,
        "retired_at": row.retired_at,
        "published_until": published_until,
    }


def audit_event_view(event: AuditEvent) -> dict[str, Any]:
    """Return what is shown about an audit event."""
    return {
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "reason": event.reason,
        "details": event.details,
    }


def plain(value: Any) -> Any:
    """Return ``value`` as JSON-ready data: times in ISO 8601 UTC with ``Z``, enums as values."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
