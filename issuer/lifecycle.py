"""Lifecycle operations on tenants, users and clients, each recorded in the audit log.

Used by the CLI, the admin API, SCIM and the console; each function works inside the
caller's transaction and returns the changed object. Errors are ``storage.NotFound`` and
``storage.Conflict``. A function that stamps a time takes it as ``now``, read by the caller
from the app's clock (``Keyswap.clock``): the clock that stamps tokens' ``iat`` and judges
secrets' expiry, so a cutoff or an expiry written here is compared on the same clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from keyswap.clients.outbound import check_outbound_url
from keyswap.jwks import PRIVATE_MEMBERS

from . import events
from .errors import InvalidValue as InvalidValue  # re-exported
from .hashing import SecretHasher, new_secret
from .models import AuthMethod, Client, Tenant, TenantStatus, User, UserKind, UserStatus
from .revocation import revoke_jti
from .rules import check_audiences, check_scopes
from .status_lists import revoke_blocks
from .storage import (
    Conflict,
    NotFound,
    add_client,
    add_secret,
    create_tenant,
    create_user,
    get_client,
    get_or_create_tenant,
    get_tenant,
    get_user,
)

DEFAULT_TENANT = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise InvalidValue(
            f"{kind} name {name!r} must be 1-100 letters, digits or . _ @ + - "
            "and start with a letter or digit"
        )
    return name


def add_tenant(session: Session, name: str, *, actor: str) -> Tenant:
    """Create a tenant."""
    tenant = create_tenant(session, _check_name("tenant", name))
    events.record(session, events.TENANT_CREATED, f"tenant:{name}", actor=actor)
    return tenant


def set_tenant_status(
    session: Session,
    name: str,
    status: TenantStatus,
    *,
    now: datetime,
    actor: str,
    reason: str | None = None,
) -> Tenant:
    """Suspend or reactivate a tenant at ``now`` (the app's clock)."""
    tenant = get_tenant(session, name)
    if tenant.status is not status:
        tenant.status = status
        tenant.status_changed_at = now
        if status is not TenantStatus.ACTIVE:
            # Every token of every user in the tenant goes inactive now, and stays so after
            # reactivation: a suspension is not undone by lifting it.
            tenant.tokens_revoked_before = tenant.status_changed_at
            revoke_blocks(session, tenant.status_changed_at, tenant=tenant.name)
        action = (
            events.TENANT_SUSPENDED if status is TenantStatus.SUSPENDED else events.TENANT_ACTIVATED
        )
        events.record(session, action, f"tenant:{name}", actor=actor, reason=reason)
    return tenant


def add_user(
    session: Session,
    name: str,
    *,
    tenant: str = DEFAULT_TENANT,
    kind: UserKind = UserKind.USER,
    actor: str,
) -> User:
    """Create a user or service account in ``tenant`` (created if it does not exist)."""
    owner_tenant = get_or_create_tenant(session, _check_name("tenant", tenant))
    user = create_user(session, _check_name("user", name), owner_tenant, kind)
    events.record(
        session, events.USER_CREATED, f"user:{name}", actor=actor, tenant=tenant, kind=kind.value
    )
    return user


def set_user_status(
    session: Session,
    name: str,
    status: UserStatus,
    *,
    now: datetime,
    actor: str,
    reason: str | None = None,
) -> User:
    """Change a user's status at ``now``; a deleted user stays a tombstone for good."""
    user = get_user(session, name)
    if user.status is UserStatus.DELETED and status is not UserStatus.DELETED:
        raise Conflict(f"user {name!r} is deleted; deletion is final")
    if user.status is not status:
        user.status = status
        user.status_changed_at = now
        if status is not UserStatus.ACTIVE:
            user.tokens_revoked_before = user.status_changed_at
            revoke_blocks(session, user.status_changed_at, owner_id=user.id)
        events.record(
            session,
            events.user_status_event(status.value),
            f"user:{name}",
            actor=actor,
            reason=reason,
        )
    return user


@dataclass(frozen=True)
class NewClient:
    """A created client and its secret, which is shown once and never stored in clear."""

    client: Client
    secret: str | None


def check_public_jwks(jwks: Any) -> dict[str, Any]:
    """Validate a client's JWK Set: asymmetric public keys only (RFC 7517 §5, RFC 7523)."""
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise InvalidValue('a JWK Set is a JSON object {"keys": [...]} with at least one key')
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in {"EC", "RSA", "OKP"}:
            raise InvalidValue("client keys must be EC, RSA or OKP public keys")
        if PRIVATE_MEMBERS & key.keys():
            raise InvalidValue("the JWK Set holds private key material; register public keys only")
    try:
        KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidValue(f"the JWK Set is not valid: {exc}") from None
    return {"keys": keys}


def _check_jwks_uri(uri: str, *, allow_private: bool) -> str:
    # The fetch checks the resolved address again; this refuses what is plainly internal.
    try:
        return check_outbound_url(uri, "a jwks_uri", allow_private=allow_private)
    except ValueError as exc:
        raise InvalidValue(str(exc)) from None


def _client_scopes(scope: str) -> str:
    if not scope.split():
        raise InvalidValue("a client needs at least one scope")
    return " ".join(check_scopes(scope))


def register_client(
    session: Session,
    hasher: SecretHasher,
    *,
    owner: str,
    scope: str,
    audiences: Sequence[str] = (),
    token_ttl: int | None = None,
    max_token_ttl: int,
    auth_method: AuthMethod = AuthMethod.CLIENT_SECRET_BASIC,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    can_introspect: bool = False,
    any_tenant: bool = False,
    secret_ttl: int | None = None,
    allow_private_jwks_uri: bool = False,
    now: datetime,
    actor: str,
) -> NewClient:
    """Register a client for an active owner and give it its first secret.

    ``any_tenant`` lets an introspecting client see every tenant's tokens, not only its
    owner's tenant's. A ``jwks_uri`` must be https to a public host, unless
    ``allow_private_jwks_uri`` (``KEYSWAP_OUTBOUND_ALLOW_PRIVATE``) also allows loopback and
    private addresses. A ``secret_ttl`` counts from ``now`` (the app's clock).
    """
    if any_tenant and not can_introspect:
        raise InvalidValue("--any-tenant is for introspecting clients (--can-introspect)")
    if (auth_method is AuthMethod.PRIVATE_KEY_JWT) != ((jwks is None) != (jwks_uri is None)):
        raise InvalidValue(
            "private_key_jwt clients need one JWK Set (--jwks-file or --jwks-uri), and only they"
        )
    if jwks is not None:
        jwks = check_public_jwks(jwks)
    if jwks_uri is not None:
        jwks_uri = _check_jwks_uri(jwks_uri, allow_private=allow_private_jwks_uri)
    user = get_user(session, owner)
    if user.status is not UserStatus.ACTIVE:
        raise Conflict(f"user {owner!r} is {user.status.value}; clients need an active owner")
    if token_ttl is not None and not 1 <= token_ttl <= max_token_ttl:
        raise InvalidValue(f"token TTL must be between 1 and {max_token_ttl} seconds")
    client = add_client(
        session,
        Client(
            id=f"ks_{new_secret()[:22]}",
            owner=user,
            scopes=_client_scopes(scope),
            audiences=list(check_audiences(audiences)),
            token_ttl=token_ttl,
            auth_method=auth_method,
            jwks=jwks,
            jwks_uri=jwks_uri,
            can_introspect=can_introspect,
            introspect_any_tenant=any_tenant,
        ),
    )
    secret = None
    if auth_method is not AuthMethod.PRIVATE_KEY_JWT:
        secret = new_secret()
        add_secret(session, client, hasher.hash(secret), expires_at=_expiry(secret_ttl, now))
    events.record(
        session,
        events.CLIENT_CREATED,
        f"client:{client.id}",
        actor=actor,
        owner=owner,
        scopes=client.scopes,
        auth_method=auth_method.value,
    )
    return NewClient(client=client, secret=secret)


def disable_client(
    session: Session, client_id: str, *, now: datetime, actor: str, reason: str | None = None
) -> Client:
    """Disable a client at ``now``: its credentials stop working at once."""
    client = get_client(session, client_id)
    if client.enabled:
        client.enabled = False
        client.disabled_at = now
        client.tokens_revoked_before = client.disabled_at
        revoke_blocks(session, client.disabled_at, client_id=client.id)
        events.record(
            session, events.CLIENT_DISABLED, f"client:{client_id}", actor=actor, reason=reason
        )
    return client


def enable_client(
    session: Session, client_id: str, *, actor: str, reason: str | None = None
) -> Client:
    """Enable a disabled client again: new tokens only; those issued before stay revoked."""
    client = get_client(session, client_id)
    if not client.enabled:
        # tokens_revoked_before is left as disabling set it: lifting a block never revives
        # the tokens it revoked (the same rule as a reactivated user or tenant).
        client.enabled = True
        client.disabled_at = None
        events.record(
            session, events.CLIENT_ENABLED, f"client:{client_id}", actor=actor, reason=reason
        )
    return client


ADMIN_SCOPE = "keyswap:admin"
ADMIN_ACCOUNT = "keyswap-admin"


def bootstrap_admin(
    session: Session, hasher: SecretHasher, *, max_token_ttl: int, now: datetime, actor: str
) -> NewClient:
    """Create the first admin: a service account and its client with scope keyswap:admin.

    Refused once done: further admins are made through the admin API or ``clients create``.
    """
    try:
        get_user(session, ADMIN_ACCOUNT)
    except NotFound:
        pass
    else:
        raise Conflict(
            f"already bootstrapped: the service account {ADMIN_ACCOUNT!r} exists; "
            "create further admin clients with `keyswap clients create`"
        )
    add_user(session, ADMIN_ACCOUNT, kind=UserKind.SERVICE_ACCOUNT, actor=actor)
    return register_client(
        session,
        hasher,
        owner=ADMIN_ACCOUNT,
        scope=ADMIN_SCOPE,
        max_token_ttl=max_token_ttl,
        now=now,
        actor=actor,
    )


def revoke_user_tokens(
    session: Session, name: str, *, now: datetime, actor: str, reason: str | None = None
) -> User:
    """Make every token issued to ``name``'s credentials before ``now`` inactive.

    ``now`` is the app's clock, the one that stamps a token's ``iat``: the cutoff is
    compared with it.
    """
    user = get_user(session, name)
    user.tokens_revoked_before = now
    revoke_blocks(session, user.tokens_revoked_before, owner_id=user.id)
    events.record(session, events.TOKENS_REVOKED, f"user:{name}", actor=actor, reason=reason)
    return user


def revoke_client_tokens(
    session: Session, client_id: str, *, now: datetime, actor: str, reason: str | None = None
) -> Client:
    """Make every token issued to ``client_id`` before ``now`` (the app's clock) inactive."""
    client = get_client(session, client_id)
    client.tokens_revoked_before = now
    revoke_blocks(session, client.tokens_revoked_before, client_id=client.id)
    events.record(session, events.TOKENS_REVOKED, f"client:{client_id}", actor=actor, reason=reason)
    return client


def revoke_token_id(
    session: Session,
    jti: str,
    *,
    max_token_ttl: int,
    now: datetime,
    actor: str,
    reason: str | None = None,
    tenant: str | None = None,
) -> bool:
    """Deny one token by its jti; kept for the longest lifetime a token can have from ``now``.

    Its status list bit is set as well; with ``tenant`` only if the token is that tenant's.
    """
    added = revoke_jti(
        session,
        jti=jti,
        client_id="",
        expires_at=now + timedelta(seconds=max_token_ttl),
        now=now,
        tenant=tenant,
    )
    if added:
        events.record(session, events.TOKEN_REVOKED, f"token:{jti}", actor=actor, reason=reason)
    return added


def _expiry(ttl: int | None, now: datetime) -> datetime | None:
    if ttl is None:
        return None
    if ttl < 1:
        raise InvalidValue("a secret lifetime must be at least 1 second")
    return now + timedelta(seconds=ttl)


def rotate_secret(
    session: Session,
    hasher: SecretHasher,
    client_id: str,
    *,
    grace: int,
    secret_ttl: int | None = None,
    now: datetime,
    actor: str,
    reason: str | None = None,
) -> tuple[Client, str, datetime]:
    """Give a client a new secret; its current secrets keep working ``grace`` seconds from ``now``.

    Returns the client, the new secret (shown once) and when the old ones stop working.
    """
    if grace < 0:
        raise InvalidValue("the grace period cannot be negative")
    client = get_client(session, client_id)
    if client.auth_method is AuthMethod.PRIVATE_KEY_JWT:
        raise Conflict(f"client {client_id!r} authenticates with private_key_jwt; it has no secret")
    old_until = now + timedelta(seconds=grace)
    for old in client.secrets:
        if old.revoked_at is None and (old.expires_at is None or old.expires_at > old_until):
            old.expires_at = old_until
    secret = new_secret()
    add_secret(session, client, hasher.hash(secret), expires_at=_expiry(secret_ttl, now))
    events.record(
        session,
        events.SECRET_ROTATED,
        f"client:{client_id}",
        actor=actor,
        reason=reason,
        old_secrets_expire_at=old_until.isoformat(),
    )
    return client, secret, old_until
