"""Token exchange (RFC 8693) of legacy API keys over HTTP: every contract refusal, the token,
deprecation headers, coalesced usage across two app instances, and lookup with 100k keys."""

from __future__ import annotations

import hashlib
import io
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import jwt
import pytest
import requests
from sqlalchemy import delete, func, insert, select, text, update

from keyswap.issuer.db import transaction, utcnow
from keyswap.issuer.errors import format_time
from keyswap.issuer.grants.token_exchange import API_KEY_TOKEN_TYPE, MIGRATION_GUIDE_URL
from keyswap.issuer.legacy import hash_api_key, revoke_legacy_key
from keyswap.issuer.legacy.importing import import_legacy_keys, parse_csv
from keyswap.issuer.legacy.usage import usage_for
from keyswap.issuer.lifecycle import add_user
from keyswap.issuer.models import AuditEvent, LegacyKey, UserKind

from ..conftest import make_settings, prepared_app, start_live_server, stop_live_server

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


@pytest.fixture(autouse=True)
def _flushed_usage(live_server):
    """Start and end each test with nothing pending in the shared server's usage counts.

    Otherwise the exit-time flush would write to a test database already dropped.
    """
    usage_for(live_server.app).flush()
    yield
    usage_for(live_server.app).flush()


def _user(live_issuer, name, tenant="acme"):
    with transaction(live_issuer.keyswap.sessions) as session:
        add_user(session, name, tenant=tenant, kind=UserKind.SERVICE_ACCOUNT, actor="test")


def _import(live_issuer, header, *rows, **options):
    csv_text = "\n".join([header, *rows]) + "\n"
    with transaction(live_issuer.keyswap.sessions) as session:
        report = import_legacy_keys(
            session,
            live_issuer.keyswap.hasher,
            parse_csv(io.StringIO(csv_text)),
            now=live_issuer.keyswap.clock(),
            actor="test",
            **options,
        )
    assert report.ok, report.as_dict()
    return report


def _key(live_issuer, owner="billing-svc", *, tenant="acme", new_owner=True, **columns):
    """Import one fresh key for ``owner``; return (clear key, key id)."""
    if new_owner:
        _user(live_issuer, owner, tenant)
    api_key = "sk_" + secrets.token_urlsafe(24)
    values = {"scopes": "orders:read orders:write", **columns}
    header = ",".join(["api_key", "owner", *values])
    row = ",".join([api_key, owner, *values.values()])
    report = _import(live_issuer, header, row)
    return api_key, report.results[0].key_id


def _exchange(live_issuer, api_key, **form):
    data = {
        "grant_type": EXCHANGE,
        "subject_token_type": API_KEY_TOKEN_TYPE,
        "subject_token": api_key,
        **form,
    }
    data = {k: v for k, v in data.items() if v is not None}
    return requests.post(live_issuer.token_url, data=data, timeout=10)


def _set_key(live_issuer, key_id, **values):
    with transaction(live_issuer.keyswap.sessions) as session:
        session.execute(update(LegacyKey).where(LegacyKey.id == key_id).values(**values))


def _assert_refused(response, description, error="invalid_request"):
    assert response.status_code == 400, response.text
    assert response.json() == {"error": error, "error_description": description}
    assert response.headers["Cache-Control"] == "no-store"
    assert "WWW-Authenticate" not in response.headers


