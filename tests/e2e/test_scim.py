"""SCIM 2.0 over real HTTP with a SCIM client we did not write (scim2-client on httpx2).

Provisioning, filtering, Okta's and Entra ID's PATCH forms, deletion; then the offboarding
story end to end; then bad input, each a 4xx SCIM error that changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx2
import pytest
import requests
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import Error, ListResponse, PatchOp, SearchRequest, User

from keyswap.issuer.db import transaction
from keyswap.issuer.models import UserStatus
from keyswap.issuer.storage import get_user

from ..cli.invoke import ok
from ..conftest import LiveIssuer, MovingClock

SCIM_JSON = "application/scim+json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def scim_credential(issuer: LiveIssuer, tenant: str) -> str:
    """Create a SCIM credential for ``tenant`` with the CLI and return its token."""
    runner = issuer.app.test_cli_runner()
    ok(runner, "tenants", "create", tenant)
    created = ok(runner, "scim", "credentials", "create", "--tenant", tenant)
    return str(created["token"])


@pytest.fixture
def idp(live_issuer: LiveIssuer) -> Iterator[tuple[SyncSCIMClient, str]]:
    """A SCIM client for tenant acme, authenticated by a SCIM credential."""
    token = scim_credential(live_issuer, "acme")
    http = httpx2.Client(
        base_url=f"{live_issuer.url}/scim/v2", headers={"Authorization": f"Bearer {token}"}
    )
    scim = SyncSCIMClient(http)
    scim.discover()
    yield scim, token
    http.close()


def raw(issuer: LiveIssuer, token: str, method: str, path: str, body=None, **kw):
    data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    return requests.request(
        method,
        f"{issuer.url}/scim/v2{path}",
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON},
        timeout=10,
        **kw,
    )


def test_provision_filter_patch_and_delete_with_a_scim_client(live_issuer, idp):
    scim, token = idp
    ann = scim.create(User(user_name="ann@acme.test", external_id="okta-1", display_name="Ann"))
    bob = scim.create(User(user_name="bob@acme.test", external_id="okta-2"))
    assert ann.active is True and ann.id.startswith("usr_")
    assert ann.meta.created and ann.meta.last_modified

    found = scim.query(
        User,
        query_parameters=SearchRequest(filter='userName eq "ANN@acme.test"'),  # type: ignore[arg-type]
    )
    assert isinstance(found, ListResponse) and found.total_results == 1
    assert [u.id for u in found.resources or []] == [ann.id]
    found = scim.query(
        User,
        query_parameters=SearchRequest(filter='externalId eq "okta-2"'),  # type: ignore[arg-type]
    )
    assert [u.id for u in found.resources] == [bob.id]
    page = scim.query(User, query_parameters=SearchRequest(start_index=2, count=1))
    assert page.total_results == 2 and [u.id for u in page.resources] == [bob.id]
    found = scim.query(
        User,
        query_parameters=SearchRequest(filter='displayName co "An"'),  # type: ignore[arg-type]
    )
    assert [u.id for u in found.resources] == [ann.id]

    # Okta: replace with no path, the value an object.
    okta: Any = PatchOp[User].model_validate(  # type: ignore[type-arg]
        {"Operations": [{"op": "replace", "value": {"active": False}}]}
    )
    patched = scim.modify(User, ann.id, okta)
    assert patched is None or patched.active is False
    assert scim.query(User, ann.id).active is False
    # Entra ID: "Replace" with a path, the boolean as a string.
    entra: dict[str, Any] = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Replace", "path": "active", "value": "True"}],
    }
    answer = raw(live_issuer, token, "PATCH", f"/Users/{ann.id}", entra)
    assert answer.status_code in (200, 204), answer.text
    assert scim.query(User, ann.id).active is True
    entra["Operations"][0]["value"] = "False"
    assert raw(live_issuer, token, "PATCH", f"/Users/{ann.id}", entra).status_code in (200, 204)
    assert scim.query(User, ann.id).active is False

    replaced = scim.replace(
        User(id=bob.id, user_name="bob@acme.test", external_id="okta-2", display_name="Bob B")
    )
    assert replaced.display_name == "Bob B"

    scim.delete(User, bob.id)
    gone = scim.query(User, bob.id, raise_scim_errors=False)
    assert isinstance(gone, Error) and gone.status == 404
    # A tombstone, as `keyswap users delete` leaves: refusals can still say why.
    with transaction(live_issuer.keyswap.sessions) as session:
        assert get_user(session, "bob@acme.test").status is UserStatus.DELETED


def test_offboarding_in_the_identity_provider_stops_issuance_at_once(live_issuer, idp):
    scim, token = idp
    dana = scim.create(User(user_name="dana@acme.test", external_id="00u-dana"))
    rs = live_issuer.create_client(user="orders-api", tenant="acme", can_introspect=True)
    creds = live_issuer.create_client(user="dana@acme.test")
    earlier = live_issuer.token(creds).json()["access_token"]

    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    assert raw(live_issuer, token, "PATCH", f"/Users/{dana.id}", patch).status_code in (200, 204)

    refused = live_issuer.token(creds)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "the user associated with this key is deactivated",
    }
    introspected = requests.post(
        f"{live_issuer.url}/oauth/introspect",
        data={"token": earlier},
        auth=(rs.client_id, rs.client_secret),
        timeout=10,
    ).json()
    assert introspected == {"active": False}
    runner = live_issuer.app.test_cli_runner()
    audit = ok(runner, "audit")
    deactivated = [e for e in audit if e["action"] == "user.deactivated"]
    assert len(deactivated) == 1
    assert deactivated[0]["subject"] == "user:dana@acme.test"
    assert deactivated[0]["actor"].startswith("scim_credential:scim_")


def test_a_scim_scoped_access_token_provisions_into_its_own_tenant(live_issuer):
    creds = live_issuer.create_client(scope="scim", tenant="globex")
    token = live_issuer.token(creds).json()["access_token"]
    made = raw(
        live_issuer, token, "POST", "/Users", {"schemas": [str(User.__schema__)], "userName": "gus"}
    )
    assert made.status_code == 201, made.text
    runner = live_issuer.app.test_cli_runner()
    created = [e for e in ok(runner, "audit") if e["action"] == "user.created"]
    assert created[0]["details"]["tenant"] == "globex"
    assert created[0]["actor"] == f"client:{creds.client_id} (user:{creds.user})"
    other = live_issuer.create_client(scope="orders:read", tenant="globex")
    wrong = live_issuer.token(other).json()["access_token"]
    assert raw(live_issuer, wrong, "GET", "/Users").status_code == 401


def test_tenants_are_isolated_and_credentials_stay_at_scim(live_issuer):
    acme = scim_credential(live_issuer, "acme")
    globex = scim_credential(live_issuer, "globex")
    made = raw(
        live_issuer, acme, "POST", "/Users", {"schemas": [str(User.__schema__)], "userName": "ann"}
    )
    ann = made.json()["id"]
    assert raw(live_issuer, globex, "GET", f"/Users/{ann}").status_code == 404
    assert raw(live_issuer, globex, "DELETE", f"/Users/{ann}").status_code == 404
    assert raw(live_issuer, globex, "GET", "/Users").json()["totalResults"] == 0
    at_admin = requests.get(
        f"{live_issuer.url}/admin/v1/users",
        headers={"Authorization": f"Bearer {acme}"},
        timeout=10,
    )
    assert at_admin.status_code == 401
    assert raw(live_issuer, acme, "GET", f"/Users/{ann}").json()["active"] is True


def test_scim_credentials_rotate_and_revoke(live_issuer):
    runner = live_issuer.app.test_cli_runner()
    ok(runner, "tenants", "create", "acme")
    first = ok(runner, "scim", "credentials", "create", "--tenant", "acme")
    assert raw(live_issuer, first["token"], "GET", "/Users").status_code == 200
    rotated = ok(runner, "scim", "credentials", "rotate", first["id"])
    assert raw(live_issuer, first["token"], "GET", "/Users").status_code == 401
    assert raw(live_issuer, rotated["token"], "GET", "/Users").status_code == 200
    ok(runner, "scim", "credentials", "revoke", first["id"])
    refused = raw(live_issuer, rotated["token"], "GET", "/Users")
    assert refused.status_code == 401
    assert refused.json()["schemas"] == [ERROR]
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    actions = [e["action"] for e in ok(runner, "audit") if e["subject"].startswith("scim_cred")]
    assert actions == [
        "scim_credential.revoked",
        "scim_credential.rotated",
        "scim_credential.created",
    ]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_scim_deactivation_is_stamped_on_the_app_clock(isolated_issuer):
    clock = MovingClock()
    issuer = isolated_issuer(clock)
    token = scim_credential(issuer, "acme")
    clock.advance(3600)  # the app's clock is an hour ahead of the wall clock
    made = raw(
        issuer, token, "POST", "/Users", {"schemas": [str(User.__schema__)], "userName": "ann"}
    )
    assert made.status_code == 201, made.text
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    assert raw(issuer, token, "PATCH", f"/Users/{made.json()['id']}", patch).status_code in (
        200,
        204,
    )

    shown = raw(issuer, token, "GET", f"/Users/{made.json()['id']}").json()
    assert shown["active"] is False
    assert _at(shown["meta"]["lastModified"]) == clock.now
    runner = issuer.app.test_cli_runner()
    (ann,) = [u for u in ok(runner, "users", "list") if u["name"] == "ann"]
    assert ann["status"] == "deactivated"
    assert _at(ann["changed_at"]) == clock.now


def test_a_scim_credential_lifetime_runs_on_the_app_clock(isolated_issuer):
    clock = MovingClock()
    issuer = isolated_issuer(clock)
    clock.advance(3600)  # the app's clock is an hour ahead of the wall clock
    runner = issuer.app.test_cli_runner()
    ok(runner, "tenants", "create", "acme")
    created = ok(runner, "scim", "credentials", "create", "--tenant", "acme", "--ttl", "60")
    assert _at(created["expires_at"]) == clock.now + timedelta(seconds=60)
    # A wall-clock expiry would have passed an hour ago, by the clock SCIM checks it with.
    assert raw(issuer, created["token"], "GET", "/Users").status_code == 200
    clock.advance(61)
    assert raw(issuer, created["token"], "GET", "/Users").status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/Users", "{not json", 400),
        ("POST", "/Users", {"schemas": ["urn:wrong"], "userName": "x"}, 400),
        ("POST", "/Users", {"schemas": [str(User.__schema__)]}, 400),
        (
            "POST",
            "/Users",
            {"schemas": [str(User.__schema__)], "userName": "x", "surprise": 1},
            400,
        ),
        ("POST", "/Users", {"schemas": [str(User.__schema__)], "userName": "bad name!"}, 400),
        ("GET", "/Users?filter=userName%20eq", None, 400),
        ("GET", "/Users?filter=nonsense%20zz%20%22x%22", None, 400),
        ("PATCH", "/Users/usr_missing", {"schemas": [PATCH_OP], "Operations": []}, 400),
        (
            "PATCH",
            "/Users/usr_missing",
            {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]},
            404,
        ),
    ],
)
def test_bad_scim_input_is_a_scim_error_that_changes_nothing(
    live_issuer, method, path, body, status
):
    token = scim_credential(live_issuer, "acme")
    answer = raw(live_issuer, token, method, path, body)
    assert answer.status_code == status, answer.text
    assert answer.json()["schemas"] == [ERROR]
    assert raw(live_issuer, token, "GET", "/Users").json()["totalResults"] == 0
