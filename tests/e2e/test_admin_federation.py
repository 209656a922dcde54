"""Federation trusts through the admin API over real HTTP: CLI parity, tenants, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from ..cli.invoke import ok
from ..conftest import LiveIssuer
from .test_admin_api import Admin, _admin

GITHUB = "https://token.actions.githubusercontent.com"


def _service_account(admin: Admin, name: str, tenant: str | None = None) -> None:
    body: dict[str, Any] = {"name": name, "service_account": True}
    if tenant:
        body["tenant"] = tenant
    made = admin.call("POST", "/users", body)
    assert made.status_code == 201, made.text


def _trust(**changes: Any) -> dict[str, Any]:
    return {
        "issuer": GITHUB,
        "service_account": "deployer",
        "subject": "repo:acme/api:ref:refs/heads/main",
        "claims": {"repository": "acme/api"},
        "scope": "deploy:write",
        **changes,
    }


def test_create_list_and_delete_trusts_with_a_global_admin(live_issuer: LiveIssuer) -> None:
    admin, creds = _admin(live_issuer)
    _service_account(admin, "deployer", "acme")
    made = admin.call(
        "POST",
        "/federation-trusts",
        _trust(
            jwks_uri="https://keys.example.com/jwks.json",
            audience="https://keyswap.example.com",
            resource=["https://api.example.com"],
            token_ttl=300,
        ),
    )
    assert made.status_code == 201, made.text
    assert made.headers["Cache-Control"] == "no-store"
    trust = made.json()
    assert {k: v for k, v in trust.items() if k not in {"id", "created_at"}} == {
        "issuer": GITHUB,
        "jwks_uri": "https://keys.example.com/jwks.json",
        "service_account": "deployer",
        "tenant": "acme",
        "audience": "https://keyswap.example.com",
        "subject": "repo:acme/api:ref:refs/heads/main",
        "claims": {"repository": "acme/api"},
        "scope": "deploy:write",
        "resources": ["https://api.example.com"],
        "token_ttl": 300,
        "removed_at": None,
    }
    assert admin.call("GET", "/federation-trusts").json() == {"trusts": [trust]}

    gone = admin.call("DELETE", f"/federation-trusts/{trust['id']}", params={"reason": "archived"})
    assert gone.status_code == 200, gone.text
    assert gone.json()["removed_at"] is not None
    assert admin.call("GET", "/federation-trusts").json() == {"trusts": []}
    again = admin.call("DELETE", f"/federation-trusts/{trust['id']}")
    assert again.status_code == 404
    assert again.json() == {
        "error": "not_found",
        "error_description": f"no federation trust {trust['id']!r}",
    }

    audit = admin.call("GET", "/audit", params={"subject": f"federation:{trust['id']}"}).json()
    events = [(e["action"], e["reason"], e["actor"]) for e in audit["events"]]
    actor = f"client:{creds.client_id} (user:{creds.user})"
    assert events == [
        ("federation.trust_removed", "archived", actor),
        ("federation.trust_added", None, actor),
    ]


def test_cli_and_api_show_a_trust_identically(live_issuer: LiveIssuer) -> None:
    admin, _ = _admin(live_issuer)
    _service_account(admin, "deployer", "acme")
    runner = live_issuer.app.test_cli_runner()
    by_cli = ok(
        runner, "federation", "add", "--issuer", GITHUB, "--service-account", "deployer",
        "--subject", "repo:acme/web:*", "--claim", "environment=prod", "--scope", "deploy:read",
    )  # fmt: skip
    by_api = admin.call("POST", "/federation-trusts", _trust()).json()
    assert set(by_cli) == set(by_api)
    api_list = admin.call("GET", "/federation-trusts").json()["trusts"]
    assert api_list == ok(runner, "federation", "list") == [by_cli, by_api]
    removed = admin.call("DELETE", f"/federation-trusts/{by_cli['id']}").json()
    assert ok(runner, "federation", "list") == [by_api]
    assert removed == {**by_cli, "removed_at": removed["removed_at"]}


def test_a_tenant_admin_sees_and_manages_only_its_own_tenants_trusts(
    live_issuer: LiveIssuer,
) -> None:
    root, _ = _admin(live_issuer)
    acme, _ = _admin(live_issuer, "keyswap:tenant-admin", tenant="acme")
    globex, _ = _admin(live_issuer, "keyswap:tenant-admin", tenant="globex")
    _service_account(acme, "deployer")
    _service_account(globex, "builder")
    acme_trust = acme.call("POST", "/federation-trusts", _trust())
    assert acme_trust.status_code == 201, acme_trust.text
    assert acme_trust.json()["tenant"] == "acme"
    trust_id = acme_trust.json()["id"]
    globex_trust = globex.call("POST", "/federation-trusts", _trust(service_account="builder"))
    assert globex_trust.status_code == 201, globex_trust.text

    def ids(admin: Admin) -> list[str]:
        return [t["id"] for t in admin.call("GET", "/federation-trusts").json()["trusts"]]

    assert ids(acme) == [trust_id]
    assert ids(globex) == [globex_trust.json()["id"]]
    assert ids(root) == [trust_id, globex_trust.json()["id"]]

    for method, path, body in [
        ("DELETE", f"/federation-trusts/{trust_id}", None),
        ("POST", "/federation-trusts", _trust(service_account="deployer")),
    ]:
        answer = globex.call(method, path, body)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"] == "not_found"
    # The same answer as for an id that never existed.
    assert globex.call("DELETE", f"/federation-trusts/{trust_id}").json() == {
        "error": "not_found",
        "error_description": f"no federation trust {trust_id!r}",
    }
    assert ids(acme) == [trust_id]

    admin_scope = acme.call("POST", "/federation-trusts", _trust(scope="keyswap:admin"))
    assert admin_scope.status_code == 403
    assert acme.call("DELETE", f"/federation-trusts/{trust_id}").status_code == 200
    assert ids(root) == [globex_trust.json()["id"]]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (_trust(surprise=True), 422, "surprise"),
        ({k: v for k, v in _trust().items() if k != "issuer"}, 422, "issuer"),
        (_trust(subject=""), 422, "--subject"),
        (_trust(claims={"kubernetes.io//namespace": "prod"}), 422, "empty path segment"),
        (_trust(claims={"ref_protected": True}), 422, "claims.ref_protected"),
        (_trust(claims={"repository": ""}), 422, "--claim repository"),
        (_trust(subject=None, claims={}), 422, "needs --subject or --claim"),
        (_trust(issuer="http://127.0.0.1:8080"), 422, "must use https"),
        (_trust(jwks_uri="https://10.0.0.1/jwks"), 422, "KEYSWAP_OUTBOUND_ALLOW_PRIVATE"),
        (_trust(resource=["not a uri"]), 422, "absolute URI"),
        (_trust(token_ttl=10**9), 422, "token TTL"),
        (_trust(service_account="nobody"), 404, "no user named 'nobody'"),
        (_trust(service_account="alice"), 409, "not a service account"),
    ],
)
def test_bad_trusts_are_refused_and_change_nothing(
    live_issuer: LiveIssuer, body: dict[str, Any], status: int, says: str
) -> None:
    admin, _ = _admin(live_issuer)
    _service_account(admin, "deployer", "acme")
    live_issuer.create_client(user="alice", tenant="acme")
    answer = admin.call("POST", "/federation-trusts", body)
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error", "error_description"}
    assert says in answer.json()["error_description"]
    assert admin.call("GET", "/federation-trusts").json() == {"trusts": []}
    added = admin.call("GET", "/audit", params={"action": "federation.trust_added"}).json()
    assert added["events"] == []


def test_the_outbound_setting_reaches_the_admin_api(isolated_issuer: Any) -> None:
    issuer = isolated_issuer(outbound_allow_private=True)
    admin, _ = _admin(issuer)
    _service_account(admin, "deployer", "acme")
    loopback = admin.call("POST", "/federation-trusts", _trust(issuer="http://127.0.0.1:8080"))
    assert loopback.status_code == 201, loopback.text
