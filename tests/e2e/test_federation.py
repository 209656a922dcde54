"""Workload identity federation over real HTTP, with a real external OIDC issuer process.

``tests/oidc_issuer.py`` runs as its own process on 127.0.0.1, serving discovery and a
JWK Set and minting GitHub-, GitLab-, Kubernetes- and SPIFFE-shaped tokens with its own
key; keyswap (a live server that may fetch from loopback) trusts it through
``keyswap federation add`` and trades its tokens by the jwt-bearer grant (RFC 7523 §2.1)
and by token exchange (RFC 8693, ``subject_token_type`` jwt).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from flask.testing import FlaskCliRunner

from keyswap.clients import TokenClient, TokenRefused, WorkloadToken
from keyswap.issuer.db import Base, transaction
from keyswap.issuer.federation import FederatedKeys
from keyswap.issuer.lifecycle import add_user
from keyswap.issuer.models import UserKind, UserStatus
from tests.cli.invoke import ok, refused
from tests.conftest import (
    KEPT_TABLES,
    DatabaseFactory,
    LiveIssuer,
    LiveServer,
    make_settings,
    prepared_app,
    start_live_server,
    stop_live_server,
)
from tests.metrics import metric_total

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ROOT = Path(__file__).resolve().parents[2]


class ExternalIssuer:
    """A running ``tests.oidc_issuer`` process: its URL, and its mint and rotate calls."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.oidc_issuer"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def mint(self, **order: Any) -> str:
        """Return a token the issuer minted for ``order`` (see ``tests.oidc_issuer``)."""
        response = requests.post(f"{self.url}/mint", json=order, timeout=10)
        response.raise_for_status()
        return response.text

    def rotate(self) -> str:
        """Replace the issuer's key; return the new kid."""
        return str(requests.post(f"{self.url}/rotate", timeout=10).json()["kid"])

    def stats(self) -> dict[str, int]:
        """Return how often discovery and the JWK Set were fetched."""
        return dict(requests.get(f"{self.url}/stats", timeout=10).json())

    def close(self) -> None:
        """End the process."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture(scope="module")
def fed_server(
    databases: DatabaseFactory, kek: bytes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live keyswap that may fetch from loopback (KEYSWAP_OUTBOUND_ALLOW_PRIVATE=1)."""
    url = databases.create()
    data_dir = tmp_path_factory.mktemp("fed")
    live = start_live_server(
        lambda base: prepared_app(
            make_settings(url, kek, data_dir, issuer=base, outbound_allow_private=True)
        )
    )
    yield live
    stop_live_server(live)


@pytest.fixture
def keyswap(fed_server: LiveServer) -> LiveIssuer:
    """The federation-enabled issuer on a clean database."""
    with transaction(fed_server.keyswap.sessions) as session:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in KEPT_TABLES:
                session.execute(table.delete())
        add_user(session, "deployer", tenant="acme", kind=UserKind.SERVICE_ACCOUNT, actor="test")
    return LiveIssuer(fed_server)


@pytest.fixture
def fed_runner(keyswap: LiveIssuer) -> FlaskCliRunner:
    """A CLI runner bound to the federation-enabled issuer."""
    return keyswap.app.test_cli_runner()


@pytest.fixture
def external() -> Iterator[ExternalIssuer]:
    """A fresh external issuer process (its own URL, so its own caches at keyswap)."""
    issuer = ExternalIssuer()
    yield issuer
    issuer.close()


def trust(runner: FlaskCliRunner, issuer: ExternalIssuer, *args: str) -> dict[str, Any]:
    """Add a trust for ``issuer`` mapping to the ``deployer`` service account."""
    return dict(
        ok(
            runner,
            "federation", "add", "--issuer", issuer.url, "--service-account", "deployer",
            "--scope", "deploy:write deploy:read", *args,
        )
    )  # fmt: skip


def bearer(keyswap: LiveIssuer, assertion: str, **form: str) -> requests.Response:
    """POST the jwt-bearer grant with ``assertion``."""
    data = {"grant_type": JWT_BEARER, "assertion": assertion, **form}
    return requests.post(keyswap.token_url, data=data, timeout=30)


def exchange(keyswap: LiveIssuer, subject_token: str, **form: str) -> requests.Response:
    """POST a token exchange of ``subject_token`` as a JWT."""
    data = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": JWT_TYPE,
        **form,
    }
    return requests.post(keyswap.token_url, data=data, timeout=30)


def claims_of(keyswap: LiveIssuer, response: requests.Response) -> dict[str, Any]:
    """Verify an issued token against keyswap's JWKS and return its claims."""
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    key = jwt.PyJWKClient(keyswap.jwks_url).get_signing_key_from_jwt(token)
    return dict(
        jwt.decode(token, key, algorithms=["ES256", "RS256", "EdDSA"], audience=keyswap.url)
    )


