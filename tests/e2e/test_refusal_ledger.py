"""The refusal ledger over HTTP: every refusal counted once, logged once, with the right labels.

A 429 from the limiter, a 503 from a database outage and a forged ``private_key_jwt``
assertion each appear exactly once in ``/metrics`` and once on the ``keyswap.issuance``
log; the log line names the claimed client as ``client_attempted`` (never as ``client``)
and the source address, and carries no secret.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
import requests
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey
from prometheus_client.parser import text_string_to_metric_families

from keyswap.issuer import create_app
from keyswap.issuer.db import transaction
from keyswap.issuer.lifecycle import add_user, register_client
from keyswap.issuer.models import AuthMethod

from ..conftest import make_settings, start_live_server, stop_live_server

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ISSUANCE = "keyswap.issuance"


def refusals(url: str) -> dict[tuple[str, str, str], float]:
    """Return ``keyswap_refusals_total`` by (endpoint, outcome, reason)."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        (s.labels["endpoint"], s.labels["outcome"], s.labels["reason"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "keyswap_refusals_total"
    }


def log_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    """Return the issuance log's JSON lines captured so far."""
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == ISSUANCE]


def test_a_429_at_introspection_is_counted_and_logged_once(isolated_issuer, caplog):
    issuer = isolated_issuer(rate_limit_address="1/hour")
    introspect = f"{issuer.url}/oauth/introspect"
    with caplog.at_level(logging.INFO, logger=ISSUANCE):
        first = requests.post(introspect, data={"token": "x"}, auth=("ks_rs", "pw"), timeout=10)
        limited = requests.post(introspect, data={"token": "x"}, auth=("ks_rs", "pw"), timeout=10)
    assert (first.status_code, limited.status_code) == (401, 429)
    counted = refusals(issuer.url)
    assert counted[("introspection", "temporarily_unavailable", "rate_limited")] == 1
    assert counted[("introspection", "invalid_client", "invalid_client")] == 1
    lines = log_lines(caplog)
    assert [(line["event"], line["status"]) for line in lines] == [
        ("introspection.denied", 401),
        ("introspection.denied", 429),
    ]
    assert lines[1]["reason"] == "rate_limited"
    assert lines[1]["client_attempted"] == "ks_rs" and "client" not in lines[1]
    assert lines[1]["address"] == "127.0.0.1"
    assert "pw" not in {str(v) for line in lines for v in line.values()}


def test_a_503_while_the_database_is_down_is_counted_and_logged_once(kek, tmp_path, caplog):
    # Nothing listens on port 1: the database is unreachable from the first request.
    url = "postgresql://keyswap:db-password-9@127.0.0.1:1/keyswap"
    live = start_live_server(
        lambda base: create_app(make_settings(url, kek, tmp_path, issuer=base))
    )
    try:
        with caplog.at_level(logging.INFO, logger=ISSUANCE):
            response = requests.post(
                f"{live.url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("ks_someone", "their-secret"),
                timeout=10,
            )
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert refusals(live.url) == {("token", "temporarily_unavailable", "unavailable"): 1}
        [line] = log_lines(caplog)
        assert line["event"] == "token.denied" and line["status"] == 503
        assert (line["client_attempted"], line["address"]) == ("ks_someone", "127.0.0.1")
        issuance = json.dumps(line)
        assert "their-secret" not in issuance and "db-password-9" not in issuance
    finally:
        stop_live_server(live)


def test_a_forged_assertion_is_logged_as_attempted_never_as_the_victim(live_issuer, caplog):
    victim_key = ECKey.generate_key("P-256", private=True)
    keyswap = live_issuer.keyswap
    with transaction(keyswap.sessions) as session:
        add_user(session, "victim-svc", tenant="acme", actor="test")
        victim = register_client(
            session,
            keyswap.hasher,
            owner="victim-svc",
            scope="orders:read",
            max_token_ttl=keyswap.settings.max_token_ttl,
            auth_method=AuthMethod.PRIVATE_KEY_JWT,
            jwks={"keys": [victim_key.as_dict(private=False)]},
            now=keyswap.clock(),
            actor="test",
        ).client
    attacker_key = ECKey.generate_key("P-256", private=True)
    now = int(time.time())
    claims = {
        "iss": victim.id,
        "sub": victim.id,
        "aud": live_issuer.token_url,
        "iat": now,
        "exp": now + 60,
        "jti": "forged-1",
    }
    forged = jose_jwt.encode({"alg": "ES256"}, claims, attacker_key)
    before = refusals(live_issuer.url).get(("token", "invalid_client", "invalid_client"), 0)
    with caplog.at_level(logging.INFO, logger=ISSUANCE):
        response = requests.post(
            live_issuer.token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": forged,
            },
            timeout=10,
        )
    assert response.status_code == 401
    after = refusals(live_issuer.url)[("token", "invalid_client", "invalid_client")]
    assert after - before == 1
    [line] = log_lines(caplog)
    assert line["event"] == "token.denied" and line["reason"] == "invalid_client"
    assert line["client_attempted"] == victim.id
    assert "client" not in line
    assert forged not in caplog.text


def test_a_refused_revocation_is_counted_and_logged_with_the_attempted_id(live_issuer, caplog):
    before = refusals(live_issuer.url).get(("revocation", "invalid_client", "invalid_client"), 0)
    with caplog.at_level(logging.INFO, logger=ISSUANCE):
        response = requests.post(
            f"{live_issuer.url}/oauth/revoke",
            data={"token": "t", "client_id": "ks_guess", "client_secret": "nope"},
            timeout=10,
        )
    assert response.status_code == 401
    after = refusals(live_issuer.url)[("revocation", "invalid_client", "invalid_client")]
    assert after - before == 1
    [line] = log_lines(caplog)
    assert line["event"] == "revocation.denied"
    assert (line["client_attempted"], line["address"]) == ("ks_guess", "127.0.0.1")
    assert "nope" not in caplog.text


def test_a_refusal_after_authentication_names_the_client(live_issuer, caplog):
    creds = live_issuer.create_client()
    live_issuer.set_user_status(creds.user, "deactivated")
    with caplog.at_level(logging.INFO, logger=ISSUANCE):
        assert live_issuer.token(creds).status_code == 400
    [line] = log_lines(caplog)
    assert (line["client"], line["reason"]) == (creds.client_id, "owner_deactivated")
    assert "client_attempted" not in line