def test_exchange_issues_an_access_token_for_the_owner(live_issuer):
    api_key, key_id = _key(live_issuer, audiences="https://orders.example")
    response = _exchange(live_issuer, api_key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "orders:read orders:write"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Deprecation" not in response.headers and "Sunset" not in response.headers

    # A third-party verifier, given only the JWKS URL.
    signing_key = jwt.PyJWKClient(live_issuer.jwks_url).get_signing_key_from_jwt(
        body["access_token"]
    )
    claims = jwt.decode(
        body["access_token"],
        signing_key,
        algorithms=["ES256", "RS256", "EdDSA"],
        audience="https://orders.example",
        issuer=live_issuer.url,
    )
    assert claims["sub"] == live_issuer.user_id("billing-svc")
    assert claims["client_id"] == f"legacy:{key_id}"
    assert claims["ks_legacy_key"] == key_id
    assert claims["tenant"] == "acme"
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"


def test_key_imported_as_sha256_exchanges_with_the_clear_key(live_issuer):
    _user(live_issuer, "report-svc")
    api_key = "legacy-" + secrets.token_hex(16)
    digest = hashlib.sha256(api_key.encode()).hexdigest().upper()
    _import(live_issuer, "api_key_sha256,owner,scopes", f"{digest},report-svc,reports:read")
    response = _exchange(live_issuer, api_key)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "reports:read"


def test_unknown_key_is_unknown_api_key(live_issuer):
    _key(live_issuer)
    _assert_refused(_exchange(live_issuer, "sk_not-a-key"), "unknown API key")


def test_owner_state_is_not_told_for_an_unknown_key(live_issuer):
    _key(live_issuer, "gone-svc")
    live_issuer.set_user_status("gone-svc", "deleted")
    _assert_refused(_exchange(live_issuer, "sk_guess"), "unknown API key")


@pytest.mark.parametrize(
    ("form", "description"),
    [
        ({"subject_token_type": None}, "missing subject_token_type parameter"),
        (
            {"subject_token_type": ACCESS_TOKEN},
            f"unsupported subject_token_type; use {API_KEY_TOKEN_TYPE} or "
            "urn:ietf:params:oauth:token-type:jwt",
        ),
        ({"subject_token": None}, "missing subject_token parameter"),
        (
            {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
            f"unsupported requested_token_type; use {ACCESS_TOKEN}",
        ),
        (
            {"actor_token": "x", "actor_token_type": ACCESS_TOKEN},
            "delegation (actor_token) is not supported",
        ),  # fmt: skip
    ],
    ids=["no-type", "other-type", "no-token", "refresh-token", "actor"],
)
def test_malformed_exchange_is_invalid_request(live_issuer, form, description):
    api_key, _ = _key(live_issuer)
    _assert_refused(_exchange(live_issuer, api_key, **form), description)


def test_expired_key_says_when(live_issuer):
    api_key, key_id = _key(live_issuer)
    expired_at = utcnow().replace(microsecond=0) - timedelta(hours=1)
    _set_key(live_issuer, key_id, expires_at=expired_at)
    _assert_refused(
        _exchange(live_issuer, api_key), f"the API key expired at {format_time(expired_at)}"
    )


def test_revoked_key_says_when(live_issuer):
    api_key, key_id = _key(live_issuer)
    with transaction(live_issuer.keyswap.sessions) as session:
        revoked_at = revoke_legacy_key(
            session, key_id, now=live_issuer.keyswap.clock(), actor="test"
        ).revoked_at
    assert revoked_at is not None
    _assert_refused(
        _exchange(live_issuer, api_key), f"the API key was revoked at {format_time(revoked_at)}"
    )


def test_key_past_sunset_is_retired(live_issuer):
    api_key, _ = _key(live_issuer, sunset_at="2020-03-31T00:00:00Z")
    _assert_refused(
        _exchange(live_issuer, api_key),
        "this API key was retired on 2020-03-31; use client credentials",
    )


@pytest.mark.parametrize("status", ["deactivated", "suspended", "deleted"])
def test_inactive_owner_is_refused_naming_the_state(live_issuer, status):
    api_key, _ = _key(live_issuer)
    live_issuer.set_user_status("billing-svc", status)
    _assert_refused(
        _exchange(live_issuer, api_key), f"the user associated with this key is {status}"
    )


def test_suspended_tenant_is_refused(live_issuer):
    api_key, _ = _key(live_issuer, tenant="acme")
    live_issuer.set_tenant_status("acme", "suspended")
    _assert_refused(
        _exchange(live_issuer, api_key), "the tenant acme associated with this key is suspended"
    )


def test_owner_deactivated_mid_test_refuses_the_next_exchange(live_issuer):
    api_key, _ = _key(live_issuer)
    assert _exchange(live_issuer, api_key).status_code == 200
    live_issuer.set_user_status("billing-svc", "deactivated")
    _assert_refused(
        _exchange(live_issuer, api_key), "the user associated with this key is deactivated"
    )


def test_scope_narrows_and_a_disallowed_scope_is_named(live_issuer):
    api_key, _ = _key(live_issuer)
    narrowed = _exchange(live_issuer, api_key, scope="orders:write")
    assert narrowed.json()["scope"] == "orders:write"
    assert jwt.decode(narrowed.json()["access_token"], options={"verify_signature": False})[
        "scope"
    ] == ("orders:write")
    _assert_refused(
        _exchange(live_issuer, api_key, scope="orders:read admin"),
        "scope not allowed for this client: admin",
        error="invalid_scope",
    )


def test_resource_picks_the_audience_or_is_invalid_target(live_issuer):
    api_key, _ = _key(live_issuer, audiences="https://orders.example https://stock.example")
    picked = _exchange(live_issuer, api_key, resource="https://stock.example").json()
    claims = jwt.decode(picked["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://stock.example"
    _assert_refused(
        _exchange(live_issuer, api_key, resource="https://payroll.example"),
        "resource not allowed for this client: https://payroll.example",
        error="invalid_target",
    )


def test_key_state_is_checked_before_owner_and_owner_before_scope(live_issuer):
    api_key, key_id = _key(live_issuer)
    live_issuer.set_user_status("billing-svc", "suspended")
    _assert_refused(
        _exchange(live_issuer, api_key, scope="admin"),
        "the user associated with this key is suspended",
    )
    with transaction(live_issuer.keyswap.sessions) as session:
        at = revoke_legacy_key(
            session, key_id, now=live_issuer.keyswap.clock(), actor="test"
        ).revoked_at
    assert at is not None
    _assert_refused(
        _exchange(live_issuer, api_key), f"the API key was revoked at {format_time(at)}"
    )


def test_key_with_a_sunset_date_carries_deprecation_headers(live_issuer):
    api_key, key_id = _key(live_issuer, sunset_at="2099-12-31T00:00:00Z")
    response = _exchange(live_issuer, api_key)
    assert response.status_code == 200, response.text
    with transaction(live_issuer.keyswap.sessions) as session:
        key = session.get(LegacyKey, key_id)
        assert key is not None
        imported_at = key.created_at
    # RFC 9745 §2: a Structured Field Date; RFC 8594: an HTTP-date.
    assert response.headers["Deprecation"] == f"@{int(imported_at.timestamp())}"
    assert response.headers["Sunset"] == "Thu, 31 Dec 2099 00:00:00 GMT"
    assert parsedate_to_datetime(response.headers["Sunset"]) == datetime(2099, 12, 31, tzinfo=UTC)
    assert response.headers["Link"] == (
        f'<{MIGRATION_GUIDE_URL}>; rel="deprecation"; type="text/html"'
    )


def test_metadata_lists_the_exchange_grant(live_issuer):
    metadata = requests.get(f"{live_issuer.url}/.well-known/oauth-authorization-server", timeout=5)
    assert EXCHANGE in metadata.json()["grant_types_supported"]


def _introspect(live_issuer, introspector, token):
    response = requests.post(
        f"{live_issuer.url}/oauth/introspect",
        data={"token": token},
        auth=(introspector.client_id, introspector.client_secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_revoked_key_makes_its_tokens_inactive(live_issuer):
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    api_key, key_id = _key(live_issuer)
    token = _exchange(live_issuer, api_key).json()["access_token"]
    answer = _introspect(live_issuer, rs, token)
    assert answer["active"] is True
    assert answer["client_id"] == f"legacy:{key_id}"
    with transaction(live_issuer.keyswap.sessions) as session:
        revoke_legacy_key(session, key_id, now=live_issuer.keyswap.clock(), actor="test")
    assert _introspect(live_issuer, rs, token) == {"active": False}


def test_deactivated_owner_makes_legacy_tokens_inactive(live_issuer):
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    api_key, _ = _key(live_issuer)
    token = _exchange(live_issuer, api_key).json()["access_token"]
    assert _introspect(live_issuer, rs, token)["active"] is True
    live_issuer.set_user_status("billing-svc", "deactivated")
    assert _introspect(live_issuer, rs, token) == {"active": False}


def test_unknown_legacy_key_id_is_inactive(live_issuer):
    """A token naming a legacy key that does not exist (say, deleted) is not active."""
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    api_key, key_id = _key(live_issuer)
    token = _exchange(live_issuer, api_key).json()["access_token"]
    with transaction(live_issuer.keyswap.sessions) as session:
        session.execute(delete(LegacyKey).where(LegacyKey.id == key_id))
    assert _introspect(live_issuer, rs, token) == {"active": False}


def _use_count(live_issuer, key_id):
    with transaction(live_issuer.keyswap.sessions) as session:
        key = session.get(LegacyKey, key_id)
        assert key is not None
        return key.use_count, key.last_used_at


def test_usage_is_coalesced_and_adds_up_across_two_instances(
    live_issuer, database_url, kek, tmp_path
):
    api_key, key_id = _key(live_issuer)
    other = start_live_server(
        lambda url: prepared_app(make_settings(database_url, kek, tmp_path, issuer=url))
    )
    try:
        started = utcnow()
        for _ in range(7):
            assert _exchange(live_issuer, api_key).status_code == 200
        for _ in range(5):
            response = requests.post(
                f"{other.url}/oauth/token",
                data={
                    "grant_type": EXCHANGE,
                    "subject_token_type": API_KEY_TOKEN_TYPE,
                    "subject_token": api_key,
                },
                timeout=10,
            )
            assert response.status_code == 200, response.text
        # Nothing written per request: the counts wait in each process's accumulator.
        assert _use_count(live_issuer, key_id) == (0, None)
        first, second = usage_for(live_issuer.app), usage_for(other.app)
        assert first is not second
        assert (first.pending(), second.pending()) == ({key_id: 7}, {key_id: 5})
        assert first.flush() == 1 and second.flush() == 1
        uses, last_used = _use_count(live_issuer, key_id)
        assert uses == 12
        assert started <= last_used <= utcnow()
        assert first.flush() == 0  # nothing pending: no write
    finally:
        usage_for(other.app).close()
        stop_live_server(other)


def test_failed_exchange_is_not_counted(live_issuer):
    api_key, key_id = _key(live_issuer)
    live_issuer.set_user_status("billing-svc", "suspended")
    _exchange(live_issuer, api_key)
    assert key_id not in usage_for(live_issuer.app).pending()


def test_import_records_an_audit_event_without_the_key(live_issuer):
    api_key, _ = _key(live_issuer)
    with transaction(live_issuer.keyswap.sessions) as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "legacy_key.imported")
        ).all()
        assert len(events) == 1
        details = events[0].details
        assert details is not None
        assert details["imported"] == 1
        stored = session.scalars(select(LegacyKey.key_hash)).all()
    assert api_key not in repr(events[0].details)
    assert stored == [hash_api_key(live_issuer.keyswap.hasher, api_key)]
    assert hashlib.sha256(api_key.encode()).hexdigest() not in stored


def test_lookup_uses_the_index_with_100k_keys(live_issuer):
    api_key, key_id = _key(live_issuer)
    keyswap = live_issuer.keyswap
    with transaction(keyswap.sessions) as session:
        key = session.get(LegacyKey, key_id)
        assert key is not None
        owner_id = key.owner_id
        now = utcnow()
        session.execute(
            insert(LegacyKey),
            [
                {
                    "id": f"lk_bulk{n:06d}",
                    "key_hash": hashlib.sha256(b"bulk%d" % n).hexdigest(),
                    "owner_id": owner_id,
                    "scopes": "",
                    "audiences": [],
                    "created_at": now,
                    "use_count": 0,
                }
                for n in range(100_000)
            ],
        )
    with transaction(keyswap.sessions) as session:
        assert session.scalar(select(func.count()).select_from(LegacyKey)) == 100_001
        dialect = session.get_bind().dialect.name
        key_hash = hash_api_key(keyswap.hasher, api_key)
        if dialect == "postgresql":
            session.execute(text("ANALYZE legacy_keys"))
            plan: Sequence[object] = (
                session.execute(
                    text("EXPLAIN SELECT id FROM legacy_keys WHERE key_hash = :h"), {"h": key_hash}
                )
                .scalars()
                .all()
            )
        else:
            plan = session.execute(
                text("EXPLAIN QUERY PLAN SELECT id FROM legacy_keys WHERE key_hash = :h"),
                {"h": key_hash},
            ).all()
        plan_text = " ".join(str(line) for line in plan)
    assert "ix_legacy_keys_key_hash" in plan_text, plan_text
    started = time.perf_counter()
    for _ in range(20):
        assert _exchange(live_issuer, api_key).status_code == 200
    # Not a benchmark (see `python -m bench exchange`): only a guard against a scan.
    assert (time.perf_counter() - started) / 20 < 0.25


FAILED_CREDENTIALS = {
    "basic-wrong-secret": dict(auth=True, secret="not-the-secret"),
    "basic-unknown-client": dict(auth=("ks_nobody", "whatever")),
    "post-wrong-secret": dict(form=True, secret="not-the-secret"),
    "malformed-basic": dict(headers={"Authorization": "Basic !!!"}),
    "garbage-assertion": dict(
        data={
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": "not.a.jwt",
        }
    ),
}


@pytest.mark.parametrize("case", FAILED_CREDENTIALS.values(), ids=FAILED_CREDENTIALS.keys())
def test_exchange_with_failing_client_credentials_is_invalid_client(live_issuer, case):
    # RFC 6749 §5.2: client authentication failed is invalid_client (401), whatever the
    # grant; the valid API key beside it does not earn a token.
    api_key, _ = _key(live_issuer)
    creds = live_issuer.create_client(user="caller-svc")
    secret = case.get("secret")
    data = {
        "grant_type": EXCHANGE,
        "subject_token_type": API_KEY_TOKEN_TYPE,
        "subject_token": api_key,
        **case.get("data", {}),
    }
    auth = case.get("auth")
    if auth is True:
        auth = (creds.client_id, secret)
    if case.get("form"):
        data.update(client_id=creds.client_id, client_secret=secret)
    response = requests.post(
        live_issuer.token_url, data=data, auth=auth, headers=case.get("headers"), timeout=10
    )
    assert response.status_code == 401, response.text
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    assert "access_token" not in response.text


def test_exchange_with_valid_client_credentials_or_a_bare_client_id_works(live_issuer):
    api_key, key_id = _key(live_issuer)
    creds = live_issuer.create_client(user="caller-svc")
    data = {
        "grant_type": EXCHANGE,
        "subject_token_type": API_KEY_TOKEN_TYPE,
        "subject_token": api_key,
    }
    response = requests.post(
        live_issuer.token_url, data=data, auth=(creds.client_id, creds.client_secret), timeout=10
    )
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == f"legacy:{key_id}"  # the key is still the credential
    # A client_id alone proves nothing and asks nothing (RFC 6749 §2.3): no authentication.
    response = requests.post(
        live_issuer.token_url, data={**data, "client_id": "ks_whoever"}, timeout=10
    )
    assert response.status_code == 200, response.text


def test_exchange_with_empty_resource_and_scope_is_as_if_omitted(live_issuer):
    api_key, _ = _key(live_issuer, audiences="https://orders.example")
    response = _exchange(live_issuer, api_key, resource="", scope="", requested_token_type="")
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://orders.example"
    assert claims["scope"] == "orders:read orders:write"