def refusal(response: requests.Response, error: str = "invalid_grant") -> str:
    """Require a 400 ``error`` and return its description."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error, body
    return str(body["error_description"])


def test_github_token_for_allowed_branch_gets_token_and_other_branch_is_refused(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer
) -> None:
    added = trust(
        fed_runner, external, "--audience", keyswap.url,
        "--subject", "repo:acme/api:ref:refs/heads/main", "--claim", "repository=acme/api",
    )  # fmt: skip
    main = external.mint(profile="github", repository="acme/api", aud=keyswap.url)
    claims = claims_of(keyswap, bearer(keyswap, main))
    assert claims["sub"] == keyswap.user_id("deployer")
    assert claims["client_id"] == f"fed:{added['id']}"
    assert claims["tenant"] == "acme"
    assert claims["scope"] == "deploy:write deploy:read"
    assert claims["ks_federated"] == {
        "iss": external.url,
        "sub": "repo:acme/api:ref:refs/heads/main",
        "trust": added["id"],
    }

    branch = external.mint(profile="github", ref="refs/heads/feature", aud=keyswap.url)
    assert refusal(bearer(keyswap, branch)) == (
        "no federation trust matches the assertion's subject and claims"
    )
    other_repo = external.mint(profile="github", repository="evil/api", aud=keyswap.url)
    assert "no federation trust matches" in refusal(bearer(keyswap, other_repo))


def test_github_environment_and_scope_narrowing(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer
) -> None:
    trust(fed_runner, external, "--subject", "repo:acme/*:environment:production",
          "--claim", "environment=production")  # fmt: skip
    token = external.mint(profile="github", environment="production", aud=keyswap.url)
    claims = claims_of(keyswap, bearer(keyswap, token, scope="deploy:read"))
    assert claims["scope"] == "deploy:read"
    wider = external.mint(profile="github", environment="production", aud=keyswap.url)
    response = bearer(keyswap, wider, scope="admin")
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


def test_kubernetes_token_through_token_exchange(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer
) -> None:
    trust(fed_runner, external, "--jwks-uri", f"{external.url}/jwks",
          "--subject", "system:serviceaccount:prod:*",
          "--claim", "kubernetes.io/namespace=prod",
          "--claim", "kubernetes.io/serviceaccount/name=billing")  # fmt: skip
    token = external.mint(profile="kubernetes", namespace="prod", name="billing", aud=keyswap.url)
    response = exchange(keyswap, token)
    assert response.json()["issued_token_type"] == ("urn:ietf:params:oauth:token-type:access_token")
    claims = claims_of(keyswap, response)
    assert claims["ks_federated"]["sub"] == "system:serviceaccount:prod:billing"
    # The JWK Set was given: discovery is never asked.
    assert external.stats()["discovery_fetches"] == 0

    other = external.mint(profile="kubernetes", namespace="prod", name="web", aud=keyswap.url)
    # Token exchange refusals are invalid_request (RFC 8693 §2.2.2), with the same reason.
    assert "no federation trust matches" in refusal(exchange(keyswap, other), "invalid_request")


def test_gitlab_protected_ref_only(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer
) -> None:
    trust(fed_runner, external, "--claim", "project_path=group/project",
          "--claim", "ref_protected=true")  # fmt: skip
    protected = external.mint(profile="gitlab", protected=True, aud=keyswap.url)
    assert bearer(keyswap, protected).status_code == 200
    unprotected = external.mint(profile="gitlab", protected=False, aud=keyswap.url)
    assert "no federation trust matches" in refusal(bearer(keyswap, unprotected))


def test_spiffe_jwt_svid_without_jti_is_accepted_once(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer
) -> None:
    trust(fed_runner, external, "--subject", "spiffe://example.org/ns/prod/sa/*")
    svid = external.mint(profile="spiffe", aud=keyswap.token_url)
    assert "jti" not in jwt.decode(svid, options={"verify_signature": False})
    claims = claims_of(keyswap, bearer(keyswap, svid))
    assert claims["ks_federated"]["sub"] == "spiffe://example.org/ns/prod/sa/billing"
    assert refusal(bearer(keyswap, svid)) == "the assertion was already used"


def test_replayed_assertion_is_refused_and_counted_by_reason(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer
) -> None:
    trust(fed_runner, external, "--subject", "repo:acme/api:*")
    token = external.mint(profile="github", aud=keyswap.url)
    assert bearer(keyswap, token).status_code == 200
    before = replays_counted(keyswap)
    assert refusal(bearer(keyswap, token)) == "the assertion was already used"
    assert refusal(exchange(keyswap, token), "invalid_request") == "the assertion was already used"
    assert replays_counted(keyswap) == before + 2


def replays_counted(keyswap: LiveIssuer) -> float:
    """Return the refusals counted with reason ``assertion_replayed`` so far."""
    return metric_total(keyswap.url, "keyswap_refusals_total", reason="assertion_replayed")


@pytest.mark.parametrize(
    ("order", "description"),
    [
        ({"aud": "https://github.com/acme"}, "the assertion's audience does not name this server"),
        ({"lifetime": 60, "issued_ago": 600}, "the assertion expired at "),
        ({"issued_ago": -600}, "the assertion is not valid yet"),
        ({"lifetime": 3 * 86400}, "the assertion's lifetime exceeds 86400 seconds"),
        ({"forge": "none"}, "the assertion's signature or algorithm is not valid"),
        ({"forge": "hmac-public"}, "the assertion's signature or algorithm is not valid"),
    ],
)
def test_bad_assertions_are_refused_with_their_reason(
    keyswap: LiveIssuer,
    fed_runner: FlaskCliRunner,
    external: ExternalIssuer,
    order: dict[str, Any],
    description: str,
) -> None:
    trust(fed_runner, external, "--subject", "repo:acme/api:*")
    token = external.mint(**{"profile": "github", "aud": keyswap.url, **order})
    assert refusal(bearer(keyswap, token)).startswith(description)


def test_audience_must_name_keyswap_when_the_token_omits_it(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer
) -> None:
    trust(fed_runner, external, "--subject", "repo:acme/api:*")
    token = external.mint(profile="github", aud=None)
    assert refusal(bearer(keyswap, token)) == "the assertion's audience does not name this server"


def test_untrusted_issuer_is_refused_without_naming_trusts(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer
) -> None:
    other = ExternalIssuer()
    try:
        trust(fed_runner, other, "--subject", "repo:acme/api:*")
        token = external.mint(profile="github", aud=keyswap.url)
        assert refusal(bearer(keyswap, token)) == "the assertion's issuer is not trusted"
    finally:
        other.close()


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key_clock(keyswap: LiveIssuer) -> Iterator[Monotonic]:
    """Give the issuer's federation key cache a clock the test moves."""
    clock = Monotonic()
    federation = keyswap.keyswap.server.federation
    original = federation.keys
    federation.keys = FederatedKeys(allow_private=True, clock=clock)
    yield clock
    federation.keys = original


