"""Typed ORM models: tenants, users, clients, secrets, signing keys, audit events.

Statuses are string-valued enums; every time is aware UTC. Secrets are stored only as
keyed hashes and private keys only sealed (see ``keyswap.jwks.sealing``).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .db import Base, UTCDateTime, utcnow


class TenantStatus(enum.StrEnum):
    """Whether a tenant's users may obtain tokens."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


class UserStatus(enum.StrEnum):
    """The live status of a user or service account; ``deleted`` is a tombstone."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    DEACTIVATED = "deactivated"
    DELETED = "deleted"


class UserKind(enum.StrEnum):
    """A person, or a service account that only owns credentials."""

    USER = "user"
    SERVICE_ACCOUNT = "service_account"


class AuthMethod(enum.StrEnum):
    """Token endpoint client authentication methods (RFC 7591 §2 names)."""

    CLIENT_SECRET_BASIC = "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post"
    PRIVATE_KEY_JWT = "private_key_jwt"


class KeyState(enum.StrEnum):
    """A signing key's place in its life: published first, then signing, then retired.

    ``revoked`` (a compromised key) leaves the JWK Set at once and never signs again.
    """

    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


def _enum(cls: type[enum.StrEnum]) -> SAEnum:
    # Stored as plain strings (no native PostgreSQL enum), so adding a state is a data
    # change, not a type migration.
    return SAEnum(
        cls,
        native_enum=False,
        length=24,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class Tenant(Base):
    """An organisation; suspending it stops every one of its users' tokens."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[TenantStatus] = mapped_column(_enum(TenantStatus), default=TenantStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Tokens issued at or before this time are inactive (set on suspension and revocation).
    tokens_revoked_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class User(Base):
    """A user or service account: the owner of credentials, and the ``sub`` of its tokens."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    kind: Mapped[UserKind] = mapped_column(_enum(UserKind), default=UserKind.USER)
    status: Mapped[UserStatus] = mapped_column(_enum(UserStatus), default=UserStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Tokens issued at or before this time are inactive (set on any status change away
    #: from active, and by ``keyswap tokens revoke --user``); reactivation leaves it.
    tokens_revoked_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    tenant: Mapped[Tenant] = relationship(lazy="joined")


class Client(Base):
    """An OAuth client registration, owned by a user or service account."""

    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    scopes: Mapped[str] = mapped_column(Text, default="")
    audiences: Mapped[list[str]] = mapped_column(JSON, default=list)
    token_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    auth_method: Mapped[AuthMethod] = mapped_column(
        _enum(AuthMethod), default=AuthMethod.CLIENT_SECRET_BASIC
    )
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    jwks_uri: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    can_introspect: Mapped[bool] = mapped_column(Boolean, default=False)
    #: An introspector that may see every tenant's tokens (a platform-wide resource server).
    introspect_any_tenant: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tokens_revoked_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    owner: Mapped[User] = relationship(lazy="joined")
    secrets: Mapped[list[ClientSecret]] = relationship(
        back_populates="client", lazy="selectin", order_by="ClientSecret.id"
    )

    @property
    def scope_list(self) -> list[str]:
        """Return the allowed scopes in their registered order."""
        return self.scopes.split()


class ClientSecret(Base):
    """One of a client's secrets, as an HMAC-SHA256 under the server pepper."""

    __tablename__ = "client_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    client: Mapped[Client] = relationship(back_populates="secrets")


