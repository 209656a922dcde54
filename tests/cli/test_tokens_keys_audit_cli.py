"""`keyswap tokens revoke`, `keys rotate | revoke | list` and `audit` through the CLI runner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests

from ..conftest import Creds, LiveIssuer, MovingClock
from .invoke import misused, ok, refused, run


def _introspect(live_issuer: LiveIssuer, introspector: Creds, token: str) -> bool:
    assert introspector.client_secret is not None
    response = requests.post(
        f"{live_issuer.url}/oauth/introspect",
        data={"token": token},
        auth=(introspector.client_id, introspector.client_secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


def _token(live_issuer: LiveIssuer, creds: Creds) -> str:
    response = live_issuer.token(creds)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def introspector(live_issuer):
    """A resource server's client, allowed to introspect."""
    return live_issuer.create_client(user="orders-api", can_introspect=True)


def test_tokens_revoke_jti_makes_that_token_inactive(live_issuer, runner, introspector):
    creds = live_issuer.create_client(user="alice")
    revoked, kept = _token(live_issuer, creds), _token(live_issuer, creds)
    jti = jwt.decode(revoked, options={"verify_signature": False})["jti"]
    assert ok(runner, "tokens", "revoke", "--jti", jti, "--reason", "leaked") == {
        "revoked": "token",
        "jti": jti,
        "already_revoked": False,
    }
    assert _introspect(live_issuer, introspector, revoked) is False
    assert _introspect(live_issuer, introspector, kept) is True
    assert ok(runner, "tokens", "revoke", "--jti", jti)["already_revoked"] is True


def test_tokens_revoke_client_makes_its_tokens_inactive(live_issuer, runner, introspector):
    creds = live_issuer.create_client(user="alice")
    token = _token(live_issuer, creds)
    result = ok(runner, "tokens", "revoke", "--client", creds.client_id)
    assert (result["revoked"], result["client_id"]) == ("client", creds.client_id)
    assert result["before"].endswith("Z")
    assert _introspect(live_issuer, introspector, token) is False


def test_tokens_revoke_user_makes_their_tokens_inactive(live_issuer, runner, introspector):
    creds = live_issuer.create_client(user="alice")
    token = _token(live_issuer, creds)
    result = ok(runner, "tokens", "revoke", "--user", "alice")
    assert (result["revoked"], result["user"]) == ("user", "alice")
    assert _introspect(live_issuer, introspector, token) is False


@pytest.mark.parametrize("option", ["--client", "--user"])
def test_tokens_revoke_cuts_off_at_the_app_clock(isolated_issuer, option):
    clock = MovingClock()
    issuer = isolated_issuer(clock)
    clock.advance(3600)  # the app's clock is an hour ahead of the wall clock
    introspector = issuer.create_client(user="orders-api", can_introspect=True)
    creds = issuer.create_client(user="alice")
    earlier = _token(issuer, creds)
    name = creds.client_id if option == "--client" else creds.user
    result = ok(issuer.app.test_cli_runner(), "tokens", "revoke", option, name)
    assert datetime.fromisoformat(result["before"].replace("Z", "+00:00")) == clock.now
    # Issued an hour after the wall clock's "now": a wall-clock cutoff would leave it active.
    assert _introspect(issuer, introspector, earlier) is False
    clock.advance(2)  # a later second than the cutoff
    assert _introspect(issuer, introspector, _token(issuer, creds)) is True


@pytest.mark.parametrize(
    ("option", "message"),
    [("--client", "no client 'ks_nope'"), ("--user", "no user named 'ks_nope'")],
)
def test_tokens_revoke_unknown_principal_is_a_domain_error(runner, option, message):
    assert refused(runner, "tokens", "revoke", option, "ks_nope") == message


@pytest.mark.parametrize(
    "args",
    [[], ["--jti", "a", "--user", "b"], ["--client", "a", "--jti", "b"]],
    ids=["none", "jti-and-user", "client-and-jti"],
)
def test_tokens_revoke_needs_exactly_one_target(runner, args):
    assert "give exactly one of --jti, --client, --user" in misused(
        runner, "tokens", "revoke", *args
    )


@pytest.fixture
def own_issuer(isolated_issuer):
    """An issuer on its own database: key rotation must not touch the shared server's keys."""
    return isolated_issuer()


def test_keys_list_shows_the_active_key_without_private_material(own_issuer):
    runner = own_issuer.app.test_cli_runner()
    listed = run(runner, "keys", "list")
    assert listed.code == 0
    (key,) = listed.data
    assert (key["alg"], key["state"], key["published"]) == ("ES256", "active", True)
    assert key["retired_at"] is None and key["published_until"] is None
    assert set(key) == {
        "kid", "alg", "state", "published", "created_at", "activates_at",
        "activated_at", "retired_at", "published_until",
    }  # fmt: skip


@pytest.mark.parametrize("alg", [None, "ES256", "RS256", "EdDSA"])
def test_keys_rotate_publishes_a_next_key_of_the_algorithm(own_issuer, alg):
    runner = own_issuer.app.test_cli_runner()
    args = ["keys", "rotate"] + (["--alg", alg] if alg else [])
    new = ok(runner, *args)
    assert new["alg"] == (alg or "ES256")
    assert (new["state"], new["published"]) == ("next", True)
    activates = datetime.fromisoformat(new["activates_at"].replace("Z", "+00:00"))
    expected = datetime.now(UTC) + timedelta(seconds=own_issuer.keyswap.settings.key_prepublish)
    assert abs(activates - expected) < timedelta(minutes=1)
    states = [(k["kid"], k["state"]) for k in ok(runner, "keys", "list")]
    assert (new["kid"], "next") in states and len(states) == 2
    # The JWKS holds the next key before it signs (CONTRACT "HTTP").
    own_issuer.keyswap.keyring.reload()
    kids = {k["kid"] for k in requests.get(own_issuer.jwks_url, timeout=10).json()["keys"]}
    assert new["kid"] in kids


