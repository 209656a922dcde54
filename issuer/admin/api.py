"""The admin API at ``/admin/v1``: tenants, users, clients, tokens and the audit log over HTTP.

Each view translates HTTP to one of the operations the CLI calls (``keyswap.issuer.lifecycle``
and its peers) and back; none keeps a rule of its own. A ``keyswap:tenant-admin`` caller
sees only its own tenant: another tenant's objects answer 404, as if they did not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, json, request

from ..context import current_keyswap, request_session
from ..errors import (
    NO_STORE,
    InsufficientScope,
    ResourceConflict,
    ResourceNotFound,
    UnprocessableValue,
)
from ..lifecycle import (
    ADMIN_SCOPE,
    DEFAULT_TENANT,
    InvalidValue,
    add_tenant,
    add_user,
    disable_client,
    enable_client,
    register_client,
    revoke_client_tokens,
    revoke_token_id,
    revoke_user_tokens,
    rotate_secret,
    set_tenant_status,
    set_user_status,
)
from ..models import AuditEvent, Client, TenantStatus, User, UserKind, UserStatus
from ..rendering import render_error
from ..representations import audit_event_view, client_view, plain, tenant_view, user_view
from ..storage import (
    Conflict,
    NotFound,
    find_audit_events,
    get_client,
    get_tenant,
    get_user,
    list_clients,
    list_tenants,
    list_users,
)
from .auth import Principal, authenticate_admin
from .bodies import (
    ClientCreate,
    Reason,
    SecretRotation,
    TenantCreate,
    TokenRevocation,
    UserCreate,
    read_body,
)

bp = Blueprint("admin", __name__, url_prefix="/admin/v1")

USER_STATUSES = {
    "suspend": UserStatus.SUSPENDED,
    "deactivate": UserStatus.DEACTIVATED,
    "activate": UserStatus.ACTIVE,
}
MAX_PAGE = 1000


@bp.before_request
def _authenticate() -> None:
    g.admin = authenticate_admin(current_keyswap(), request_session(), request)


def principal() -> Principal:
    """Return the authenticated caller of this request."""
    return g.admin  # type: ignore[no-any-return]


def now() -> datetime:
    """Return the time by the app's clock: the one that stamps tokens and judges secrets."""
    return current_keyswap().clock()


def require_global(action: str) -> None:
    """Refuse a tenant admin an action that reaches beyond one tenant (403)."""
    if not principal().is_global:
        raise InsufficientScope(f"{action} needs scope {ADMIN_SCOPE}")


def require_grantable(scope: str) -> None:
    """Refuse a tenant admin a credential carrying ``keyswap:admin`` (403): it spans tenants."""
    if ADMIN_SCOPE in scope.split():
        require_global(f"granting scope {ADMIN_SCOPE}")


def reply(body: Any, status: int = 200) -> Response:
    """Answer JSON, never cached: bodies can hold a secret shown once."""
    response = Response(json.dumps(plain(body)), status=status, mimetype="application/json")
    response.headers.update(NO_STORE)
    return response


def _domain_error(error: Exception) -> Response:
    request_session().rollback()
    message = error.args[0] if error.args else str(error)
    if isinstance(error, NotFound):
        return render_error(ResourceNotFound(message))
    if isinstance(error, Conflict):
        return render_error(ResourceConflict(message))
    return render_error(UnprocessableValue(message))


for _error in (NotFound, Conflict, InvalidValue):
    bp.register_error_handler(_error, _domain_error)


def committed(body: Any, status: int = 200) -> Response:
    """Commit this request's changes (and their audit events), then answer ``body``."""
    request_session().commit()
    return reply(body, status)


# --- visibility: another tenant's objects do not exist for a tenant admin ----------------


def visible_tenant(name: str) -> str:
    """Return ``name`` if the caller sees that tenant; 404 otherwise."""
    if not principal().sees(name):
        raise NotFound(f"no tenant named {name!r}")
    return get_tenant(request_session(), name).name


def visible_user(name: str) -> User:
    """Return the user ``name`` if the caller sees its tenant; 404 otherwise."""
    user = get_user(request_session(), name)
    if not principal().sees(user.tenant.name):
        raise NotFound(f"no user named {name!r}")
    return user