def test_rotated_issuer_key_is_fetched_once(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer, key_clock: Monotonic
) -> None:
    trust(fed_runner, external, "--subject", "repo:acme/api:*")
    assert bearer(keyswap, external.mint(profile="github", aud=keyswap.url)).status_code == 200
    assert bearer(keyswap, external.mint(profile="github", aud=keyswap.url)).status_code == 200
    assert external.stats() == {"jwks_fetches": 1, "discovery_fetches": 1}

    key_clock.now += 11
    external.rotate()
    # The JWK Set is cached for 300 s, but a new kid asks for one refetch at once.
    assert bearer(keyswap, external.mint(profile="github", aud=keyswap.url)).status_code == 200
    assert bearer(keyswap, external.mint(profile="github", aud=keyswap.url)).status_code == 200
    assert external.stats() == {"jwks_fetches": 2, "discovery_fetches": 1}

    # Another unknown kid within the interval costs the issuer nothing: refused, not fetched.
    external.rotate()
    token = external.mint(profile="github", aud=keyswap.url)
    assert refusal(bearer(keyswap, token)) == (
        "the assertion's signing key is not published by its issuer"
    )
    assert external.stats()["jwks_fetches"] == 2
    key_clock.now += 11
    assert bearer(keyswap, external.mint(profile="github", aud=keyswap.url)).status_code == 200
    assert external.stats()["jwks_fetches"] == 3


def test_deactivated_service_account_is_refused_with_the_contract_description(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer
) -> None:
    trust(fed_runner, external, "--subject", "repo:acme/api:*")
    first = bearer(keyswap, external.mint(profile="github", aud=keyswap.url))
    issued = first.json()["access_token"]
    keyswap.set_user_status("deployer", UserStatus.DEACTIVATED.value)
    token = external.mint(profile="github", aud=keyswap.url)
    assert refusal(bearer(keyswap, token)) == "the user associated with this key is deactivated"
    token = external.mint(profile="github", aud=keyswap.url)
    assert refusal(exchange(keyswap, token), "invalid_request") == (
        "the user associated with this key is deactivated"
    )
    # The token issued before is inactive at introspection too.
    inspector = keyswap.create_client(can_introspect=True, tenant="acme")
    assert inspector.client_secret is not None
    answer = requests.post(
        f"{keyswap.url}/oauth/introspect",
        data={"token": issued},
        auth=(inspector.client_id, inspector.client_secret),
        timeout=10,
    ).json()
    assert answer == {"active": False}


