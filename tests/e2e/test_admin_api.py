"""The admin API over real HTTP: every resource, tenant isolation, live status, CLI parity."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from keyswap.issuer.cli import cli
from keyswap.issuer.errors import format_time

from ..cli.invoke import ok
from ..conftest import Creds, LiveIssuer, MovingClock

#: How far the app's clock runs ahead of the wall clock in the one-clock tests below.
HOUR = 3600


class Admin:
    """An admin API caller holding one bearer token."""

    def __init__(self, issuer: LiveIssuer, token: str) -> None:
        self.base = f"{issuer.url}/admin/v1"
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return requests.request(
            method, self.base + path, json=body, headers=headers, timeout=10, **kw
        )


def _admin(issuer: LiveIssuer, scope: str = "keyswap:admin", tenant: str = "ops", user=None):
    creds = issuer.create_client(scope=scope, tenant=tenant, user=user)
    response = issuer.token(creds)
    assert response.status_code == 200, response.text
    return Admin(issuer, response.json()["access_token"]), creds


def test_every_admin_resource_with_a_global_admin_token(live_issuer):
    admin, creds = _admin(live_issuer)
    assert admin.call("POST", "/tenants", {"name": "acme"}).status_code == 201
    assert admin.call("POST", "/tenants", {"name": "acme"}).status_code == 409
    names = [t["name"] for t in admin.call("GET", "/tenants").json()["tenants"]]
    assert names == ["acme", "ops"]
    assert admin.call("GET", "/tenants/acme").json()["status"] == "active"
    assert admin.call("POST", "/tenants/acme/suspend", {"reason": "audit"}).json()["status"] == (
        "suspended"
    )
    assert admin.call("POST", "/tenants/acme/activate").json()["status"] == "active"

    made = admin.call("POST", "/users", {"name": "dana", "tenant": "acme"})
    assert made.status_code == 201 and made.json()["tenant"] == "acme"
    assert (
        admin.call("POST", "/users", {"name": "svc", "service_account": True}).json()["kind"]
        == "service_account"
    )
    assert admin.call("GET", "/users/dana").json()["status"] == "active"
    for action, status in [("suspend", "suspended"), ("activate", "active")]:
        assert admin.call("POST", f"/users/dana/{action}").json()["status"] == status

    client = admin.call("POST", "/clients", {"owner": "dana", "scope": "orders:read"})
    assert client.status_code == 201
    client_id, secret = client.json()["client_id"], client.json()["client_secret"]
    assert secret and client.headers["Cache-Control"] == "no-store"
    assert admin.call("GET", f"/clients/{client_id}").json()["enabled"] is True
    assert "client_secret" not in admin.call("GET", f"/clients/{client_id}").json()
    assert client_id in [c["client_id"] for c in admin.call("GET", "/clients").json()["clients"]]
    rotated = admin.call("POST", f"/clients/{client_id}/rotate-secret", {"grace": 0}).json()
    assert rotated["client_secret"] != secret
    assert admin.call("POST", f"/clients/{client_id}/disable").json()["enabled"] is False
    assert admin.call("POST", f"/clients/{client_id}/enable").json()["enabled"] is True
    dana_token = requests.post(
        live_issuer.token_url,
        data={"grant_type": "client_credentials"},
        auth=(client_id, rotated["client_secret"]),
        timeout=10,
    )
    assert dana_token.status_code == 200

    revoked = admin.call("POST", "/tokens/revoke", {"jti": "abc"}).json()
    assert revoked == {"revoked": "token", "jti": "abc", "already_revoked": False}
    assert admin.call("POST", "/tokens/revoke", {"client_id": client_id}).json()["revoked"] == (
        "client"
    )
    assert admin.call("POST", "/tokens/revoke", {"user": "dana"}).json()["revoked"] == "user"
    assert admin.call("POST", "/tokens/revoke", {"user": "dana", "jti": "x"}).status_code == 422

    assert admin.call("DELETE", "/users/dana").json()["status"] == "deleted"
    assert admin.call("POST", "/users/dana/activate").status_code == 409

    audit = admin.call("GET", "/audit", params={"subject": "user:dana", "limit": "2"}).json()
    assert [e["action"] for e in audit["events"]] == ["user.deleted", "tokens.revoked"]
    assert audit["next_cursor"]
    older = admin.call(
        "GET", "/audit", params={"subject": "user:dana", "cursor": audit["next_cursor"]}
    ).json()
    assert older["events"][-1]["action"] == "user.created"
    assert all(
        e["actor"] == f"client:{creds.client_id} (user:{creds.user})" for e in older["events"]
    )
    by_type = admin.call("GET", "/audit", params={"action": "client.enabled"}).json()["events"]
    assert [e["subject"] for e in by_type] == [f"client:{client_id}"]
    future = admin.call("GET", "/audit", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future == {"events": [], "next_cursor": None}

    keys = admin.call("GET", "/signing-keys").json()["keys"]
    assert any(k["state"] == "active" for k in keys)


def test_legacy_keys_through_the_admin_api(live_issuer):
    admin, _ = _admin(live_issuer)
    live_issuer.create_client(user="lee", tenant="acme")
    csv = "api_key,owner,scopes\nsk_live_0123456789abcdef,lee,orders:read\n"
    imported = admin.call(
        "POST", "/legacy-keys/import", data=csv, headers={"Content-Type": "text/csv"}
    )
    assert imported.status_code == 200, imported.text
    key_id = imported.json()["rows"][0]["key_id"]
    report = admin.call("GET", "/legacy-keys").json()
    assert [k["key_id"] for k in report["keys"]] == [key_id]
    sunset = admin.call("POST", f"/legacy-keys/{key_id}/sunset", {"sunset_at": "2030-01-01"})
    assert sunset.json()["sunset_at"] == "2030-01-01T00:00:00Z"
    assert admin.call("POST", f"/legacy-keys/{key_id}/revoke").json()["revoked_at"]
    bad = "api_key,owner\n,lee\n"
    refused = admin.call(
        "POST", "/legacy-keys/import", data=bad, headers={"Content-Type": "text/csv"}
    )
    assert refused.status_code == 422


def test_tenant_admins_see_only_their_own_tenant(live_issuer):
    acme, acme_creds = _admin(live_issuer, "keyswap:tenant-admin", tenant="acme")
    globex, _ = _admin(live_issuer, "keyswap:tenant-admin", tenant="globex")
    assert acme.call("POST", "/users", {"name": "ann"}).json()["tenant"] == "acme"
    assert globex.call("POST", "/users", {"name": "gus"}).json()["tenant"] == "globex"
    client_id = acme.call("POST", "/clients", {"owner": "ann", "scope": "a"}).json()["client_id"]

    assert [u["tenant"] for u in acme.call("GET", "/users").json()["users"]] == ["acme"] * 2
    assert [t["name"] for t in globex.call("GET", "/tenants").json()["tenants"]] == ["globex"]
    for method, path, body in [
        ("GET", "/users/ann", None),
        ("POST", "/users/ann/deactivate", None),
        ("DELETE", "/users/ann", None),
        ("GET", f"/clients/{client_id}", None),
        ("POST", f"/clients/{client_id}/disable", None),
        ("POST", "/tokens/revoke", {"user": "ann"}),
        ("GET", "/tenants/acme", None),
        ("POST", "/users", {"name": "intruder", "tenant": "acme"}),
        ("POST", "/clients", {"owner": "ann", "scope": "a"}),
    ]:
        answer = globex.call(method, path, body)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"] == "not_found"
    assert globex.call("GET", "/users/nobody").json() == {
        "error": "not_found",
        "error_description": "no user named 'nobody'",
    }
    assert globex.call("GET", "/users/ann").json()["error_description"] == ("no user named 'ann'")
    assert acme.call("GET", "/users/ann").json()["status"] == "active"
    for method, path, body in [
        ("POST", "/tenants", {"name": "new"}),
        ("GET", "/audit", None),
        ("GET", "/signing-keys", None),
        ("POST", "/clients", {"owner": "ann", "scope": "keyswap:admin"}),
    ]:
        assert acme.call(method, path, body).status_code == 403, path


def test_a_deactivated_admin_is_refused_on_the_next_call(live_issuer):
    admin, creds = _admin(live_issuer)
    assert admin.call("GET", "/tenants").status_code == 200
    live_issuer.set_user_status(creds.user, "deactivated")
    refused = admin.call("GET", "/tenants")
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YTpi"}],
)
def test_admin_api_refuses_callers_without_a_live_token(live_issuer, headers):
    answer = requests.get(f"{live_issuer.url}/admin/v1/users", headers=headers, timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"


def test_a_token_without_admin_scope_is_forbidden(live_issuer):
    admin, _ = _admin(live_issuer, scope="orders:read")
    answer = admin.call("GET", "/users")
    assert answer.status_code == 403
    assert answer.json()["error"] == "insufficient_scope"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{not json", 400),
        ("[1, 2]", 400),
        ('{"name": 5}', 422),
        ('{"name": "ok", "surprise": true}', 422),
        ('{"name": "bad name!"}', 422),
    ],
)
def test_bad_bodies_are_refused_and_change_nothing(live_issuer, body, status):
    admin, _ = _admin(live_issuer)
    answer = admin.call("POST", "/users", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error", "error_description"}
    assert [u["name"] for u in admin.call("GET", "/users").json()["users"]] == [
        u for u in [_only_user(admin)]
    ]


def _only_user(admin: Admin) -> str:
    users = admin.call("GET", "/users").json()["users"]
    assert len(users) == 1  # the admin's own owner
    return str(users[0]["name"])


def test_cli_and_api_produce_the_same_state_and_audit_events(live_issuer):
    admin, creds = _admin(live_issuer)
    runner = live_issuer.app.test_cli_runner()
    by_cli = ok(runner, "users", "create", "via-cli", "--tenant", "acme")
    by_api = admin.call("POST", "/users", {"name": "via-api", "tenant": "acme"}).json()
    ok(runner, "users", "deactivate", "via-cli", "--reason", "left")
    admin.call("POST", "/users/via-api/deactivate", {"reason": "left"})
    cli_view = ok(
        runner, "users", "create", "probe", "--tenant", "acme"
    )  # a view of the same shape
    assert set(by_cli) == set(by_api) == set(cli_view)
    ignored = {"name", "id", "changed_at"}
    api_user = admin.call("GET", "/users/via-api").json()
    audit = json.loads(runner.invoke(cli, ["audit", "--json"]).stdout)
    cli_state = next(
        {k: v for k, v in u.items() if k not in ignored}
        for u in admin.call("GET", "/users").json()["users"]
        if u["name"] == "via-cli"
    )
    assert cli_state == {k: v for k, v in api_user.items() if k not in ignored}

    def trail(name):
        return [
            (e["action"], e["reason"], e["details"])
            for e in reversed(audit)
            if e["subject"] == f"user:{name}"
        ]

    assert trail("via-cli") == trail("via-api")
    actors = {e["subject"]: e["actor"] for e in audit if e["action"] == "user.deactivated"}
    assert actors["user:via-cli"].startswith("cli:")
    assert actors["user:via-api"] == f"client:{creds.client_id} (user:{creds.user})"


def test_admin_bootstrap_creates_a_working_admin_once(live_issuer):
    runner = live_issuer.app.test_cli_runner()
    created = ok(runner, "admin", "bootstrap")
    assert created["scopes"] == ["keyswap:admin"] and created["client_secret"]
    token = requests.post(
        live_issuer.token_url,
        data={"grant_type": "client_credentials"},
        auth=(created["client_id"], created["client_secret"]),
        timeout=10,
    ).json()["access_token"]
    answer = Admin(live_issuer, token).call("GET", "/tenants")
    assert answer.status_code == 200
    again = runner.invoke(cli, ["admin", "bootstrap", "--json"])
    assert again.exit_code == 1
    assert "already bootstrapped" in again.stderr


def test_key_compromise_runbook_through_the_admin_api(isolated_issuer):
    issuer = isolated_issuer()
    admin, _ = _admin(issuer)
    old = next(k for k in admin.call("GET", "/signing-keys").json()["keys"])
    fresh = admin.call("POST", "/signing-keys/rotate", {"now": True})
    assert fresh.status_code == 201, fresh.text
    assert fresh.json()["kid"] != old["kid"]
    assert admin.call("POST", "/signing-keys/rotate", {"now": "soon"}).status_code == 422

    revoked = admin.call("POST", f"/signing-keys/{old['kid']}/revoke", {"reason": "leaked"})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == "revoked"
    assert admin.call("POST", f"/signing-keys/{old['kid']}/revoke").status_code == 409
    assert admin.call("POST", "/signing-keys/nope/revoke").status_code == 404
    audit = admin.call("GET", "/audit", params={"action": "key.revoked"}).json()["events"]
    assert [e["subject"] for e in audit] == [f"key:{old['kid']}"]


# --- one clock: what the admin API stamps is judged on the clock that stamps tokens ------


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _introspect(issuer: LiveIssuer, introspector: Creds, token: str) -> dict[str, Any]:
    answer = requests.post(
        f"{issuer.url}/oauth/introspect",
        data={"token": token},
        auth=(introspector.client_id, str(introspector.client_secret)),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _ahead_issuer(isolated_issuer) -> tuple[LiveIssuer, MovingClock]:
    clock = MovingClock()
    issuer = isolated_issuer(clock)
    clock.advance(HOUR)  # the app's clock is an hour ahead of the wall clock from here on
    return issuer, clock


@pytest.mark.parametrize("target", ["user", "client_id"])
def test_revoking_every_token_cuts_off_at_the_app_clock(isolated_issuer, target):
    issuer, clock = _ahead_issuer(isolated_issuer)
    admin, _ = _admin(issuer)
    rs = issuer.create_client(user="orders-api", can_introspect=True)
    creds = issuer.create_client(user="dana")
    issued_before = issuer.token(creds).json()["access_token"]

    name = creds.user if target == "user" else creds.client_id
    revoked = admin.call("POST", "/tokens/revoke", {target: name, "reason": "laptop stolen"})
    assert revoked.status_code == 200, revoked.text
    assert _at(revoked.json()["before"]) == clock.now
    # Issued an hour after the wall clock's "now": a wall-clock cutoff would leave it active.
    assert _introspect(issuer, rs, issued_before) == {"active": False}

    clock.advance(2)  # a later second than the cutoff
    issued_after = issuer.token(creds).json()["access_token"]
    assert _introspect(issuer, rs, issued_after)["active"] is True


def test_a_secret_lifetime_set_through_the_admin_api_runs_on_the_app_clock(isolated_issuer):
    issuer, clock = _ahead_issuer(isolated_issuer)
    admin, _ = _admin(issuer)
    assert admin.call("POST", "/users", {"name": "dana", "tenant": "acme"}).status_code == 201
    made = admin.call(
        "POST", "/clients", {"owner": "dana", "scope": "orders:read", "secret_ttl": 60}
    )
    assert made.status_code == 201, made.text
    expires_at = _at(made.json()["secrets_expire_at"])
    assert expires_at == clock.now + timedelta(seconds=60)
    assert made.json()["expiring_soon"] is True
    creds = Creds(made.json()["client_id"], made.json()["client_secret"], "dana", "acme")
    # A wall-clock expiry would have passed an hour ago, by the clock client auth reads.
    assert issuer.token(creds).status_code == 200

    clock.advance(61)
    refused = issuer.token(creds)
    assert refused.status_code == 401
    assert refused.json() == {
        "error": "invalid_client",
        "error_description": f"the client secret expired at {format_time(expires_at)}",
    }


def test_a_rotation_grace_set_through_the_admin_api_runs_on_the_app_clock(isolated_issuer):
    issuer, clock = _ahead_issuer(isolated_issuer)
    admin, _ = _admin(issuer)
    creds = issuer.create_client(user="dana")
    rotated = admin.call("POST", f"/clients/{creds.client_id}/rotate-secret", {"grace": 30})
    assert rotated.status_code == 200, rotated.text
    old_until = _at(rotated.json()["old_secrets_expire_at"])
    assert old_until == clock.now + timedelta(seconds=30)
    assert issuer.token(creds).status_code == 200  # still in the grace, by the app's clock

    clock.advance(31)
    refused = issuer.token(creds)
    assert refused.status_code == 401
    assert refused.json()["error_description"] == (
        f"the client secret expired at {format_time(old_until)}"
    )
    fresh = Creds(creds.client_id, rotated.json()["client_secret"], creds.user, creds.tenant)
    assert issuer.token(fresh).status_code == 200


def test_status_changes_through_the_admin_api_are_stamped_on_the_app_clock(isolated_issuer):
    issuer, clock = _ahead_issuer(isolated_issuer)
    admin, _ = _admin(issuer)
    issuer.create_client(user="dana", tenant="acme")
    suspended = admin.call("POST", "/users/dana/suspend", {"reason": "audit"}).json()
    assert _at(suspended["changed_at"]) == clock.now
    assert _at(admin.call("POST", "/tenants/acme/suspend").json()["changed_at"]) == clock.now