def visible_client(client_id: str) -> Client:
    """Return the client if the caller sees its owner's tenant; 404 otherwise."""
    client = get_client(request_session(), client_id)
    if not principal().sees(client.owner.tenant.name):
        raise NotFound(f"no client {client_id!r}")
    return client


# --- tenants ---------------------------------------------------------------------------


@bp.get("/tenants")
def tenants_list() -> Response:
    """List the tenants the caller sees."""
    tenants = list_tenants(request_session(), principal().tenant)
    return reply({"tenants": [tenant_view(t) for t in tenants]})


@bp.post("/tenants")
def tenants_create() -> Response:
    """Create a tenant (global admins only)."""
    require_global("creating a tenant")
    body = read_body(request, TenantCreate)
    tenant = add_tenant(request_session(), body.name, actor=principal().actor)
    return committed(tenant_view(tenant), 201)


@bp.get("/tenants/<name>")
def tenants_get(name: str) -> Response:
    """Show one tenant."""
    return reply(tenant_view(get_tenant(request_session(), visible_tenant(name))))


@bp.post("/tenants/<name>/<any(suspend, activate):action>")
def tenants_set_status(name: str, action: str) -> Response:
    """Suspend or reactivate a tenant (global admins only)."""
    visible_tenant(name)
    require_global(f"{action} a tenant")
    body = read_body(request, Reason)
    status = TenantStatus.SUSPENDED if action == "suspend" else TenantStatus.ACTIVE
    tenant = set_tenant_status(
        request_session(), name, status, now=now(), actor=principal().actor, reason=body.reason
    )
    return committed(tenant_view(tenant))


# --- users and service accounts -----------------------------------------------------------


@bp.get("/users")
def users_list() -> Response:
    """List the users and service accounts the caller sees."""
    users = list_users(request_session(), principal().tenant)
    return reply({"users": [user_view(u) for u in users]})


@bp.post("/users")
def users_create() -> Response:
    """Create a user or service account; a tenant admin's land in its own tenant."""
    body = read_body(request, UserCreate)
    tenant = body.tenant or principal().tenant or DEFAULT_TENANT
    if not principal().sees(tenant):
        raise NotFound(f"no tenant named {tenant!r}")
    kind = UserKind.SERVICE_ACCOUNT if body.service_account else UserKind.USER
    user = add_user(request_session(), body.name, tenant=tenant, kind=kind, actor=principal().actor)
    return committed(user_view(user), 201)


@bp.get("/users/<name>")
def users_get(name: str) -> Response:
    """Show one user or service account."""
    return reply(user_view(visible_user(name)))


@bp.post("/users/<name>/<any(suspend, deactivate, activate):action>")
def users_set_status(name: str, action: str) -> Response:
    """Suspend, deactivate or reactivate a user, with the CLI's cascade."""
    visible_user(name)
    body = read_body(request, Reason)
    user = set_user_status(
        request_session(),
        name,
        USER_STATUSES[action],
        now=now(),
        actor=principal().actor,
        reason=body.reason,
    )
    return committed(user_view(user))


@bp.delete("/users/<name>")
def users_delete(name: str) -> Response:
    """Delete a user, keeping a tombstone so refusals say why."""
    visible_user(name)
    reason = request.args.get("reason")
    user = set_user_status(
        request_session(),
        name,
        UserStatus.DELETED,
        now=now(),
        actor=principal().actor,
        reason=reason,
    )
    return committed(user_view(user))


# --- clients ----------------------------------------------------------------------------


@bp.get("/clients")
def clients_list() -> Response:
    """List the clients the caller sees."""
    clients = list_clients(request_session(), principal().tenant)
    at = now()
    return reply({"clients": [client_view(c, at) for c in clients]})


@bp.post("/clients")
def clients_create() -> Response:
    """Register a client; the answer holds its secret, shown this once."""
    body = read_body(request, ClientCreate)
    visible_user(body.owner)
    require_grantable(body.scope)
    keyswap = current_keyswap()
    created = register_client(
        request_session(),
        keyswap.hasher,
        owner=body.owner,
        scope=body.scope,
        audiences=body.audiences,
        token_ttl=body.token_ttl,
        max_token_ttl=keyswap.settings.max_token_ttl,
        auth_method=body.auth_method,
        jwks=body.jwks,
        jwks_uri=body.jwks_uri,
        can_introspect=body.can_introspect,
        secret_ttl=body.secret_ttl,
        now=now(),
        actor=principal().actor,
    )
    view = client_view(created.client, now())
    return committed(
        {"client_id": view.pop("client_id"), "client_secret": created.secret, **view}, 201
    )


