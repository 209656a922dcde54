"""Introspection (RFC 7662) over HTTP: live status, cascades without per-token writes."""

from __future__ import annotations

import requests
from sqlalchemy import func, select

from keyswap.issuer.db import transaction
from keyswap.issuer.lifecycle import disable_client
from keyswap.issuer.models import RevokedToken

from ..conftest import MovingClock


def _introspect(live_issuer, introspector, token):
    return requests.post(
        f"{live_issuer.url}/oauth/introspect",
        data={"token": token},
        auth=(introspector.client_id, introspector.client_secret),
        timeout=10,
    )


def _token(live_issuer, creds, **form):
    response = live_issuer.token(creds, **form)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _revoked_rows(live_issuer):
    with transaction(live_issuer.keyswap.sessions) as session:
        return session.scalar(select(func.count()).select_from(RevokedToken))


def test_active_token_answers_its_claims_no_store(live_issuer):
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    creds = live_issuer.create_client(user="billing", tenant="acme")
    token = _token(live_issuer, creds, scope="orders:read")
    response = _introspect(live_issuer, rs, token)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["client_id"] == creds.client_id
    assert body["sub"] == live_issuer.user_id("billing")
    assert body["scope"] == "orders:read"
    assert body["tenant"] == "acme"
    assert body["iss"] == live_issuer.url
    assert body["token_type"] == "Bearer"
    assert {"exp", "iat", "nbf", "jti", "aud"} <= body.keys()


def test_owner_deactivated_turns_live_token_inactive_without_token_writes(live_issuer):
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    creds = live_issuer.create_client()
    token = _token(live_issuer, creds)
    assert _introspect(live_issuer, rs, token).json()["active"] is True
    live_issuer.set_user_status(creds.user, "deactivated")
    assert _introspect(live_issuer, rs, token).json() == {"active": False}
    assert _revoked_rows(live_issuer) == 0


def test_reactivation_does_not_revive_earlier_tokens(isolated_issuer):
    clock = MovingClock()
    live_issuer = isolated_issuer(clock)
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    creds = live_issuer.create_client()
    old = _token(live_issuer, creds)
    live_issuer.set_user_status(creds.user, "suspended")
    live_issuer.set_user_status(creds.user, "active")
    assert _introspect(live_issuer, rs, old).json() == {"active": False}
    # A token issued after reactivation is live (issued in a later second than the cutoff).
    clock.advance(2)
    new = _token(live_issuer, creds)
    assert _introspect(live_issuer, rs, new).json()["active"] is True


def test_tenant_suspension_and_client_disable_turn_tokens_inactive(live_issuer):
    rs = live_issuer.create_client(
        user="orders-api", tenant="platform", can_introspect=True, any_tenant=True
    )
    acme = live_issuer.create_client(tenant="acme")
    other = live_issuer.create_client(tenant="globex")
    acme_token, other_token = _token(live_issuer, acme), _token(live_issuer, other)
    live_issuer.set_tenant_status("acme", "suspended")
    assert _introspect(live_issuer, rs, acme_token).json() == {"active": False}
    assert _introspect(live_issuer, rs, other_token).json()["active"] is True
    with transaction(live_issuer.keyswap.sessions) as session:
        disable_client(session, other.client_id, now=live_issuer.keyswap.clock(), actor="test")
    assert _introspect(live_issuer, rs, other_token).json() == {"active": False}


def test_garbage_forged_and_foreign_tokens_are_inactive(live_issuer):
    import jwt

    from keyswap.jwks import generate_key

    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    creds = live_issuer.create_client()
    real = jwt.decode(_token(live_issuer, creds), options={"verify_signature": False})
    forger = generate_key()
    forged = forger.sign(real, typ="at+jwt")
    for token in ("not-a-jwt", forged):
        assert _introspect(live_issuer, rs, token).json() == {"active": False}
    # RFC 6749 §3.1: a parameter sent empty is omitted, and the token is required.
    assert _introspect(live_issuer, rs, "").json() == {
        "error": "invalid_request",
        "error_description": "missing token parameter",
    }


def test_client_without_permission_gets_403(live_issuer):
    creds = live_issuer.create_client()
    token = _token(live_issuer, creds)
    response = _introspect(live_issuer, creds, token)
    assert response.status_code == 403
    assert response.json()["error"] == "unauthorized_client"


def test_unauthenticated_introspection_is_401(live_issuer):
    response = requests.post(f"{live_issuer.url}/oauth/introspect", data={"token": "x"}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_missing_token_parameter_is_invalid_request(live_issuer):
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    response = requests.post(
        f"{live_issuer.url}/oauth/introspect",
        data={"token_type_hint": "access_token"},
        auth=(rs.client_id, rs.client_secret),
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_tenant_introspector_sees_only_its_own_tenants_tokens(live_issuer):
    # Issue 10 item 5: a tenant-beta resource server got the claims of a tenant-acme token.
    acme_rs = live_issuer.create_client(user="acme-api", tenant="acme", can_introspect=True)
    beta_rs = live_issuer.create_client(user="beta-api", tenant="beta", can_introspect=True)
    acme_token = _token(live_issuer, live_issuer.create_client(tenant="acme"))
    beta_token = _token(live_issuer, live_issuer.create_client(tenant="beta"))
    assert _introspect(live_issuer, acme_rs, acme_token).json()["tenant"] == "acme"
    assert _introspect(live_issuer, beta_rs, beta_token).json()["tenant"] == "beta"
    assert _introspect(live_issuer, beta_rs, acme_token).json() == {"active": False}
    assert _introspect(live_issuer, acme_rs, beta_token).json() == {"active": False}


def test_any_tenant_introspector_sees_every_tenants_tokens(live_issuer):
    platform = live_issuer.create_client(
        user="gateway", tenant="platform", can_introspect=True, any_tenant=True
    )
    for tenant in ("acme", "beta"):
        token = _token(live_issuer, live_issuer.create_client(tenant=tenant))
        body = _introspect(live_issuer, platform, token).json()
        assert body["active"] is True
        assert body["tenant"] == tenant


def _with_header(token, **header):
    """Re-encode ``token``'s header with ``header`` merged in (the signature no longer fits)."""
    import base64
    import json

    head, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    raw = json.dumps({**decoded, **header}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + f".{payload}.{signature}"


def _nested_header(token):
    import base64

    _head, payload, signature = token.split(".")
    nested = b'{"a":' + b"[" * 3_000 + b"]" * 3_000 + b"}"  # deeper than the recursion limit
    return base64.urlsafe_b64encode(nested).rstrip(b"=").decode() + f".{payload}.{signature}"


def test_odd_token_headers_are_inactive_at_introspection_and_ignored_at_revocation(live_issuer):
    # Issue 10 item 7: "typ": 1 was an AttributeError (500); nested JSON a RecursionError.
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    real = _token(live_issuer, rs)
    odd = [
        _with_header(real, typ=1),
        _with_header(real, typ=None),
        _with_header(real, typ=["at+jwt"]),
        _with_header(real, kid=["x"]),
        _nested_header(real),
    ]
    for token in odd:
        assert _introspect(live_issuer, rs, token).json() == {"active": False}
        response = requests.post(
            f"{live_issuer.url}/oauth/revoke",
            data={"token": token},
            auth=(rs.client_id, rs.client_secret),
            timeout=10,
        )
        assert response.status_code == 200, response.text
    assert _introspect(live_issuer, rs, real).json()["active"] is True