def test_keys_rotate_while_a_key_waits_is_a_domain_error(own_issuer):
    runner = own_issuer.app.test_cli_runner()
    waiting = ok(runner, "keys", "rotate")
    assert refused(runner, "keys", "rotate").startswith(
        f"key {waiting['kid']} is already published and signs from "
    )


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_keys_rotate_now_signs_once_every_process_publishes_it(own_issuer):
    runner = own_issuer.app.test_cli_runner()
    new = ok(runner, "keys", "rotate", "--now")
    settle = own_issuer.keyswap.settings.rotation_schedule.settle  # 2 x 10 s + 1 s
    assert settle == timedelta(seconds=21)
    assert new["state"] == "next"
    assert _at(new["activates_at"]) - _at(new["created_at"]) == settle


def test_keys_rotate_now_brings_a_waiting_key_forward(own_issuer):
    runner = own_issuer.app.test_cli_runner()
    waiting = ok(runner, "keys", "rotate")
    now = ok(runner, "keys", "rotate", "--now")
    assert now["kid"] == waiting["kid"]
    assert _at(now["activates_at"]) < _at(waiting["activates_at"]) - timedelta(minutes=50)
    assert [e["action"] for e in ok(runner, "audit")][0] == "key.expedited"


def test_keys_revoke_withdraws_a_key_and_is_audited(own_issuer):
    runner = own_issuer.app.test_cli_runner()
    waiting = ok(runner, "keys", "rotate")
    revoked = ok(runner, "keys", "revoke", waiting["kid"], "--reason", "leaked")
    assert (revoked["state"], revoked["published"]) == ("revoked", False)
    assert revoked["published_until"] is None
    listed = {k["kid"]: (k["state"], k["published"]) for k in ok(runner, "keys", "list")}
    assert listed[waiting["kid"]] == ("revoked", False)
    event = ok(runner, "audit")[0]
    assert (event["action"], event["subject"], event["reason"]) == (
        "key.revoked",
        f"key:{waiting['kid']}",
        "leaked",
    )
    assert refused(runner, "keys", "revoke", waiting["kid"]) == (
        f"key {waiting['kid']} is already revoked"
    )


def test_keys_revoke_refuses_the_only_signing_key(own_issuer):
    runner = own_issuer.app.test_cli_runner()
    (active,) = ok(runner, "keys", "list")
    message = refused(runner, "keys", "revoke", active["kid"])
    assert message.startswith(f"key {active['kid']} is the only signing key")
    assert "keyswap keys rotate --now" in message
    assert [k["state"] for k in ok(runner, "keys", "list")] == ["active"]


@pytest.mark.parametrize("kid", ["nope", "-oXyZ", "--nope"])
def test_keys_revoke_unknown_kid_is_a_domain_error(own_issuer, kid):
    # Thumbprints are base64url: a kid may start with "-" and is still a kid, not an option.
    runner = own_issuer.app.test_cli_runner()
    assert refused(runner, "keys", "revoke", kid) == f"no signing key {kid}"


def test_keys_rotate_unknown_algorithm_is_a_usage_error(runner):
    assert "Invalid value for '--alg'" in misused(runner, "keys", "rotate", "--alg", "HS256")


def test_audit_lists_lifecycle_events_newest_first_without_secrets(runner):
    ok(runner, "users", "create", "alice", "--tenant", "acme")
    created = ok(runner, "clients", "create", "--owner", "alice", "--scope", "a")
    rotated = ok(runner, "clients", "rotate-secret", created["client_id"])
    ok(runner, "clients", "disable", created["client_id"], "--reason", "leaked")
    events = run(runner, "audit")
    text = run(runner, "audit", as_json=False)
    assert events.code == text.code == 0
    for secret in (created["client_secret"], rotated["client_secret"]):
        assert secret not in events.stdout and secret not in text.stdout
    actions = [event["action"] for event in events.data]
    assert actions == [
        "client.disabled",
        "client.secret_rotated",
        "client.created",
        "user.created",
    ]
    assert all(event["actor"].startswith("cli:") for event in events.data)
    assert events.data[0]["reason"] == "leaked"
    assert events.data[0]["subject"] == f"client:{created['client_id']}"
    assert "client.disabled" in text.stdout


def test_audit_since_filters_by_time(runner):
    today = datetime.now(UTC).strftime("%Y-%m-%d")  # before the event, so it is not later
    ok(runner, "tenants", "create", "globex")
    assert [e["action"] for e in ok(runner, "audit", "--since", today)] == ["tenant.created"]
    assert ok(runner, "audit", "--since", "2999-01-01T00:00:00Z") == []


def test_audit_limit_keeps_the_newest(runner):
    for name in ("t1", "t2", "t3"):
        ok(runner, "tenants", "create", name)
    events = ok(runner, "audit", "--limit", "2")
    assert [e["subject"] for e in events] == ["tenant:t3", "tenant:t2"]


@pytest.mark.parametrize("args", [["--since", "yesterday"], ["--limit", "0"]])
def test_audit_bad_option_value_is_a_usage_error(runner, args):
    assert "Invalid value" in misused(runner, "audit", *args)