def test_several_matching_trusts_are_a_configuration_error(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer
) -> None:
    trust(fed_runner, external, "--subject", "repo:acme/api:*")
    trust(fed_runner, external, "--claim", "repository=acme/*")
    token = external.mint(profile="github", aud=keyswap.url)
    assert refusal(bearer(keyswap, token)) == (
        "several federation trusts match the assertion; this is a configuration error"
    )


def test_federation_commands_list_remove_and_audit(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer
) -> None:
    added = trust(fed_runner, external, "--subject", "repo:acme/api:*", "--claim", "ref=refs/*")
    assert added["claims"] == {"ref": "refs/*"}
    assert [t["id"] for t in ok(fed_runner, "federation", "list")] == [added["id"]]
    issued = bearer(keyswap, external.mint(profile="github", aud=keyswap.url))
    inspector = keyswap.create_client(can_introspect=True, tenant="acme")
    assert inspector.client_secret is not None

    def introspect() -> dict[str, Any]:
        return dict(
            requests.post(
                f"{keyswap.url}/oauth/introspect",
                data={"token": issued.json()["access_token"]},
                auth=(inspector.client_id, inspector.client_secret or ""),
                timeout=10,
            ).json()
        )

    assert introspect()["active"] is True
    removed = ok(fed_runner, "federation", "remove", added["id"], "--reason", "repo archived")
    assert removed["removed_at"] is not None
    assert ok(fed_runner, "federation", "list") == []
    assert introspect() == {"active": False}
    token = external.mint(profile="github", aud=keyswap.url)
    assert refusal(bearer(keyswap, token)) == "the assertion's issuer is not trusted"
    actions = [e["action"] for e in ok(fed_runner, "audit")]
    assert actions[0] == "federation.trust_removed"
    assert "federation.trust_added" in actions
    assert "no federation trust" in refused(fed_runner, "federation", "remove", added["id"])


def test_federation_add_refuses_unsafe_trusts(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer
) -> None:
    base = ("federation", "add", "--issuer", external.url, "--service-account")
    assert "needs --subject or --claim" in refused(fed_runner, *base, "deployer")
    keyswap.create_client(user="alice", tenant="acme")
    assert "not a service account" in refused(fed_runner, *base, "alice", "--subject", "x")
    assert "NAME=GLOB" in refused(fed_runner, *base, "deployer", "--claim", "repository")
    assert ok(fed_runner, "federation", "list") == []


def test_token_client_reads_a_token_file_rewritten_while_it_runs(
    keyswap: LiveIssuer, fed_runner: FlaskCliRunner, external: ExternalIssuer, tmp_path: Path
) -> None:
    trust(fed_runner, external, "--subject", "system:serviceaccount:prod:billing")
    path = tmp_path / "token"

    # As the kubelet does: write a new file, then swap it into place.
    def project() -> str:
        token = external.mint(profile="kubernetes", aud=keyswap.url)
        staged = tmp_path / "token.new"
        staged.write_text(token + "\n")
        staged.replace(path)
        return token

    first = project()
    with TokenClient(keyswap.token_url, workload_token=WorkloadToken.from_file(path)) as client:
        token = client.fetch_token()
        claims = jwt.decode(token.access_token, options={"verify_signature": False})
        assert claims["sub"] == keyswap.user_id("deployer")
        # The same projected token again is a replay: keyswap uses each one once.
        with pytest.raises(TokenRefused) as refused_again:
            client.fetch_token()
        assert refused_again.value.description == "the assertion was already used"
        second = project()
        assert second != first
        again = client.fetch_token(scope="deploy:read")
        assert again.scope == "deploy:read"


def test_token_client_takes_the_workload_token_from_env_or_a_callable(
    keyswap: LiveIssuer,
    fed_runner: FlaskCliRunner,
    external: ExternalIssuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trust(fed_runner, external, "--subject", "repo:acme/api:*")
    monkeypatch.setenv("ACTIONS_ID_TOKEN", external.mint(profile="github", aud=keyswap.url))
    source = WorkloadToken.from_env("ACTIONS_ID_TOKEN")
    with TokenClient(keyswap.token_url, workload_token=source) as client:
        assert client.get_token().access_token
    minted = WorkloadToken.from_callable(lambda: external.mint(profile="github", aud=keyswap.url))
    with TokenClient(keyswap.token_url, workload_token=minted) as client:
        assert client.fetch_token().access_token != client.fetch_token().access_token
    with pytest.raises(ValueError, match="no other credential"):
        TokenClient(keyswap.token_url, workload_token=minted, client_id="x", client_secret="y")
