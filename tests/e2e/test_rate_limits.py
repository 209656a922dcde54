"""Rate limits over HTTP: 429 with Retry-After, never an identity error; guessers slowed.

Limits here use hour windows: the sliding-window counter weights the previous window, so a
test that crosses a window boundary may see one extra hit allowed; with minute windows that
flaked about one run in sixty, with hour windows the chance is negligible.
"""

from __future__ import annotations

import requests

from keyswap.issuer.cli import cli

from ..metrics import metric_total


def _token(issuer, auth):
    return requests.post(
        issuer.token_url, data={"grant_type": "client_credentials"}, auth=auth, timeout=10
    )


def _assert_limited(response):
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["error"] == "temporarily_unavailable"
    assert body["error_description"].startswith("the caller is rate limited; retry after ")
    assert response.headers["Cache-Control"] == "no-store"


def test_client_over_its_limit_gets_429_with_retry_after(isolated_issuer):
    issuer = isolated_issuer(rate_limit_client="3/hour")
    creds = issuer.create_client()
    other = issuer.create_client()
    for _ in range(3):
        assert issuer.token(creds).status_code == 200
    _assert_limited(issuer.token(creds))
    # Another client from the same address is not held back by that one's limit.
    assert issuer.token(other).status_code == 200


def test_a_guessing_caller_is_slowed_a_legitimate_one_is_not(isolated_issuer):
    issuer = isolated_issuer(rate_limit_failures="5/hour")
    creds = issuer.create_client()
    for _ in range(20):
        assert issuer.token(creds).status_code == 200
    for _ in range(5):
        assert _token(issuer, (creds.client_id, "guess")).status_code == 401
    _assert_limited(_token(issuer, (creds.client_id, "guess-again")))


def test_guessing_legacy_api_keys_is_slowed_like_failed_authentication(isolated_issuer):
    issuer = isolated_issuer(rate_limit_failures="5/hour")
    guess = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token_type": "urn:keyswap:params:oauth:token-type:api-key",
    }
    for n in range(5):
        response = requests.post(
            issuer.token_url, data={**guess, "subject_token": f"sk_{n}"}, timeout=10
        )
        assert response.json()["error_description"] == "unknown API key"
    _assert_limited(
        requests.post(issuer.token_url, data={**guess, "subject_token": "sk_x"}, timeout=10)
    )


def test_address_limit_applies_across_clients(isolated_issuer):
    issuer = isolated_issuer(rate_limit_address="4/hour")
    a, b = issuer.create_client(), issuer.create_client()
    assert [issuer.token(c).status_code for c in (a, b, a, b)] == [200] * 4
    _assert_limited(issuer.token(a))


def test_rate_limit_breach_is_not_an_identity_error_for_unknown_clients(isolated_issuer):
    issuer = isolated_issuer(rate_limit_address="2/hour")
    for _ in range(2):
        assert _token(issuer, ("ks_nobody", "x")).status_code == 401
    _assert_limited(_token(issuer, ("ks_nobody", "x")))


