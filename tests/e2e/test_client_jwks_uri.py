"""private_key_jwt clients with a registered ``jwks_uri``: the issuer's guarded fetch, over HTTP.

A real issuer fetches from real servers on 127.0.0.1 that drip, flood, redirect, fail or
hold their answer; these tests check that a bad uri costs only its own client's requests.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import ECKey

from keyswap.issuer.db import transaction
from keyswap.issuer.lifecycle import add_user, register_client
from keyswap.issuer.models import AuthMethod
from tests.jwks_servers import JwksServer, drip, fail, flood, gated, redirect, serve_json

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def remote():
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture
def key():
    return ECKey.generate_key("P-256", private=True)


def _jwks(key):
    return {"keys": [key.as_dict(private=False)]}


def _register(issuer, uri):
    """Register a private_key_jwt client whose keys are at ``uri`` (no address check)."""
    owner = f"svc-{uuid.uuid4().hex[:8]}"
    with transaction(issuer.keyswap.sessions) as session:
        add_user(session, owner, actor="test")
        created = register_client(
            session,
            issuer.keyswap.hasher,
            owner=owner,
            scope="orders:read",
            max_token_ttl=3600,
            auth_method=AuthMethod.PRIVATE_KEY_JWT,
            jwks_uri=uri,
            allow_private_jwks_uri=True,  # as if registered before the guard, or allowed then
            now=issuer.keyswap.clock(),
            actor="test",
        )
        return created.client.id


def _token(issuer, client_id, key):
    assertion = private_key_jwt_sign(key, client_id, issuer.token_url, alg="ES256")
    return requests.post(
        issuer.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        timeout=30,
    )


def _in_thread(call):
    result: dict[str, requests.Response] = {}
    thread = threading.Thread(target=lambda: result.setdefault("response", call()), daemon=True)
    thread.start()
    return thread, result


def test_slow_drip_jwks_uri_does_not_hold_up_other_requests(isolated_issuer, remote, key):
    issuer = isolated_issuer(outbound_allow_private=True, outbound_deadline=60)
    remote.routes["/drip"] = drip(0.2)
    remote.routes["/good"] = serve_json(_jwks(key))
    victim = _register(issuer, remote.url("/drip"))
    neighbour = _register(issuer, remote.url("/good"))
    secret_client = issuer.create_client()

    stalled, outcome = _in_thread(lambda: _token(issuer, victim, key))
    assert remote.holding.wait(10)
    # While the drip server still holds the victim's fetch, everyone else is served.
    assert issuer.token(secret_client).status_code == 200
    assert _token(issuer, neighbour, key).status_code == 200
    assert requests.get(f"{issuer.url}/healthz", timeout=30).status_code == 200
    assert stalled.is_alive() and not remote.client_left.is_set()

    remote.gate.set()  # the document ends unfinished: not JSON, so no keys
    stalled.join(30)
    assert outcome["response"].status_code == 401


def test_slow_drip_jwks_uri_is_cut_off_at_the_deadline(isolated_issuer, remote, key):
    issuer = isolated_issuer(outbound_allow_private=True, outbound_deadline=1)
    remote.routes["/drip"] = drip(0.2)
    victim = _register(issuer, remote.url("/drip"))

    assert _token(issuer, victim, key).status_code == 401
    # The issuer hung up on a server that never stopped dripping (the gate was never set).
    assert remote.client_left.wait(10)
    assert not remote.gate.is_set()


@pytest.mark.parametrize("declare_length", [True, False], ids=["declared", "streamed"])
def test_huge_jwks_document_is_capped(isolated_issuer, remote, key, declare_length):
    issuer = isolated_issuer(outbound_allow_private=True)
    remote.routes["/huge"] = flood(60 * 1024 * 1024, declare_length=declare_length)
    victim = _register(issuer, remote.url("/huge"))
    secret_client = issuer.create_client()

    assert _token(issuer, victim, key).status_code == 401
    assert remote.client_left.wait(10)  # the issuer stopped reading long before the end
    assert issuer.token(secret_client).status_code == 200


def test_jwks_with_too_many_keys_is_refused(isolated_issuer, remote, key):
    issuer = isolated_issuer(outbound_allow_private=True)
    public = key.as_dict(private=False)
    many = {"keys": [{**public, "kid": f"k{n}"} for n in range(33)]}
    remote.routes["/many"] = serve_json(many)
    assert _token(issuer, _register(issuer, remote.url("/many")), key).status_code == 401


def test_jwks_redirect_is_not_followed(isolated_issuer, remote, key):
    issuer = isolated_issuer(outbound_allow_private=True)
    remote.routes["/moved"] = redirect(remote.url("/internal"))
    remote.routes["/internal"] = serve_json(_jwks(key))
    victim = _register(issuer, remote.url("/moved"))

    assert _token(issuer, victim, key).status_code == 401
    assert remote.hits["/moved"] == 1
    assert remote.hits["/internal"] == 0


def test_private_address_jwks_uri_is_refused_by_default(live_issuer, remote, key):
    assert live_issuer.keyswap.settings.outbound_allow_private is False
    remote.routes["/jwks"] = serve_json(_jwks(key))
    for host in ("127.0.0.1", "localhost"):  # a literal, and a name resolving to loopback
        client_id = _register(live_issuer, remote.url("/jwks", host=host))
        assert _token(live_issuer, client_id, key).status_code == 401
    assert remote.connections == 0


def test_failed_jwks_fetch_is_cached_with_backoff(isolated_issuer, remote, key):
    issuer = isolated_issuer(outbound_allow_private=True)
    remote.routes["/broken"] = fail(500)
    victim = _register(issuer, remote.url("/broken"))

    for _ in range(3):
        assert _token(issuer, victim, key).status_code == 401
    assert remote.hits["/broken"] == 1


def test_concurrent_requests_share_one_jwks_fetch(isolated_issuer, remote, key):
    issuer = isolated_issuer(outbound_allow_private=True, outbound_deadline=60)
    remote.routes["/jwks"] = gated(_jwks(key))
    client_id = _register(issuer, remote.url("/jwks"))

    first = _in_thread(lambda: _token(issuer, client_id, key))
    assert remote.holding.wait(10)
    others = [_in_thread(lambda: _token(issuer, client_id, key)) for _ in range(4)]
    # Give the others time to reach the issuer; a second fetch would show up as a hit.
    waited = time.monotonic()
    while remote.hits["/jwks"] == 1 and time.monotonic() - waited < 1:
        time.sleep(0.05)
    remote.gate.set()
    for thread, outcome in [first, *others]:
        thread.join(30)
        assert outcome["response"].status_code == 200
    assert remote.hits["/jwks"] == 1
