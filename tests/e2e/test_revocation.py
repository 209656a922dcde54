"""Revocation (RFC 7009) over HTTP, and revocation by jti, client and user from the CLI."""

from __future__ import annotations

import json
from datetime import timedelta

import jwt
import pytest
import requests
from sqlalchemy import func, select

from keyswap.issuer.cli import cli
from keyswap.issuer.db import transaction, utcnow
from keyswap.issuer.models import AuditEvent, RevokedToken
from keyswap.issuer.revocation import prune_revoked


def _token(live_issuer, creds):
    response = live_issuer.token(creds)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _revoke(live_issuer, creds, token, **extra):
    return requests.post(
        f"{live_issuer.url}/oauth/revoke",
        data={"token": token, **extra},
        auth=(creds.client_id, creds.client_secret),
        timeout=10,
    )


def _active(live_issuer, rs, token):
    response = requests.post(
        f"{live_issuer.url}/oauth/introspect",
        data={"token": token},
        auth=(rs.client_id, rs.client_secret),
        timeout=10,
    )
    return response.json()["active"]


def test_client_revokes_its_own_token(live_issuer):
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    creds = live_issuer.create_client()
    token, other = _token(live_issuer, creds), _token(live_issuer, creds)
    response = _revoke(live_issuer, creds, token, token_type_hint="access_token")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert _active(live_issuer, rs, token) is False
    assert _active(live_issuer, rs, other) is True
    with transaction(live_issuer.keyswap.sessions) as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "token.revoked")
        ).all()
    assert [e.actor for e in events] == [f"client:{creds.client_id}"]


def test_revocation_answer_is_an_empty_body_without_a_media_type(live_issuer):
    creds = live_issuer.create_client()
    response = _revoke(live_issuer, creds, _token(live_issuer, creds))
    assert (response.status_code, response.content) == (200, b"")
    assert "Content-Type" not in response.headers


@pytest.mark.parametrize("endpoint", ["revoke", "introspect"])
def test_missing_token_and_unsupported_hint_are_described(live_issuer, endpoint):
    rs = live_issuer.create_client(can_introspect=True)

    def post(**form):
        return requests.post(
            f"{live_issuer.url}/oauth/{endpoint}",
            data=form,
            auth=(rs.client_id, rs.client_secret),
            timeout=10,
        )

    missing = post(token_type_hint="access_token")
    assert missing.status_code == 400
    assert missing.json() == {
        "error": "invalid_request",
        "error_description": "missing token parameter",
    }
    hinted = post(token="abc", token_type_hint="id_token")
    assert hinted.status_code == 400
    assert hinted.json()["error"] == "unsupported_token_type"  # RFC 7009 §2.2.1
    assert "'id_token' is not supported" in hinted.json()["error_description"]


def test_unknown_and_already_revoked_tokens_answer_200(live_issuer):
    creds = live_issuer.create_client()
    token = _token(live_issuer, creds)
    assert _revoke(live_issuer, creds, "not-a-token").status_code == 200
    assert _revoke(live_issuer, creds, token).status_code == 200
    assert _revoke(live_issuer, creds, token).status_code == 200


def test_a_client_cannot_revoke_another_clients_token(live_issuer):
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    owner, intruder = live_issuer.create_client(), live_issuer.create_client()
    token = _token(live_issuer, owner)
    response = _revoke(live_issuer, intruder, token)
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert _active(live_issuer, rs, token) is True


def test_revocation_needs_client_authentication(live_issuer):
    response = requests.post(f"{live_issuer.url}/oauth/revoke", data={"token": "x"}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_revoked_rows_are_pruned_after_expiry(live_issuer):
    creds = live_issuer.create_client(token_ttl=60)
    token = _token(live_issuer, creds)
    _revoke(live_issuer, creds, token)
    with transaction(live_issuer.keyswap.sessions) as session:
        assert session.scalar(select(func.count()).select_from(RevokedToken)) == 1
        assert prune_revoked(session, utcnow() + timedelta(seconds=30)) == 0
        assert prune_revoked(session, utcnow() + timedelta(seconds=61)) == 1
        assert session.scalar(select(func.count()).select_from(RevokedToken)) == 0


def _cli(live_issuer, *args):
    runner = live_issuer.app.test_cli_runner()
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_revokes_by_jti_client_and_user(live_issuer):
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    a = live_issuer.create_client(user="alice")
    a2 = live_issuer.create_client(user="alice")
    b = live_issuer.create_client(user="bob")
    c = live_issuer.create_client(user="carol")
    by_jti, kept = _token(live_issuer, c), _token(live_issuer, c)
    alice_1, alice_2, bob = _token(live_issuer, a), _token(live_issuer, a2), _token(live_issuer, b)

    jti = jwt.decode(by_jti, options={"verify_signature": False})["jti"]
    assert _cli(live_issuer, "tokens", "revoke", "--jti", jti)["already_revoked"] is False
    assert _active(live_issuer, rs, by_jti) is False
    assert _active(live_issuer, rs, kept) is True

    _cli(live_issuer, "tokens", "revoke", "--client", b.client_id)
    assert _active(live_issuer, rs, bob) is False

    _cli(live_issuer, "tokens", "revoke", "--user", "alice")
    assert _active(live_issuer, rs, alice_1) is False
    assert _active(live_issuer, rs, alice_2) is False
    assert _active(live_issuer, rs, kept) is True


def test_cli_revoke_needs_exactly_one_target(live_issuer):
    result = live_issuer.app.test_cli_runner().invoke(cli, ["tokens", "revoke"])
    assert result.exit_code == 2
