"""Token Status Lists over HTTP: every revocation path flips the token's bit, and only its.

Each case issues a victim token and a sibling (another client, owner and tenant), has a
``Verifier(check_status=True)`` accept both, revokes the victim one way, moves the app's
clock past the list's rebuild interval and the verifier's clock past the ``ttl``: the
verifier then refuses the victim and still accepts the sibling. The served list is also
decoded by an independent implementation of the draft (the ``token-status-list`` package).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import requests
from token_status_list import BitArray

from keyswap.clients import RevokedToken, UnknownKey, Verifier
from keyswap.issuer.cli import cli
from keyswap.issuer.legacy.usage import usage_for
from keyswap.issuer.status_lists import BLOCK_SIZE, STATUS_LIST_MEDIA_TYPE

from ..clients.test_verifier import Clock as VerifierClock
from ..conftest import LiveIssuer, make_settings, prepared_app, start_live_server, stop_live_server
from .test_key_rotation import Clock as AppClock
from .test_token_exchange import _exchange, _key

TTL = 6


@dataclass
class Setup:
    issuer: Any
    clock: AppClock
    vclock: VerifierClock
    verifier: Verifier


@pytest.fixture
def setup(isolated_issuer) -> Setup:
    clock = AppClock()
    issuer = isolated_issuer(clock, status_list_ttl=TTL, key_refresh_interval=0)
    vclock = VerifierClock()
    verifier = Verifier(issuer.url, issuer.url, check_status=True, clock=vclock)
    return Setup(issuer, clock, vclock, verifier)


def _token(issuer, creds) -> str:
    response = issuer.token(creds)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _cli(issuer, *args: str) -> dict[str, Any]:
    result = issuer.app.test_cli_runner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _status(token: str) -> tuple[str, int]:
    entry = jwt.decode(token, options={"verify_signature": False})["status"]["status_list"]
    return entry["uri"], entry["idx"]


def _served_bit(issuer, token: str) -> int:
    """Fetch the token's list over HTTP and read its bit with the independent library."""
    uri, idx = _status(token)
    response = requests.get(uri, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == STATUS_LIST_MEDIA_TYPE
    claims = jwt.decode(response.text, options={"verify_signature": False})
    return int(BitArray.load(claims["status_list"]).get(idx))


def _move_past_ttl(s: Setup) -> None:
    s.clock.advance(s.issuer.keyswap.status_lists.rebuild_interval + 0.5)
    s.vclock.now += TTL + 1


def _revoke_rfc7009(s, victim, token):
    response = requests.post(
        f"{s.issuer.url}/oauth/revoke",
        data={"token": token},
        auth=(victim.client_id, victim.client_secret),
        timeout=10,
    )
    assert response.status_code == 200


def _revoke_jti(s, victim, token):
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    _cli(s.issuer, "tokens", "revoke", "--jti", jti)


PATHS = {
    "rfc7009": _revoke_rfc7009,
    "tokens-revoke-jti": _revoke_jti,
    "tokens-revoke-client": lambda s, v, t: _cli(
        s.issuer, "tokens", "revoke", "--client", v.client_id
    ),
    "tokens-revoke-user": lambda s, v, t: _cli(s.issuer, "tokens", "revoke", "--user", v.user),
    "user-suspended": lambda s, v, t: _cli(s.issuer, "users", "suspend", v.user),
    "user-deactivated": lambda s, v, t: _cli(s.issuer, "users", "deactivate", v.user),
    "user-deleted": lambda s, v, t: _cli(s.issuer, "users", "delete", v.user),
    "tenant-suspended": lambda s, v, t: _cli(s.issuer, "tenants", "suspend", v.tenant),
    "client-disabled": lambda s, v, t: _cli(s.issuer, "clients", "disable", v.client_id),
}


@pytest.mark.parametrize("path", list(PATHS))
def test_revocation_path_flips_the_tokens_bit_within_one_ttl(setup, path):
    s = setup
    victim = s.issuer.create_client(tenant="acme")
    sibling = s.issuer.create_client(tenant="globex")
    token, other = _token(s.issuer, victim), _token(s.issuer, sibling)
    kept = _token(s.issuer, victim) if path in {"rfc7009", "tokens-revoke-jti"} else None
    for t in (token, other):
        s.verifier.verify(t)
    assert _served_bit(s.issuer, token) == 0

    PATHS[path](s, victim, token)
    _move_past_ttl(s)

    assert _served_bit(s.issuer, token) == 1
    assert _served_bit(s.issuer, other) == 0
    with pytest.raises(RevokedToken):
        s.verifier.verify(token)
    assert s.verifier.verify(other).client_id == sibling.client_id
    if kept is not None:  # a single revocation flips one bit, not its block
        assert s.verifier.verify(kept).client_id == victim.client_id


def test_legacy_key_revoked_flips_its_exchanged_tokens(setup):
    s = setup
    api_key, key_id = _key(s.issuer, "billing-svc", tenant="acme")
    response = _exchange(s.issuer, api_key)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    sibling = s.issuer.create_client(tenant="globex")
    other = _token(s.issuer, sibling)
    s.verifier.verify(token)

    _cli(s.issuer, "legacy", "revoke", key_id)
    _move_past_ttl(s)

    assert (_served_bit(s.issuer, token), _served_bit(s.issuer, other)) == (1, 0)
    with pytest.raises(RevokedToken):
        s.verifier.verify(token)
    s.verifier.verify(other)
    usage_for(s.issuer.app).flush()  # the exchange's use count, while the database exists


def test_signing_key_revoked_flips_the_tokens_it_signed(setup):
    s = setup
    victim = s.issuer.create_client(tenant="acme")
    sibling = s.issuer.create_client(tenant="globex")
    token = _token(s.issuer, victim)
    old_kid = jwt.get_unverified_header(token)["kid"]
    new_kid = _cli(s.issuer, "keys", "rotate", "--now")["kid"]
    s.clock.advance(s.issuer.keyswap.settings.rotation_schedule.settle.total_seconds() + 1)
    s.issuer.keyswap.maintenance.run_once()
    other = _token(s.issuer, sibling)
    assert jwt.get_unverified_header(other)["kid"] == new_kid

    _cli(s.issuer, "keys", "revoke", old_kid)
    s.issuer.keyswap.maintenance.run_once()
    _move_past_ttl(s)

    assert (_served_bit(s.issuer, token), _served_bit(s.issuer, other)) == (1, 0)
    # The key left the JWK Set too: the old token fails on either ground.
    with pytest.raises((RevokedToken, UnknownKey)):
        s.verifier.verify(token)
    s.verifier.verify(other)


def test_reactivation_never_revives_a_revoked_token_and_new_tokens_are_valid(setup):
    s = setup
    victim = s.issuer.create_client(tenant="acme")
    token = _token(s.issuer, victim)
    _cli(s.issuer, "users", "suspend", victim.user)
    _cli(s.issuer, "users", "activate", victim.user)
    fresh = _token(s.issuer, victim)
    _move_past_ttl(s)

    with pytest.raises(RevokedToken):
        s.verifier.verify(token)
    # The process noticed the cutoff moved and leased a new, clean block.
    assert _status(fresh)[1] // BLOCK_SIZE != _status(token)[1] // BLOCK_SIZE
    assert s.verifier.verify(fresh).client_id == victim.client_id


def test_no_database_write_per_token_one_lease_per_block(setup):
    s = setup
    creds = s.issuer.create_client()
    leases = s.issuer.keyswap.server.status_leases
    before = leases.leased
    tokens = [_token(s.issuer, creds) for _ in range(20)]
    assert leases.leased - before == 1
    indices = [_status(t)[1] for t in tokens]
    assert len(set(indices)) == 20
    assert all(i // BLOCK_SIZE == indices[0] // BLOCK_SIZE for i in indices)


def test_served_list_is_signed_once_per_interval_with_matching_cache_headers(setup):
    s = setup
    creds = s.issuer.create_client()
    uri, _idx = _status(_token(s.issuer, creds))
    publisher = s.issuer.keyswap.status_lists
    responses = [requests.get(uri, timeout=10) for _ in range(5)]
    assert publisher.builds == 1
    assert len({r.content for r in responses}) == 1
    first = responses[0]
    assert first.headers["Cache-Control"] == f"public, max-age={TTL}"
    header = jwt.get_unverified_header(first.text)
    assert header["typ"] == "statuslist+jwt"
    jwks = requests.get(f"{s.issuer.url}/jwks.json", timeout=10).json()
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    claims = jwt.decode(
        first.text,
        jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"])),
        algorithms=[header["alg"]],
    )
    assert claims["sub"] == uri
    assert claims["ttl"] == TTL
    assert claims["exp"] > claims["iat"]
    assert claims["status_list"]["bits"] == 1

    etag = first.headers["ETag"]
    again = requests.get(uri, headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 304
    s.clock.advance(publisher.rebuild_interval + 0.5)
    requests.get(uri, timeout=10)
    assert publisher.builds == 2


def test_aggregation_endpoint_is_in_the_metadata_and_lists_every_list(setup):
    s = setup
    metadata = requests.get(f"{s.issuer.url}/.well-known/oauth-authorization-server", timeout=10)
    endpoint = metadata.json()["status_list_aggregation_endpoint"]
    assert endpoint == f"{s.issuer.url}/statuslists"
    uri, _ = _status(_token(s.issuer, s.issuer.create_client()))
    s.clock.advance(s.issuer.keyswap.status_lists.rebuild_interval + 0.5)
    assert requests.get(endpoint, timeout=10).json() == {"status_lists": [uri]}


@pytest.mark.parametrize("path", ["/statuslists/7", "/statuslists/999999999999", "/statuslists/x"])
def test_unknown_list_is_404_json(setup, path):
    response = requests.get(setup.issuer.url + path, timeout=10)
    assert response.status_code == 404
    assert response.json()["error"] == "invalid_request"


@pytest.fixture
def two_processes(databases, kek, tmp_path):
    """Two apps on one database, both answering as the second one's URL (one issuer)."""
    clock = AppClock()
    url = databases.create()
    started = []
    second = start_live_server(
        lambda base: prepared_app(
            make_settings(url, kek, tmp_path, issuer=base, status_list_ttl=TTL), clock
        )
    )
    started.append(second)
    first = start_live_server(
        lambda _base: prepared_app(
            make_settings(url, kek, tmp_path, issuer=second.url, status_list_ttl=TTL), clock
        )
    )
    started.append(first)
    yield clock, LiveIssuer(first), LiveIssuer(second)
    for live in started:
        stop_live_server(live)


def _token_at(url: str, creds) -> str:
    response = requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(creds.client_id, creds.client_secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_two_processes_lease_apart_and_a_revocation_through_one_shows_at_the_other(
    two_processes,
):
    clock, first, second = two_processes
    victim = first.create_client(tenant="acme")
    sibling = first.create_client(tenant="globex")
    # The same client gets tokens from both processes: each leased its own block.
    at_first, at_second = _token_at(first.url, victim), _token_at(second.url, victim)
    blocks = {_status(t)[1] // BLOCK_SIZE for t in (at_first, at_second)}
    assert len(blocks) == 2
    other = _token_at(first.url, sibling)
    vclock = VerifierClock()
    verifier = Verifier(second.url, second.url, check_status=True, clock=vclock)
    for t in (at_first, at_second, other):
        verifier.verify(t)

    # Revoked through the first process (RFC 7009 there); the second serves the lists.
    _revoke_rfc7009(Setup(first, clock, vclock, verifier), victim, at_second)
    clock.advance(second.keyswap.status_lists.rebuild_interval + 0.5)
    vclock.now += TTL + 1

    assert _served_bit(second, at_second) == 1
    with pytest.raises(RevokedToken):
        verifier.verify(at_second)
    verifier.verify(at_first)
    verifier.verify(other)

    # A cascade through the second process reaches the first process's block as well.
    _cli(second, "clients", "disable", victim.client_id)
    clock.advance(second.keyswap.status_lists.rebuild_interval + 0.5)
    vclock.now += TTL + 1
    with pytest.raises(RevokedToken):
        verifier.verify(at_first)
    verifier.verify(other)


def test_framework_glue_refuses_a_revoked_token_with_check_status(setup):
    from flask import Flask
    from werkzeug.test import Client

    from keyswap.clients.flask import KeyswapAuth, require_token
    from keyswap.clients.wsgi import BearerMiddleware

    from ..clients import test_middleware

    TestClient = test_middleware.TestClient  # type: ignore[attr-defined]
    _starlette, _whoami = test_middleware._starlette, test_middleware._whoami

    s = setup
    victim, sibling = s.issuer.create_client(), s.issuer.create_client(tenant="globex")
    token, other = _token(s.issuer, victim), _token(s.issuer, sibling)
    flask_app = Flask("orders")
    KeyswapAuth(
        flask_app, issuer=s.issuer.url, audience=s.issuer.url, check_status=True, clock=s.vclock
    )

    @flask_app.get("/")
    @require_token()
    def index() -> dict[str, str]:
        return {"ok": "yes"}

    wsgi = Client(BearerMiddleware(_whoami, s.verifier))
    asgi = TestClient(_starlette(s.verifier))
    flask_client = flask_app.test_client()

    def statuses(t: str) -> list[int]:
        headers = {"Authorization": f"Bearer {t}"}
        return [
            wsgi.get("/", headers=headers).status_code,
            asgi.get("/", headers=headers).status_code,
            flask_client.get("/", headers=headers).status_code,
        ]

    assert statuses(token) == statuses(other) == [200, 200, 200]
    _cli(s.issuer, "tokens", "revoke", "--client", victim.client_id)
    _move_past_ttl(s)
    assert statuses(token) == [401, 401, 401]
    assert statuses(other) == [200, 200, 200]
