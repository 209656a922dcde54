"""``keyswap clients create | list | rotate-secret | disable`` through the CLI runner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from keyswap.jwks import generate_key

from .invoke import misused, ok, refused, run


@pytest.fixture
def owner(runner):
    """Create the service account ``billing-svc`` in tenant ``acme``."""
    ok(runner, "users", "create", "billing-svc", "--tenant", "acme", "--service-account")
    return "billing-svc"


def _jwks_file(tmp_path: Path, *, private: bool = False) -> str:
    pair = generate_key("ES256")
    jwk = dict(pair.public_jwk)
    if private:
        jwk["d"] = "AAAA"
    path = tmp_path / "client-jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return str(path)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _token(live_issuer, client_id, secret):
    """Ask the live issuer for a token with this client id and secret (Basic auth)."""
    return requests.post(
        live_issuer.token_url,
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=10,
    )


def test_create_with_defaults_prints_the_secret_once(runner, owner):
    created = ok(runner, "clients", "create", "--owner", owner, "--scope", "orders:read")
    assert created["client_id"].startswith("ks_")
    assert len(created["client_secret"]) >= 43  # 256 bits, base64url
    assert created["owner"] == owner
    assert created["tenant"] == "acme"
    assert created["scopes"] == ["orders:read"]
    assert created["audiences"] == []
    assert created["token_ttl"] is None
    assert created["auth_method"] == "client_secret_basic"
    assert created["jwks_uri"] is None
    assert created["enabled"] is True
    assert created["can_introspect"] is False
    assert created["introspect_any_tenant"] is False
    assert created["secrets_expire_at"] is None
    assert created["expiring_soon"] is False


def test_create_with_every_option_records_them(runner, owner):
    created = ok(
        runner,
        "clients", "create", "--owner", owner, "--scope", "orders:read orders:write orders:read",
        "--audience", "https://orders.example", "--audience", "https://billing.example",
        "--token-ttl", "600", "--auth-method", "client_secret_post",
        "--secret-ttl", str(30 * 86400), "--can-introspect",
    )  # fmt: skip
    assert created["scopes"] == ["orders:read", "orders:write"]
    assert created["audiences"] == ["https://orders.example", "https://billing.example"]
    assert created["token_ttl"] == 600
    assert created["auth_method"] == "client_secret_post"
    assert created["can_introspect"] is True
    assert created["introspect_any_tenant"] is False
    expires = _time(created["secrets_expire_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    assert created["expiring_soon"] is False


def test_created_client_gets_a_token_over_http(live_issuer, runner, owner):
    created = ok(
        runner, "clients", "create", "--owner", owner, "--scope", "orders:read",
        "--audience", "https://orders.example", "--token-ttl", "120",
    )  # fmt: skip
    response = _token(live_issuer, created["client_id"], created["client_secret"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["scope"], body["expires_in"]) == ("orders:read", 120)


def test_create_private_key_jwt_with_jwks_file_has_no_secret(runner, owner, tmp_path):
    created = ok(
        runner, "clients", "create", "--owner", owner, "--scope", "orders:read",
        "--auth-method", "private_key_jwt", "--jwks-file", _jwks_file(tmp_path),
    )  # fmt: skip
    assert created["client_secret"] is None
    assert created["auth_method"] == "private_key_jwt"
    assert created["jwks_uri"] is None


def test_create_private_key_jwt_with_jwks_uri(runner, owner):
    created = ok(
        runner, "clients", "create", "--owner", owner, "--scope", "orders:read",
        "--auth-method", "private_key_jwt", "--jwks-uri", "https://billing.example/jwks.json",
    )  # fmt: skip
    assert created["client_secret"] is None
    assert created["jwks_uri"] == "https://billing.example/jwks.json"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--auth-method", "private_key_jwt"],
            "private_key_jwt clients need one JWK Set (--jwks-file or --jwks-uri), and only they",
        ),
        (
            ["--jwks-uri", "https://billing.example/jwks.json"],
            "private_key_jwt clients need one JWK Set (--jwks-file or --jwks-uri), and only they",
        ),
        (
            ["--auth-method", "private_key_jwt", "--jwks-uri", "http://billing.example/jwks"],
            "a jwks_uri must use https: 'http://billing.example/jwks'",
        ),
        (
            ["--audience", "not a uri"],
            "audience 'not a uri' must be an absolute URI without fragment",
        ),
        (["--token-ttl", "3601"], "token TTL must be between 1 and 3600 seconds"),
    ],
    ids=["no-jwks", "jwks-without-method", "http-jwks-uri", "bad-audience", "ttl-above-max"],
)
def test_create_with_bad_values_is_a_domain_error(runner, owner, extra, message):
    args = ["clients", "create", "--owner", owner, "--scope", "orders:read", *extra]
    assert refused(runner, *args) == message


@pytest.mark.parametrize(
    "uri",
    [
        "https://169.254.169.254/latest/meta-data/jwks",  # cloud metadata (link-local)
        "https://10.0.0.5/jwks.json",
        "https://192.168.1.10/jwks.json",
        "https://127.0.0.1:8443/jwks.json",
        "https://[::1]/jwks.json",
        "https://[fe80::1]/jwks.json",
        "https://[::ffff:169.254.169.254]/jwks.json",
        "https://localhost/jwks.json",
        "http://127.0.0.1:8080/jwks.json",
    ],
)
def test_create_with_internal_jwks_uri_is_refused_by_default(runner, owner, uri):
    message = refused(
        runner, "clients", "create", "--owner", owner, "--scope", "orders:read",
        "--auth-method", "private_key_jwt", "--jwks-uri", uri,
    )  # fmt: skip
    assert message.startswith("a jwks_uri ")
    assert uri in message
    assert ok(runner, "clients", "list") == []


def test_create_with_loopback_jwks_uri_when_private_is_allowed(isolated_issuer):
    runner = isolated_issuer(outbound_allow_private=True).app.test_cli_runner()
    ok(runner, "users", "create", "billing-svc", "--service-account")
    uri = "http://127.0.0.1:8080/jwks.json"
    created = ok(
        runner, "clients", "create", "--owner", "billing-svc", "--scope", "orders:read",
        "--auth-method", "private_key_jwt", "--jwks-uri", uri,
    )  # fmt: skip
    assert created["jwks_uri"] == uri
    # Still no plain http beyond this machine, even when private addresses are allowed.
    message = refused(
        runner, "clients", "create", "--owner", "billing-svc", "--scope", "orders:read",
        "--auth-method", "private_key_jwt", "--jwks-uri", "http://10.0.0.5/jwks.json",
    )  # fmt: skip
    assert message.startswith("a jwks_uri must use https")


def test_create_with_private_keys_in_jwks_file_is_a_domain_error(runner, owner, tmp_path):
    message = refused(
        runner, "clients", "create", "--owner", owner, "--scope", "orders:read",
        "--auth-method", "private_key_jwt", "--jwks-file", _jwks_file(tmp_path, private=True),
    )  # fmt: skip
    assert message == "the JWK Set holds private key material; register public keys only"


def test_create_with_jwks_file_not_json_is_a_domain_error(runner, owner, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text("{not json")
    message = refused(
        runner, "clients", "create", "--owner", owner, "--scope", "orders:read",
        "--auth-method", "private_key_jwt", "--jwks-file", str(path),
    )  # fmt: skip
    assert message.startswith("--jwks-file is not JSON")


def test_create_for_unknown_owner_is_a_domain_error(runner):
    message = refused(runner, "clients", "create", "--owner", "ghost", "--scope", "a")
    assert message == "no user named 'ghost'"


def test_create_for_suspended_owner_is_a_domain_error(runner, owner):
    ok(runner, "users", "suspend", owner)
    message = refused(runner, "clients", "create", "--owner", owner, "--scope", "a")
    assert message == "user 'billing-svc' is suspended; clients need an active owner"


@pytest.mark.parametrize(
    "extra",
    [
        ["--token-ttl", "0"],
        ["--token-ttl", "ten"],
        ["--secret-ttl", "0"],
        ["--auth-method", "client_secret_jwt"],
        ["--jwks-file", "/nonexistent/jwks.json"],
    ],
    ids=["ttl-zero", "ttl-text", "secret-ttl-zero", "unknown-method", "missing-file"],
)
def test_create_with_bad_option_value_is_a_usage_error(runner, owner, extra):
    stderr = misused(runner, "clients", "create", "--owner", owner, "--scope", "a", *extra)
    assert "Invalid value" in stderr


@pytest.mark.parametrize("missing", ["--owner", "--scope"])
def test_create_without_required_option_is_a_usage_error(runner, owner, missing):
    args = {"--owner": owner, "--scope": "a"}
    del args[missing]
    flat = [part for pair in args.items() for part in pair]
    assert f"Missing option '{missing}'" in misused(runner, "clients", "create", *flat)


def test_list_never_shows_a_secret_and_flags_secrets_expiring_soon(runner, owner):
    soon = ok(runner, "clients", "create", "--owner", owner, "--scope", "a", "--secret-ttl", "3600")
    later = ok(
        runner, "clients", "create", "--owner", owner, "--scope", "a",
        "--secret-ttl", str(8 * 86400),
    )  # fmt: skip
    forever = ok(runner, "clients", "create", "--owner", owner, "--scope", "a")
    listed = run(runner, "clients", "list")
    text = run(runner, "clients", "list", as_json=False)
    assert listed.code == text.code == 0
    for created in (soon, later, forever):
        assert created["client_secret"] not in listed.stdout
        assert created["client_secret"] not in text.stdout
        assert created["client_id"] in text.stdout
    rows = {row["client_id"]: row for row in listed.data}
    assert all("client_secret" not in row for row in rows.values())
    assert rows[soon["client_id"]]["expiring_soon"] is True
    assert rows[later["client_id"]]["expiring_soon"] is False
    assert rows[forever["client_id"]]["expiring_soon"] is False
    assert rows[forever["client_id"]]["secrets_expire_at"] is None


def test_list_with_no_clients_is_empty(runner):
    assert ok(runner, "clients", "list") == []
    assert run(runner, "clients", "list", as_json=False).stdout == "(none)\n"


def test_rotate_secret_old_secret_keeps_working_for_the_grace(live_issuer, runner, owner):
    created = ok(runner, "clients", "create", "--owner", owner, "--scope", "a")
    rotated = ok(runner, "clients", "rotate-secret", created["client_id"], "--grace", "600")
    assert rotated["client_id"] == created["client_id"]
    assert rotated["client_secret"] not in (None, created["client_secret"])
    until = _time(rotated["old_secrets_expire_at"])
    assert abs(until - (datetime.now(UTC) + timedelta(seconds=600))) < timedelta(minutes=1)
    for secret in (created["client_secret"], rotated["client_secret"]):
        response = _token(live_issuer, created["client_id"], secret)
        assert response.status_code == 200, response.text


def test_rotate_secret_with_zero_grace_expires_the_old_secret_now(live_issuer, runner, owner):
    created = ok(runner, "clients", "create", "--owner", owner, "--scope", "a")
    ok(runner, "clients", "rotate-secret", created["client_id"], "--grace", "0")
    response = _token(live_issuer, created["client_id"], created["client_secret"])
    assert response.status_code == 401
    assert response.json()["error_description"].startswith("the client secret expired at ")


def test_rotate_secret_default_grace_is_one_day(runner, owner):
    created = ok(runner, "clients", "create", "--owner", owner, "--scope", "a")
    rotated = ok(runner, "clients", "rotate-secret", created["client_id"])
    until = _time(rotated["old_secrets_expire_at"])
    assert abs(until - (datetime.now(UTC) + timedelta(days=1))) < timedelta(minutes=1)


def test_rotate_secret_of_unknown_client_is_a_domain_error(runner):
    assert refused(runner, "clients", "rotate-secret", "ks_nope") == "no client 'ks_nope'"


def test_rotate_secret_of_private_key_jwt_client_is_a_domain_error(runner, owner, tmp_path):
    created = ok(
        runner, "clients", "create", "--owner", owner, "--scope", "a",
        "--auth-method", "private_key_jwt", "--jwks-file", _jwks_file(tmp_path),
    )  # fmt: skip
    message = refused(runner, "clients", "rotate-secret", created["client_id"])
    assert message == (
        f"client {created['client_id']!r} authenticates with private_key_jwt; it has no secret"
    )


def test_rotate_secret_negative_grace_is_a_usage_error(runner, owner):
    created = ok(runner, "clients", "create", "--owner", owner, "--scope", "a")
    assert "Invalid value" in misused(
        runner, "clients", "rotate-secret", created["client_id"], "--grace", "-1"
    )


def test_disable_refuses_the_client_over_http(live_issuer, runner, owner):
    created = ok(runner, "clients", "create", "--owner", owner, "--scope", "a")
    disabled = ok(runner, "clients", "disable", created["client_id"], "--reason", "leaked")
    assert disabled["enabled"] is False
    assert "client_secret" not in disabled
    response = _token(live_issuer, created["client_id"], created["client_secret"])
    assert response.status_code == 401
    assert response.json()["error_description"].startswith("the client was disabled at ")
    # Disabling again is a no-op, not an error.
    assert ok(runner, "clients", "disable", created["client_id"])["enabled"] is False


def test_disable_unknown_client_is_a_domain_error(runner):
    assert refused(runner, "clients", "disable", "ks_nope") == "no client 'ks_nope'"


def test_any_tenant_introspector_is_created_and_listed(runner, owner, live_issuer):
    created = ok(
        runner, "clients", "create", "--owner", owner, "--scope", "orders:read",
        "--can-introspect", "--any-tenant",
    )  # fmt: skip
    assert created["introspect_any_tenant"] is True
    listed = {c["client_id"]: c for c in ok(runner, "clients", "list")}
    assert listed[created["client_id"]]["introspect_any_tenant"] is True
    # Over HTTP: it sees a token of another tenant (beta) than its own (acme).
    other = live_issuer.create_client(tenant="beta")
    token = live_issuer.token(other).json()["access_token"]
    answer = requests.post(
        f"{live_issuer.url}/oauth/introspect",
        data={"token": token},
        auth=(created["client_id"], created["client_secret"]),
        timeout=10,
    )
    assert answer.json()["tenant"] == "beta"


def test_any_tenant_needs_can_introspect(runner, owner):
    message = refused(
        runner, "clients", "create", "--owner", owner, "--scope", "orders:read", "--any-tenant"
    )
    assert "--can-introspect" in message