def test_limits_are_shared_through_redis_across_instances(isolated_issuer, redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("LIMITS:*LIMITER/keyswap/*"):
        client.delete(key)
    client.close()
    first = isolated_issuer(rate_limit_address="4/hour", redis_url=redis_url)
    second = isolated_issuer(rate_limit_address="4/hour", redis_url=redis_url)
    a, b = first.create_client(), second.create_client()
    statuses = [issuer.token(creds).status_code for issuer, creds in [(first, a), (second, b)] * 2]
    assert statuses == [200] * 4
    _assert_limited(second.token(b))


def test_unreachable_redis_falls_back_to_counting_in_memory(isolated_issuer, caplog):
    # Port 1 on loopback refuses connections at once: Redis is "down".
    issuer = isolated_issuer(rate_limit_client="3/hour", redis_url="redis://127.0.0.1:1/0")
    creds = issuer.create_client()
    for _ in range(3):
        assert issuer.token(creds).status_code == 200
    _assert_limited(issuer.token(creds))
    assert "rate-limit storage unavailable, counting in memory" in caplog.text


def test_one_setting_may_hold_several_limits(isolated_issuer):
    issuer = isolated_issuer(rate_limit_client="100/second;3/hour")
    creds = issuer.create_client()
    assert [issuer.token(creds).status_code for _ in range(3)] == [200] * 3
    _assert_limited(issuer.token(creds))


def _from(address):
    """Headers of a request relayed by the one trusted proxy for ``address``."""
    return {"X-Forwarded-For": address}


def test_someone_sending_a_clients_id_cannot_use_up_its_limit(isolated_issuer):
    issuer = isolated_issuer(rate_limit_client="3/hour", trusted_proxies=1)
    victim = issuer.create_client()
    attacker = _from("203.0.113.66")
    # Wrong secrets (401) and requests that name the victim and fail before authentication
    # (400): none of them is the victim, so none counts against the victim's limit.
    for _ in range(3):
        assert _token(issuer, (victim.client_id, "guess")).status_code == 401
        bad_grant = requests.post(
            issuer.token_url,
            data={"grant_type": "password", "client_id": victim.client_id},
            headers=attacker,
            timeout=10,
        )
        assert bad_grant.status_code == 400
    # The attacker's own address is held back for that id ...
    _assert_limited(
        requests.post(
            issuer.token_url,
            data={"grant_type": "password", "client_id": victim.client_id},
            headers=attacker,
            timeout=10,
        )
    )
    # ... while the victim, with its credential, from its address, gets its full allowance.
    victim_address = _from("198.51.100.7")
    for _ in range(3):
        response = requests.post(
            issuer.token_url,
            data={"grant_type": "client_credentials"},
            auth=(victim.client_id, victim.client_secret),
            headers=victim_address,
            timeout=10,
        )
        assert response.status_code == 200, response.text
    # Its own authenticated requests are what its limit counts.
    _assert_limited(
        requests.post(
            issuer.token_url,
            data={"grant_type": "client_credentials"},
            auth=(victim.client_id, victim.client_secret),
            headers=victim_address,
            timeout=10,
        )
    )


def _exchange(issuer, api_key, address):
    return requests.post(
        issuer.token_url,
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:keyswap:params:oauth:token-type:api-key",
            "subject_token": api_key,
        },
        headers=_from(address),
        timeout=10,
    )


def _budget_spent(issuer):
    return metric_total(issuer.url, "keyswap_unknown_key_budget_spent_total")


def test_unknown_api_keys_share_one_global_budget_across_addresses(
    isolated_issuer, tmp_path, caplog
):
    issuer = isolated_issuer(rate_limit_unknown_keys="3/hour", trusted_proxies=1)
    issuer.create_client(user="svc", tenant="acme")
    keys = tmp_path / "keys.csv"
    keys.write_text("api_key,owner\nsk_live_known_0123456789abcdef,svc\n")
    runner = issuer.app.test_cli_runner()
    assert runner.invoke(cli, ["legacy", "import", str(keys)]).exit_code == 0
    known = "sk_live_known_0123456789abcdef"
    assert _exchange(issuer, known, "198.51.100.1").status_code == 200
    # Three guesses, each from another address: each under any per-address limit.
    for n in range(3):
        guess = _exchange(issuer, f"sk_guess_{n}", f"203.0.113.{n}")
        assert guess.json()["error_description"] == "unknown API key"
    assert _budget_spent(issuer) == 1
    assert "global budget of unknown API keys is spent" in caplog.text
    # The budget is spent: a fourth guess, from a fresh address, is not even looked up.
    refused = _exchange(issuer, "sk_guess_3", "203.0.113.99")
    _assert_limited(refused)
    # A key exchanged lately still works, from anywhere.
    assert _exchange(issuer, known, "198.51.100.2").status_code == 200
