"""Rate limits over HTTP: 429 with Retry-After, never an identity error; guessers slowed."""

from __future__ import annotations

import requests


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
    issuer = isolated_issuer(rate_limit_client="3/minute")
    creds = issuer.create_client()
    other = issuer.create_client()
    for _ in range(3):
        assert issuer.token(creds).status_code == 200
    _assert_limited(issuer.token(creds))
    # Another client from the same address is not held back by that one's limit.
    assert issuer.token(other).status_code == 200


def test_a_guessing_caller_is_slowed_a_legitimate_one_is_not(isolated_issuer):
    issuer = isolated_issuer(rate_limit_failures="5/minute")
    creds = issuer.create_client()
    for _ in range(20):
        assert issuer.token(creds).status_code == 200
    for _ in range(5):
        assert _token(issuer, (creds.client_id, "guess")).status_code == 401
    _assert_limited(_token(issuer, (creds.client_id, "guess-again")))


def test_guessing_legacy_api_keys_is_slowed_like_failed_authentication(isolated_issuer):
    issuer = isolated_issuer(rate_limit_failures="5/minute")
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
    issuer = isolated_issuer(rate_limit_address="4/minute")
    a, b = issuer.create_client(), issuer.create_client()
    assert [issuer.token(c).status_code for c in (a, b, a, b)] == [200] * 4
    _assert_limited(issuer.token(a))


def test_rate_limit_breach_is_not_an_identity_error_for_unknown_clients(isolated_issuer):
    issuer = isolated_issuer(rate_limit_address="2/minute")
    for _ in range(2):
        assert _token(issuer, ("ks_nobody", "x")).status_code == 401
    _assert_limited(_token(issuer, ("ks_nobody", "x")))


def test_limits_are_shared_through_redis_across_instances(isolated_issuer, redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("LIMITS:*LIMITER/keyswap/*"):
        client.delete(key)
    client.close()
    first = isolated_issuer(rate_limit_address="4/minute", redis_url=redis_url)
    second = isolated_issuer(rate_limit_address="4/minute", redis_url=redis_url)
    a, b = first.create_client(), second.create_client()
    statuses = [issuer.token(creds).status_code for issuer, creds in [(first, a), (second, b)] * 2]
    assert statuses == [200] * 4
    _assert_limited(second.token(b))


def test_unreachable_redis_falls_back_to_counting_in_memory(isolated_issuer, caplog):
    # Port 1 on loopback refuses connections at once: Redis is "down".
    issuer = isolated_issuer(rate_limit_client="3/minute", redis_url="redis://127.0.0.1:1/0")
    creds = issuer.create_client()
    for _ in range(3):
        assert issuer.token(creds).status_code == 200
    _assert_limited(issuer.token(creds))
    assert "rate-limit storage unavailable, counting in memory" in caplog.text


def test_one_setting_may_hold_several_limits(isolated_issuer):
    issuer = isolated_issuer(rate_limit_client="100/second;3/minute")
    creds = issuer.create_client()
    assert [issuer.token(creds).status_code for _ in range(3)] == [200] * 3
    _assert_limited(issuer.token(creds))
