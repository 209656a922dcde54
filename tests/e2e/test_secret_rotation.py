"""Client secret rotation with a grace period, over HTTP."""

from __future__ import annotations

import json

from keyswap.issuer.cli import cli
from keyswap.issuer.models import AuthMethod

from ..conftest import MovingClock


def _rotate(live_issuer, client_id, *args):
    result = live_issuer.app.test_cli_runner().invoke(
        cli, ["clients", "rotate-secret", client_id, *args, "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _token_status(live_issuer, client_id, secret):
    import requests

    response = requests.post(
        live_issuer.token_url,
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=10,
    )
    return response.status_code, response.json()


def test_old_and_new_secret_both_work_during_the_grace(live_issuer):
    creds = live_issuer.create_client()
    rotated = _rotate(live_issuer, creds.client_id, "--grace", "3600")
    assert rotated["client_secret"] != creds.client_secret
    assert _token_status(live_issuer, creds.client_id, creds.client_secret)[0] == 200
    assert _token_status(live_issuer, creds.client_id, rotated["client_secret"])[0] == 200


def test_old_secret_is_refused_as_expired_after_the_grace(isolated_issuer):
    clock = MovingClock()
    live_issuer = isolated_issuer(clock)
    creds = live_issuer.create_client()
    rotated = _rotate(live_issuer, creds.client_id, "--grace", "1")
    clock.advance(2)  # past the one-second grace
    status, body = _token_status(live_issuer, creds.client_id, creds.client_secret)
    assert status == 401
    assert body["error"] == "invalid_client"
    assert body["error_description"].startswith("the client secret expired at ")
    assert body["error_description"].endswith(rotated["old_secrets_expire_at"][:19] + "Z")
    assert _token_status(live_issuer, creds.client_id, rotated["client_secret"])[0] == 200


def test_zero_grace_cuts_the_old_secret_at_once(live_issuer):
    creds = live_issuer.create_client()
    rotated = _rotate(live_issuer, creds.client_id, "--grace", "0")
    assert _token_status(live_issuer, creds.client_id, creds.client_secret)[0] == 401
    assert _token_status(live_issuer, creds.client_id, rotated["client_secret"])[0] == 200


def test_clients_list_shows_secrets_expiring_soon(live_issuer):
    creds = live_issuer.create_client()
    calm = live_issuer.create_client()
    _rotate(live_issuer, creds.client_id, "--grace", "60", "--secret-ttl", "86400")
    result = live_issuer.app.test_cli_runner().invoke(cli, ["clients", "list", "--json"])
    listed = {c["client_id"]: c for c in json.loads(result.stdout)}
    assert listed[creds.client_id]["expiring_soon"] is True
    assert listed[creds.client_id]["secrets_expire_at"] is not None
    assert listed[calm.client_id]["expiring_soon"] is False
    assert listed[calm.client_id]["secrets_expire_at"] is None
    assert "client_secret" not in listed[creds.client_id]


def test_private_key_jwt_client_has_no_secret_to_rotate(live_issuer):
    from keyswap.issuer.db import transaction
    from keyswap.issuer.storage import get_client

    creds = live_issuer.create_client()
    with transaction(live_issuer.keyswap.sessions) as session:
        get_client(session, creds.client_id).auth_method = AuthMethod.PRIVATE_KEY_JWT
    result = live_issuer.app.test_cli_runner().invoke(
        cli, ["clients", "rotate-secret", creds.client_id]
    )
    assert result.exit_code == 1
    assert "private_key_jwt" in result.stderr
