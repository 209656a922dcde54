"""The full offboarding story: a user with two clients and live tokens leaves."""

from __future__ import annotations

import json

import requests

from keyswap.issuer.cli import cli


def test_deactivated_user_loses_issuance_and_live_tokens_and_audit_says_who(live_issuer):
    rs = live_issuer.create_client(user="orders-api", can_introspect=True)
    first = live_issuer.create_client(user="dana", tenant="acme")
    second = live_issuer.create_client(user="dana", tenant="acme")
    tokens = [live_issuer.token(c).json()["access_token"] for c in (first, second, first)]

    def active(token):
        return requests.post(
            f"{live_issuer.url}/oauth/introspect",
            data={"token": token},
            auth=(rs.client_id, rs.client_secret),
            timeout=10,
        ).json()

    assert all(active(t)["active"] for t in tokens)

    runner = live_issuer.app.test_cli_runner()
    result = runner.invoke(cli, ["users", "deactivate", "dana", "--reason", "left the company"])
    assert result.exit_code == 0, result.output

    for creds in (first, second):
        refused = live_issuer.token(creds)
        assert refused.status_code == 400
        assert refused.json() == {
            "error": "invalid_grant",
            "error_description": "the user associated with this key is deactivated",
        }
    assert [active(t) for t in tokens] == [{"active": False}] * 3

    audit = json.loads(runner.invoke(cli, ["audit", "--json"]).stdout)
    newest = audit[0]
    assert newest["action"] == "user.deactivated"
    assert newest["subject"] == "user:dana"
    assert newest["actor"].startswith("cli:")
    assert newest["reason"] == "left the company"
    assert newest["at"].endswith("Z")
    created = [
        e for e in audit if e["action"] == "client.created" and e["details"]["owner"] == "dana"
    ]
    assert len(created) == 2


def test_audit_since_filters_older_events(live_issuer):
    live_issuer.create_client(user="erin")
    runner = live_issuer.app.test_cli_runner()
    everything = json.loads(runner.invoke(cli, ["audit", "--json"]).stdout)
    assert everything
    future = json.loads(runner.invoke(cli, ["audit", "--since", "2999-01-01", "--json"]).stdout)
    assert future == []


def test_metrics_count_issuance_and_refusals_by_reason(live_issuer):
    creds = live_issuer.create_client()
    live_issuer.token(creds)
    live_issuer.set_user_status(creds.user, "suspended")
    live_issuer.token(creds)
    text = requests.get(f"{live_issuer.url}/metrics", timeout=10).text
    assert 'keyswap_tokens_issued_total{grant_type="client_credentials"}' in text
    assert 'keyswap_token_failures_total{reason="owner_suspended"}' in text
    assert "keyswap_token_request_seconds_bucket" in text


def test_issuance_log_lines_never_carry_secrets_or_tokens(live_issuer, caplog):
    import logging

    creds = live_issuer.create_client()
    with caplog.at_level(logging.INFO, logger="keyswap.issuance"):
        token = live_issuer.token(creds).json()["access_token"]
        requests.post(
            live_issuer.token_url,
            data={"grant_type": "client_credentials"},
            auth=(creds.client_id, "wrong-secret"),
            timeout=10,
        )
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "keyswap.issuance"]
    assert [line["event"] for line in lines] == ["token.issued", "token.denied"]
    assert lines[0]["client"] == creds.client_id and lines[0]["jti"]
    assert lines[1]["reason"] == "invalid_client"
    blob = caplog.text
    assert creds.client_secret not in blob and token not in blob and "wrong-secret" not in blob
