"""Introspection (RFC 7662) over HTTP: live status, cascades without per-token writes."""

from __future__ import annotations

import requests
from sqlalchemy import func, select

from keyswap.issuer.db import transaction
from keyswap.issuer.lifecycle import disable_client
from keyswap.issuer.models import RevokedToken


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


def test_reactivation_does_not_revive_earlier_tokens(live_issuer):
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    creds = live_issuer.create_client()
    old = _token(live_issuer, creds)
    live_issuer.set_user_status(creds.user, "suspended")
    live_issuer.set_user_status(creds.user, "active")
    assert _introspect(live_issuer, rs, old).json() == {"active": False}
    # A token issued after reactivation is live (issue it in a later second than the cutoff).
    import time

    time.sleep(1.05)
    new = _token(live_issuer, creds)
    assert _introspect(live_issuer, rs, new).json()["active"] is True


def test_tenant_suspension_and_client_disable_turn_tokens_inactive(live_issuer):
    rs = live_issuer.create_client(user="orders-api", tenant="platform", can_introspect=True)
    acme = live_issuer.create_client(tenant="acme")
    other = live_issuer.create_client(tenant="globex")
    acme_token, other_token = _token(live_issuer, acme), _token(live_issuer, other)
    live_issuer.set_tenant_status("acme", "suspended")
    assert _introspect(live_issuer, rs, acme_token).json() == {"active": False}
    assert _introspect(live_issuer, rs, other_token).json()["active"] is True
    with transaction(live_issuer.keyswap.sessions) as session:
        disable_client(session, other.client_id, actor="test")
    assert _introspect(live_issuer, rs, other_token).json() == {"active": False}


def test_garbage_forged_and_foreign_tokens_are_inactive(live_issuer):
    import jwt

    from keyswap.jwks import generate_key

    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    creds = live_issuer.create_client()
    real = jwt.decode(_token(live_issuer, creds), options={"verify_signature": False})
    forger = generate_key()
    forged = forger.sign(real, typ="at+jwt")
    for token in ("not-a-jwt", forged, ""):
        assert _introspect(live_issuer, rs, token).json() == {"active": False}


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