@bp.get("/clients/<client_id>")
def clients_get(client_id: str) -> Response:
    """Show one client (never a secret)."""
    return reply(client_view(visible_client(client_id), now()))


@bp.post("/clients/<client_id>/rotate-secret")
def clients_rotate_secret(client_id: str) -> Response:
    """Give a client a new secret (shown once); the old ones work for ``grace`` seconds."""
    visible_client(client_id)
    body = read_body(request, SecretRotation)
    client, secret, old_until = rotate_secret(
        request_session(),
        current_keyswap().hasher,
        client_id,
        grace=body.grace,
        secret_ttl=body.secret_ttl,
        now=now(),
        actor=principal().actor,
    )
    return committed(
        {"client_id": client.id, "client_secret": secret, "old_secrets_expire_at": old_until}
    )


@bp.post("/clients/<client_id>/<any(disable, enable):action>")
def clients_set_enabled(client_id: str, action: str) -> Response:
    """Disable a client (its credentials stop at once) or enable it again."""
    visible_client(client_id)
    body = read_body(request, Reason)
    session, actor = request_session(), principal().actor
    if action == "disable":
        client = disable_client(session, client_id, now=now(), actor=actor, reason=body.reason)
    else:
        client = enable_client(session, client_id, actor=actor, reason=body.reason)
    return committed(client_view(client, now()))


# --- tokens -----------------------------------------------------------------------------


@bp.post("/tokens/revoke")
def tokens_revoke() -> Response:
    """Revoke one token by jti, or every token so far of a client or a user."""
    body = read_body(request, TokenRevocation)
    chosen = [v for v in (body.jti, body.client_id, body.user) if v]
    if len(chosen) != 1:
        raise InvalidValue("give exactly one of jti, client_id, user")
    session, actor, at = request_session(), principal().actor, now()
    if body.jti:
        # A jti names no tenant, so only a global admin may deny one.
        require_global("revoking a token by jti")
        max_ttl = current_keyswap().settings.max_token_ttl
        added = revoke_token_id(
            session, body.jti, max_token_ttl=max_ttl, now=at, actor=actor, reason=body.reason
        )
        return committed({"revoked": "token", "jti": body.jti, "already_revoked": not added})
    if body.client_id:
        visible_client(body.client_id)
        client = revoke_client_tokens(
            session, body.client_id, now=at, actor=actor, reason=body.reason
        )
        return committed(
            {"revoked": "client", "client_id": client.id, "before": client.tokens_revoked_before}
        )
    visible_user(str(body.user))
    owner = revoke_user_tokens(session, str(body.user), now=at, actor=actor, reason=body.reason)
    return committed({"revoked": "user", "user": owner.name, "before": owner.tokens_revoked_before})


# --- audit log --------------------------------------------------------------------------


def _time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidValue(f"{name}: not an ISO 8601 time: {raw!r}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidValue(f"{name}: an integer from {low} to {high}, not {raw!r}")
    return int(raw)


def audit_page(limit: int) -> tuple[Sequence[AuditEvent], int | None]:
    """Return one page of the audit log for this request's filters, and the next page's cursor.

    The filters are the query's ``since``, ``until``, ``subject``, ``action`` and ``cursor``
    (shared by this API and the console's audit page); a bad value is a 422.
    """
    events = find_audit_events(
        request_session(),
        since=_time_arg("since"),
        until=_time_arg("until"),
        subject=request.args.get("subject") or None,
        action=request.args.get("action") or None,
        before_id=_int_arg("cursor", None, 1, 2**62),
        limit=limit,
    )
    return events, (events[-1].id if len(events) == limit else None)


@bp.get("/audit")
def audit_list() -> Response:
    """Page through the audit log, newest first, by time, subject and event type."""
    require_global("reading the audit log")
    limit = _int_arg("limit", 100, 1, MAX_PAGE) or 100
    events, cursor = audit_page(limit)
    return reply(
        {
            "events": [audit_event_view(e) for e in events],
            "next_cursor": str(cursor) if cursor else None,
        }
    )
