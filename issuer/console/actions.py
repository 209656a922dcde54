"""The console's actions: each a form POST that calls the operation the admin API calls.

Every action on a principal, and a key's revocation, asks for a reason, written to the
audit log with the signed-in operator as the actor. Visibility and reach are the admin
API's (``visible_user``, ``require_global``): another tenant's objects do not exist for a
tenant admin. The result is flashed on the page the action came from; a rotated secret
is shown once, on a page never cached.
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from keyswap.jwks import ALGORITHMS

from ..admin.api import (
    USER_STATUSES,
    now,
    principal,
    require_global,
    visible_client,
    visible_tenant,
    visible_user,
)
from ..context import current_keyswap, request_session
from ..lifecycle import (
    InvalidValue,
    disable_client,
    enable_client,
    revoke_client_tokens,
    revoke_user_tokens,
    rotate_secret,
    set_tenant_status,
    set_user_status,
)
from ..models import TenantStatus
from ..rotation import revoke_key, rotate_now
from .views import _page, bp

MAX_REASON = 500
DEFAULT_GRACE = 86400


def _reason() -> str:
    reason = request.form.get("reason", "").strip()
    if not reason:
        raise InvalidValue("give a reason: it goes to the audit log")
    if len(reason) > MAX_REASON:
        raise InvalidValue(f"a reason is at most {MAX_REASON} characters")
    return reason


def _done(message: str, page: str) -> ResponseReturnValue:
    request_session().commit()
    flash(message)
    return redirect(url_for(page), 303)


@bp.post("/tenants/<name>/<any(suspend, activate):action>")
def tenant_action(name: str, action: str) -> ResponseReturnValue:
    """Suspend or reactivate a tenant (operators of every tenant only)."""
    visible_tenant(name)
    require_global(f"{action} a tenant")
    status = TenantStatus.SUSPENDED if action == "suspend" else TenantStatus.ACTIVE
    set_tenant_status(
        request_session(), name, status, now=now(), actor=principal().actor, reason=_reason()
    )
    return _done(f"tenant {name}: {status.value}", "console.principals")


@bp.post("/users/<name>/<any(suspend, deactivate, activate):action>")
def user_action(name: str, action: str) -> ResponseReturnValue:
    """Suspend, deactivate or reactivate a user, with the CLI's cascade."""
    visible_user(name)
    status = USER_STATUSES[action]
    set_user_status(
        request_session(), name, status, now=now(), actor=principal().actor, reason=_reason()
    )
    return _done(f"user {name}: {status.value}", "console.principals")


@bp.post("/users/<name>/revoke-tokens")
def user_revoke_tokens(name: str) -> ResponseReturnValue:
    """Make every token issued so far to the user's credentials inactive."""
    visible_user(name)
    revoke_user_tokens(
        request_session(), name, now=now(), actor=principal().actor, reason=_reason()
    )
    return _done(f"user {name}: tokens revoked", "console.principals")


@bp.post("/clients/<client_id>/<any(disable, enable):action>")
def client_action(client_id: str, action: str) -> ResponseReturnValue:
    """Disable a client (its credentials stop at once) or enable it again."""
    visible_client(client_id)
    session, actor, reason = request_session(), principal().actor, _reason()
    if action == "disable":
        disable_client(session, client_id, now=now(), actor=actor, reason=reason)
    else:
        enable_client(session, client_id, actor=actor, reason=reason)
    return _done(f"client {client_id}: {action}d", "console.principals")


@bp.post("/clients/<client_id>/revoke-tokens")
def client_revoke_tokens(client_id: str) -> ResponseReturnValue:
    """Make every token issued so far to the client inactive."""
    visible_client(client_id)
    revoke_client_tokens(
        request_session(), client_id, now=now(), actor=principal().actor, reason=_reason()
    )
    return _done(f"client {client_id}: tokens revoked", "console.principals")


@bp.post("/clients/<client_id>/rotate-secret")
def client_rotate_secret(client_id: str) -> tuple[str, int]:
    """Give a client a new secret, shown once; the old ones work for a grace period."""
    visible_client(client_id)
    reason = _reason()
    raw_grace = request.form.get("grace", "").strip() or str(DEFAULT_GRACE)
    if not raw_grace.isdigit() or int(raw_grace) > 90 * 86400:
        raise InvalidValue("grace: a whole number of seconds, at most 90 days")
    client, secret, old_until = rotate_secret(
        request_session(),
        current_keyswap().hasher,
        client_id,
        grace=int(raw_grace),
        now=now(),
        actor=principal().actor,
        reason=reason,
    )
    request_session().commit()
    return _page("secret.html", client_id=client.id, secret=secret, old_until=old_until)


@bp.post("/keys/rotate")
def keys_rotate() -> ResponseReturnValue:
    """Publish a new signing key; with "now", it signs at once (the compromise runbook)."""
    require_global("rotating signing keys")
    keyswap = current_keyswap()
    settings = keyswap.settings
    alg = request.form.get("alg") or settings.signing_alg
    if alg not in ALGORITHMS:
        raise InvalidValue(f"alg: one of {', '.join(ALGORITHMS)}")
    row = rotate_now(
        request_session(),
        keyswap.sealer,
        alg=alg,
        schedule=settings.rotation_schedule,
        immediate=request.form.get("now") == "on",
        actor=principal().actor,
        now=keyswap.clock(),
    )
    return _done(f"new signing key {row.kid} ({row.state.value})", "console.keys")


@bp.post("/keys/<kid>/revoke")
def keys_revoke(kid: str) -> ResponseReturnValue:
    """Withdraw a compromised signing key: every token it signed stops verifying."""
    require_global("revoking signing keys")
    if request.form.get("confirm") != "on":
        raise InvalidValue("tick the box to confirm: every token this key signed stops working")
    keyswap = current_keyswap()
    revoke_key(
        request_session(),
        kid,
        keyswap.settings.rotation_schedule,
        actor=principal().actor,
        reason=_reason(),
        now=keyswap.clock(),
    )
    return _done(f"signing key {kid} revoked", "console.keys")
