"""Every row of CONTRACT.md's error table, for the client credentials grant, over HTTP.

Token-exchange columns arrive with the legacy-key grant; the 429 row with rate limits. The
last rows: failed client authentication at token exchange, and empty parameters.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import jwt
import pytest
import requests
from sqlalchemy import update

from keyswap.issuer.db import transaction, utcnow
from keyswap.issuer.errors import format_time
from keyswap.issuer.lifecycle import disable_client
from keyswap.issuer.models import ClientSecret

GENERIC = {"error": "invalid_client", "description": "client authentication failed"}


def _post(url, *, auth=None, headers=None, **form):
    return requests.post(
        url,
        data={"grant_type": "client_credentials", **form},
        auth=auth,
        headers=headers,
        timeout=10,
    )


def _assert_error(response, status, error, description):
    assert response.status_code == status, response.text
    assert response.json() == {"error": error, "error_description": description}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"] == "application/json"
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")


def _set_secret(live_issuer, client_id, **values):
    with transaction(live_issuer.keyswap.sessions) as session:
        session.execute(
            update(ClientSecret).where(ClientSecret.client_id == client_id).values(**values)
        )


def test_unknown_client_is_a_bare_invalid_client(live_issuer):
    response = _post(live_issuer.token_url, auth=("ks_nobody", "whatever-secret"))
    _assert_error(response, 401, **GENERIC)


def test_wrong_secret_is_indistinguishable_from_unknown_client(live_issuer):
    creds = live_issuer.create_client()
    response = _post(live_issuer.token_url, auth=(creds.client_id, "not-the-secret"))
    _assert_error(response, 401, **GENERIC)


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b":secret-without-id").decode(),
        "Basic ",
    ],
    ids=["not-base64", "no-colon", "not-utf8", "empty-id", "empty"],
)
def test_malformed_basic_credentials_are_invalid_client(live_issuer, header):
    response = _post(live_issuer.token_url, headers={"Authorization": header})
    _assert_error(response, 401, **GENERIC)


def test_no_credentials_at_all_is_invalid_client(live_issuer):
    _assert_error(_post(live_issuer.token_url), 401, **GENERIC)


def test_expired_secret_says_when(live_issuer):
    creds = live_issuer.create_client()
    expired_at = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    _set_secret(live_issuer, creds.client_id, expires_at=expired_at)
    response = live_issuer.token(creds)
    _assert_error(
        response, 401, "invalid_client", f"the client secret expired at {format_time(expired_at)}"
    )


def test_expired_secret_stays_generic_for_a_wrong_secret(live_issuer):
    creds = live_issuer.create_client()
    _set_secret(live_issuer, creds.client_id, expires_at=utcnow() - timedelta(minutes=5))
    _assert_error(_post(live_issuer.token_url, auth=(creds.client_id, "guess")), 401, **GENERIC)


def test_revoked_secret_says_when(live_issuer):
    creds = live_issuer.create_client()
    revoked_at = utcnow().replace(microsecond=0) - timedelta(seconds=30)
    _set_secret(live_issuer, creds.client_id, revoked_at=revoked_at)
    response = live_issuer.token(creds)
    _assert_error(
        response,
        401,
        "invalid_client",
        f"the client secret was revoked at {format_time(revoked_at)}",
    )


def test_disabled_client_is_refused(live_issuer):
    creds = live_issuer.create_client()
    with transaction(live_issuer.keyswap.sessions) as session:
        client = disable_client(
            session, creds.client_id, now=live_issuer.keyswap.clock(), actor="test"
        )
        disabled_at = client.disabled_at
    assert disabled_at is not None
    response = live_issuer.token(creds)
    _assert_error(
        response, 401, "invalid_client", f"the client was disabled at {format_time(disabled_at)}"
    )


@pytest.mark.parametrize("status", ["deactivated", "suspended", "deleted"])
def test_inactive_owner_is_invalid_grant_naming_the_state(live_issuer, status):
    creds = live_issuer.create_client()
    live_issuer.set_user_status(creds.user, status)
    response = live_issuer.token(creds)
    _assert_error(response, 400, "invalid_grant", f"the user associated with this key is {status}")


def test_suspended_tenant_is_invalid_grant(live_issuer):
    creds = live_issuer.create_client(tenant="acme")
    live_issuer.set_tenant_status("acme", "suspended")
    response = live_issuer.token(creds)
    _assert_error(
        response, 400, "invalid_grant", "the tenant acme associated with this key is suspended"
    )


def test_owner_state_is_not_told_without_the_secret(live_issuer):
    creds = live_issuer.create_client()
    live_issuer.set_user_status(creds.user, "deleted")
    _assert_error(_post(live_issuer.token_url, auth=(creds.client_id, "guess")), 401, **GENERIC)


def test_scope_not_allowed_names_the_scope(live_issuer):
    creds = live_issuer.create_client(scope="orders:read")
    response = live_issuer.token(creds, scope="orders:read admin billing:write")
    _assert_error(
        response, 400, "invalid_scope", "scope not allowed for this client: admin billing:write"
    )


def test_resource_not_allowed_names_the_resource(live_issuer):
    creds = live_issuer.create_client(audience=["https://orders.example"])
    response = live_issuer.token(creds, resource="https://payroll.example")
    _assert_error(
        response,
        400,
        "invalid_target",
        "resource not allowed for this client: https://payroll.example",
    )


def test_several_resources_are_invalid_target(live_issuer):
    creds = live_issuer.create_client(audience=["https://a.example", "https://b.example"])
    response = requests.post(
        live_issuer.token_url,
        data=[
            ("grant_type", "client_credentials"),
            ("resource", "https://a.example"),
            ("resource", "https://b.example"),
        ],
        auth=(creds.client_id, creds.client_secret),
        timeout=10,
    )
    _assert_error(response, 400, "invalid_target", "at most one resource may be requested")


def test_owner_check_precedes_scope_check(live_issuer):
    creds = live_issuer.create_client(scope="orders:read")
    live_issuer.set_user_status(creds.user, "suspended")
    response = live_issuer.token(creds, scope="admin")
    _assert_error(response, 400, "invalid_grant", "the user associated with this key is suspended")


def test_failed_client_authentication_at_token_exchange_is_invalid_client(live_issuer):
    # RFC 6749 §5.2: whatever the grant, client credentials that fail are a 401, no token.
    creds = live_issuer.create_client()
    response = requests.post(
        live_issuer.token_url,
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:keyswap:params:oauth:token-type:api-key",
            "subject_token": "any-key",
        },
        auth=(creds.client_id, "not-the-secret"),
        timeout=10,
    )
    _assert_error(response, 401, **GENERIC)


@pytest.mark.parametrize("name", ["resource", "scope"])
def test_parameter_sent_empty_is_as_if_omitted(live_issuer, name):
    # RFC 6749 §3.1: "Parameters sent without a value MUST be treated as if they were
    # omitted from the request."
    creds = live_issuer.create_client(audience=["https://orders.example"])
    response = live_issuer.token(creds, **{name: ""})
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://orders.example"
    assert claims["scope"] == "orders:read orders:write"


def test_empty_and_given_resource_is_one_resource(live_issuer):
    creds = live_issuer.create_client(audience=["https://a.example", "https://b.example"])
    response = requests.post(
        live_issuer.token_url,
        data=[
            ("grant_type", "client_credentials"),
            ("resource", ""),
            ("resource", "https://b.example"),
        ],
        auth=(creds.client_id, creds.client_secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://b.example"