class SigningKey(Base):
    """A token signing key: public JWK in clear, private key sealed with the KEK."""

    __tablename__ = "signing_keys"
    # At most one signer, whatever several processes do at once: a partial unique index
    # (both SQLite and PostgreSQL have them) makes a second "active" row fail to insert.
    __table_args__ = (
        Index(
            "uq_signing_keys_one_active",
            "state",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
        # ... and at most one waiting to sign, so concurrent rotations cannot stack keys.
        Index(
            "uq_signing_keys_one_next",
            "state",
            unique=True,
            sqlite_where=text("state = 'next'"),
            postgresql_where=text("state = 'next'"),
        ),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, str]] = mapped_column(JSON)
    sealed_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[KeyState] = mapped_column(_enum(KeyState), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When a ``next`` key starts signing: after verifiers' JWKS caches have it.
    activates_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEvent(Base):
    """A lifecycle event: who did what to whom, when, and why."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class RevokedToken(Base):
    """A single revoked access token, kept only until it would have expired (RFC 7009)."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsedAssertion(Base):
    """A ``private_key_jwt`` assertion already presented, kept until it expires (RFC 7523 §3)."""

    __tablename__ = "used_assertions"

    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class LegacyKey(Base):
    """A static API key imported for exchange (RFC 8693), stored only as a keyed hash.

    ``key_hash`` is the HMAC (server pepper) of the key's hex SHA-256, so a clear key and
    an imported ``api_key_sha256`` land on the same value, and exchange finds a key with
    one indexed lookup. The id is public: tokens carry ``client_id = legacy:<id>``.
    """

    __tablename__ = "legacy_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    scopes: Mapped[str] = mapped_column(Text, default="")
    audiences: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: After this time the key is refused as retired; before it, exchanges carry
    #: Deprecation and Sunset headers (RFC 9745, RFC 8594).
    sunset_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tokens_revoked_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Import time; also the key's deprecation date in the ``Deprecation`` header.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Usage, written coalesced (at most about once a minute per key and process).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    use_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    owner: Mapped[User] = relationship(lazy="joined")


class LegacyKeyRefusal(Base):
    """How often a legacy key was refused, per reason, written coalesced like its usage.

    A caller still sending a retired, revoked or expired key (or one whose owner left) is
    visible in ``keyswap legacy report`` though it never gets a token.
    """

    __tablename__ = "legacy_key_refusals"

    key_id: Mapped[str] = mapped_column(
        ForeignKey("legacy_keys.id", ondelete="CASCADE"), primary_key=True
    )
    #: The refusal's metric reason: ``api_key_retired``, ``owner_deactivated``, ...
    reason: Mapped[str] = mapped_column(String(40), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    last_refused_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScimCredential(Base):
    """A fixed bearer token an identity provider sends to ``/scim/v2``, for one tenant.

    Only its keyed hash is stored (see ``hashing``); it is found by that hash, like a
    legacy key. Rotation replaces the hash, so the old token stops at once.
    """

    __tablename__ = "scim_credentials"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    tenant: Mapped[Tenant] = relationship(lazy="joined")


class ScimProfile(Base):
    """What an identity provider says about a user beyond keyswap's own columns (RFC 7643 §4.1)."""

    __tablename__ = "scim_profiles"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    display_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FederationTrust(Base):
    """A trusted external issuer whose workload tokens map to one service account.

    A workload token (GitHub Actions, GitLab CI, Kubernetes, SPIFFE) from ``issuer`` whose
    ``sub`` and claims match this trust's globs gets a token for ``service_account``
    (RFC 7523 §2.1 jwt-bearer grant; ``keyswap.issuer.federation``).
    """

    __tablename__ = "federation_trusts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(2000), index=True)
    #: The issuer's JWK Set; None means the ``jwks_uri`` of its OIDC discovery document.
    jwks_uri: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    service_account_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    #: The ``aud`` the workload token must carry; None: keyswap's issuer or token endpoint.
    audience: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    #: Claim path (``/``-separated) → glob its value must match.
    claims: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    scopes: Mapped[str] = mapped_column(Text, default="")
    #: ``aud`` values the issued tokens may carry (RFC 8707 ``resource``).
    resources: Mapped[list[str]] = mapped_column(JSON, default=list)
    token_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Tokens issued through this trust at or before this time are inactive.
    tokens_revoked_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: A removed trust stays as a tombstone so its tokens turn inactive.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    service_account: Mapped[User] = relationship(lazy="joined")


class StatusBlock(Base):
    """A block of status list entries leased to one process for one credential and key.

    ``slot`` numbers blocks across every list: list ``slot // BLOCKS_PER_LIST``, entries
    from ``(slot % BLOCKS_PER_LIST) * BLOCK_SIZE`` (see ``keyswap.issuer.status_lists``). The row is
    written once per lease, never per token; revocations set ``bits`` (one token) or
    ``revoked`` (every entry of the block). After ``expires_at`` no token uses it any more
    and the slot may be leased again.
    """

    __tablename__ = "status_blocks"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: The token's ``client_id``: a client's id, or ``legacy:<key id>``.
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    owner_id: Mapped[str] = mapped_column(String(40), index=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    kid: Mapped[str] = mapped_column(String(64), index=True)
    leased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: When the last token that may use this block expires (lease end + longest lifetime).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    #: One bit per entry, least significant bit first, as in the served list.
    bits: Mapped[bytes] = mapped_column(LargeBinary)


class ConsoleLink(Base):
    """A one-time login link to the console, stored as the keyed hash of its secret."""

    __tablename__ = "console_links"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The tenant a tenant admin's link is limited to; None for an operator of every tenant.
    tenant: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Set by the one sign-in the link allows; a second use is refused.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TrafficMinute(Base):
    """Token requests per minute, tenant, outcome (issued or refused) and reason.

    Counted in memory and written coalesced (see ``console.traffic``), never per request.
    ``tenant`` is empty when the request proved no credential; ``reason`` is the grant
    type's short name for issued tokens and the refusal's metric reason otherwise.
    """

    __tablename__ = "traffic_minutes"

    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class TrafficHour(Base):
    """Token requests per hour and proven credential (a client id or ``legacy:<key id>``)."""

    __tablename__ = "traffic_hours"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    credential: Mapped[str] = mapped_column(String(80), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    count: Mapped[int] = mapped_column(Integer)
