"""The token endpoint over HTTP: live owner checks, scope and resource, and bad input."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
import requests
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from keyswap.issuer.db import transaction
from keyswap.issuer.models import AuditEvent, Client

from ..conftest import TcpProxy, make_settings, prepared_app, start_live_server, stop_live_server


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def test_owner_deactivated_between_two_requests_gets_token_then_refusal(live_issuer):
    creds = live_issuer.create_client()
    first = live_issuer.token(creds)
    assert first.status_code == 200
    live_issuer.set_user_status(creds.user, "deactivated")
    second = live_issuer.token(creds)
    assert second.status_code == 400
    assert second.json() == {
        "error": "invalid_grant",
        "error_description": "the user associated with this key is deactivated",
    }


def test_reactivated_owner_gets_tokens_again(live_issuer):
    creds = live_issuer.create_client()
    live_issuer.set_user_status(creds.user, "suspended")
    assert live_issuer.token(creds).status_code == 400
    live_issuer.set_user_status(creds.user, "active")
    assert live_issuer.token(creds).status_code == 200


def test_success_response_is_not_cacheable(live_issuer):
    response = live_issuer.token(live_issuer.create_client())
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert response.headers["Content-Type"] == "application/json"


def test_scope_narrows_and_absent_scope_grants_all(live_issuer):
    creds = live_issuer.create_client(scope="a:read b:read c:write")
    narrowed = live_issuer.token(creds, scope="c:write a:read").json()
    assert narrowed["scope"] == "c:write a:read"
    assert _claims(narrowed["access_token"])["scope"] == "c:write a:read"
    everything = live_issuer.token(creds).json()
    assert _claims(everything["access_token"])["scope"] == "a:read b:read c:write"


def test_resource_picks_the_audience_and_default_is_the_first(live_issuer):
    creds = live_issuer.create_client(audience=["https://orders.example", "https://stock.example"])
    picked = live_issuer.token(creds, resource="https://stock.example").json()
    assert _claims(picked["access_token"])["aud"] == "https://stock.example"
    default = live_issuer.token(creds).json()
    assert _claims(default["access_token"])["aud"] == "https://orders.example"


def test_service_account_sub_is_its_stable_id(live_issuer):
    creds = live_issuer.create_client(user="nightly-export", service_account=True)
    claims = _claims(live_issuer.token(creds).json()["access_token"])
    assert claims["sub"] == live_issuer.user_id("nightly-export")
    assert claims["sub"].startswith("svc_")


def _counts(live_issuer) -> tuple[int, int]:
    with transaction(live_issuer.keyswap.sessions) as session:
        return (
            session.execute(select(func.count()).select_from(Client)).scalar_one(),
            session.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
        )


BAD_REQUESTS = {
    "get": dict(method="GET", status=405, error="invalid_request"),
    "json-body": dict(
        json={"grant_type": "client_credentials"}, status=400, error="invalid_request"
    ),
    "missing-grant-type": dict(data={"scope": "orders:read"}, status=400, error="invalid_request"),
    "unknown-grant-type": dict(
        data={"grant_type": "password"}, status=400, error="unsupported_grant_type"
    ),
    "duplicated-grant-type": dict(
        data=[("grant_type", "client_credentials"), ("grant_type", "client_credentials")],
        status=400,
        error="invalid_request",
    ),
    "duplicated-scope": dict(
        data=[("grant_type", "client_credentials"), ("scope", "a"), ("scope", "b")],
        status=400,
        error="invalid_request",
    ),
    "oversized-body": dict(
        data={"grant_type": "client_credentials", "scope": "x" * 100_000},
        status=413,
        error="invalid_request",
    ),
    "non-utf8-form": dict(
        data=b"grant_type=client_credentials&scope=%ff%fe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        status=400,
        error="invalid_scope",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_input_gets_a_clear_4xx_and_changes_nothing(live_issuer, case):
    creds = live_issuer.create_client()
    before = _counts(live_issuer)
    case = dict(case)
    status, error = case.pop("status"), case.pop("error")
    method = case.pop("method", "POST")
    response = requests.request(
        method,
        live_issuer.token_url,
        auth=(creds.client_id, creds.client_secret),
        timeout=10,
        **case,
    )
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    assert _counts(live_issuer) == before
    if method == "GET":
        assert response.headers["Allow"].startswith("POST") or "POST" in response.headers["Allow"]


def test_two_authentication_methods_in_one_request_is_invalid_request(live_issuer):
    creds = live_issuer.create_client()
    response = requests.post(
        live_issuer.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
        auth=(creds.client_id, creds.client_secret),
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_secret_in_query_string_is_not_accepted(live_issuer):
    from keyswap.issuer.models import AuthMethod

    creds = live_issuer.create_client(auth_method=AuthMethod.CLIENT_SECRET_POST)
    response = requests.post(
        live_issuer.token_url,
        params={"client_id": creds.client_id, "client_secret": creds.client_secret},
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    assert response.status_code == 401


@pytest.fixture
def outage(database_url, kek, tmp_path):
    """A second server on its own database, and a function that takes the database away.

    On PostgreSQL the server reaches the database through a TCP proxy that the test cuts;
    on SQLite, where there is no connection to cut, the tables are dropped from under it.
    """
    proxy = None
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'outage.db'}"
    else:
        real = make_url(database_url)
        proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
        url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    live = start_live_server(
        lambda base: prepared_app(make_settings(url, kek, tmp_path, issuer=base))
    )

    def take_database_away() -> None:
        if proxy is not None:
            proxy.cut()
        else:
            with live.keyswap.engine.begin() as conn:
                conn.execute(text("DROP TABLE client_secrets"))

    yield live, take_database_away
    stop_live_server(live)
    if proxy is not None:
        proxy.cut()


def test_database_unavailable_is_503_and_no_token(outage):
    from ..conftest import LiveIssuer

    live, take_database_away = outage
    issuer = LiveIssuer(live)
    creds = issuer.create_client()
    assert issuer.token(creds).status_code == 200
    take_database_away()
    response = issuer.token(creds)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "the service is temporarily unavailable; retry later",
    }
    assert "access_token" not in response.text
