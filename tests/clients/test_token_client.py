"""TokenClient against the live issuer over HTTP: discovery, caching, refresh, single flight,
retries (503, 429 with Retry-After, connection failures), refusals told verbatim."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import jwt
import pytest

from keyswap.clients import (
    AccessToken,
    IssuerUnavailable,
    RetryPolicy,
    TokenClient,
    TokenError,
    TokenRefused,
)
from keyswap.clients.backoff import parse_retry_after
from keyswap.clients.token_client import metadata_url

from .token_servers import FakeClock, IssuerFront, SleepRecorder, serving, tokens_issued

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, max_retry_after=0.2)


@pytest.fixture
def front(live_issuer):
    """A counting, fault-injecting front before the live issuer."""
    with serving(IssuerFront(live_issuer.url)) as front:
        yield front


def _client(creds, token_url, **options):
    return TokenClient(
        token_url, client_id=creds.client_id, client_secret=creds.client_secret, **options
    )


def _claims(token: AccessToken) -> dict[str, Any]:
    return jwt.decode(token.access_token, options={"verify_signature": False})


# --- discovery and caching -----------------------------------------------------------


def test_token_is_cached_one_issuance_for_many_calls(live_issuer):
    creds = live_issuer.create_client()
    before = tokens_issued(live_issuer.url)
    with TokenClient.from_issuer(
        live_issuer.url, client_id=creds.client_id, client_secret=creds.client_secret
    ) as client:
        tokens = {client.get_token().access_token for _ in range(50)}
        assert client.token_url == live_issuer.token_url  # read from RFC 8414 metadata
    assert len(tokens) == 1
    assert tokens_issued(live_issuer.url) - before == 1
    claims = _claims(client.get_token())
    assert claims["client_id"] == creds.client_id
    assert claims["scope"] == "orders:read orders:write"


def test_scope_and_resource_each_get_their_own_cached_token(live_issuer):
    creds = live_issuer.create_client(audience=["https://orders.example", "https://bills.example"])
    before = tokens_issued(live_issuer.url)
    client = _client(creds, live_issuer.token_url)
    read = client.get_token(scope="orders:read")
    assert client.get_token(scope=["orders:read"]) == read
    both = client.get_token(scope="orders:write orders:read")
    assert client.get_token(scope="orders:read orders:write") == both  # order is not meaning
    bills = client.get_token(scope="orders:read", resource="https://bills.example")
    assert tokens_issued(live_issuer.url) - before == 3
    assert _claims(read)["scope"] == "orders:read"
    assert _claims(bills)["aud"] == "https://bills.example"


def test_token_is_refreshed_near_expiry_with_an_injected_clock(live_issuer):
    creds = live_issuer.create_client(token_ttl=600)
    clock = FakeClock()
    client = _client(creds, live_issuer.token_url, clock=clock, refresh_margin=30)
    first = client.get_token()
    assert first.expires_in == 600
    clock.advance(600 - 30 - 1)  # one second before the refresh margin
    assert client.get_token() is first
    clock.advance(2)  # inside the margin: refreshed before exp, not after
    second = client.get_token()
    assert second.access_token != first.access_token
    assert client.get_token() is second


def test_short_lived_token_refreshes_at_a_fraction_of_its_lifetime(live_issuer):
    creds = live_issuer.create_client(token_ttl=20)
    clock = FakeClock()
    client = _client(creds, live_issuer.token_url, clock=clock, refresh_fraction=0.1)
    first = client.get_token()
    clock.advance(17.9)  # a 30 s margin would refresh a 20 s token on every call
    assert client.get_token() is first
    clock.advance(0.2)
    assert client.get_token() is not first


def test_twenty_concurrent_threads_cause_one_issuance(live_issuer, front):
    creds = live_issuer.create_client()
    front.delay = 0.3  # keep the first fetch in flight while the others arrive
    client = _client(creds, front.token_url)
    before = tokens_issued(live_issuer.url)
    start = threading.Barrier(20)
    results: list[str] = []

    def call() -> None:
        start.wait()
        results.append(client.get_token().access_token)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 20 and len(set(results)) == 1
    assert front.hits["/oauth/token"] == 1
    assert tokens_issued(live_issuer.url) - before == 1


def test_invalidate_drops_only_the_token_it_names(live_issuer):
    creds = live_issuer.create_client()
    client = _client(creds, live_issuer.token_url)
    first = client.get_token()
    client.invalidate(access_token="some-other-token")
    assert client.get_token() is first
    client.invalidate(access_token=first.access_token)
    assert client.get_token().access_token != first.access_token


# --- retries -------------------------------------------------------------------------


def test_retry_on_503_then_token(live_issuer, front):
    creds = live_issuer.create_client()
    front.fail_next(2, 503, {"Retry-After": "0"})
    sleeps = SleepRecorder()
    token = _client(creds, front.token_url, retry=FAST, sleep=sleeps).get_token()
    assert _claims(token)["client_id"] == creds.client_id
    assert front.hits["/oauth/token"] == 3
    assert sleeps.waits == [0.0, 0.0]


def test_retry_without_retry_after_uses_full_jitter_backoff(live_issuer, front):
    creds = live_issuer.create_client()
    front.fail_next(3, 502)
    sleeps = SleepRecorder()
    policy = RetryPolicy(attempts=4, backoff=0.1, max_backoff=0.25)
    _client(creds, front.token_url, retry=policy, sleep=sleeps).get_token()
    assert len(sleeps.waits) == 3
    for n, wait in enumerate(sleeps.waits):
        assert 0.0 <= wait <= min(0.25, 0.1 * 2**n)


def test_issuer_unavailable_after_retries_run_out(live_issuer, front):
    creds = live_issuer.create_client()
    front.fail_next(10, 503, {"Retry-After": "0"})
    client = _client(creds, front.token_url, retry=RetryPolicy(attempts=3), sleep=SleepRecorder())
    with pytest.raises(IssuerUnavailable) as caught:
        client.get_token()
    assert (caught.value.error, caught.value.status) == ("temporarily_unavailable", 503)
    assert caught.value.description == "scripted 503"
    assert caught.value.retry_after == 0
    assert front.hits["/oauth/token"] == 3


def test_no_retry_on_400_and_owner_refusal_is_told_verbatim(live_issuer, front):
    creds = live_issuer.create_client()
    live_issuer.set_user_status(creds.user, "deactivated")
    sleeps = SleepRecorder()
    with pytest.raises(TokenRefused) as caught:
        _client(creds, front.token_url, retry=FAST, sleep=sleeps).get_token()
    refused = caught.value
    assert refused.error == "invalid_grant"
    assert refused.description == "the user associated with this key is deactivated"
    assert refused.status == 400
    assert str(refused) == "invalid_grant: the user associated with this key is deactivated"
    assert front.hits["/oauth/token"] == 1 and sleeps.waits == []


def test_no_retry_on_401_for_a_wrong_secret(live_issuer, front):
    creds = live_issuer.create_client()
    client = TokenClient(front.token_url, client_id=creds.client_id, client_secret="wrong")
    with pytest.raises(TokenRefused) as caught:
        client.get_token()
    assert (caught.value.error, caught.value.status) == ("invalid_client", 401)
    assert "wrong" not in str(caught.value)
    assert front.hits["/oauth/token"] == 1


def test_real_429_retry_after_is_honoured(isolated_issuer):
    issuer = isolated_issuer(rate_limit_client="1/second")
    creds = issuer.create_client()
    sleeps = SleepRecorder(real=True)
    policy = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.01, max_retry_after=5)
    client = _client(creds, issuer.token_url, retry=policy, sleep=sleeps)
    client.fetch_token()
    second = client.fetch_token()  # the issuer's limiter answers 429 first
    assert _claims(second)["client_id"] == creds.client_id
    assert sleeps.waits and sleeps.waits[0] >= 1.0  # its Retry-After, not the 10 ms backoff


def test_retry_after_http_date_is_honoured_and_capped(live_issuer, front):
    creds = live_issuer.create_client()
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    front.fail_next(1, 429, {"Retry-After": later})
    sleeps = SleepRecorder()
    policy = RetryPolicy(attempts=3, max_retry_after=0.5)
    _client(creds, front.token_url, retry=policy, sleep=sleeps).get_token()
    assert sleeps.waits == [0.5]
    assert front.hits["/oauth/token"] == 2


def test_retry_after_beyond_the_deadline_gives_up_at_once(live_issuer, front):
    creds = live_issuer.create_client()
    front.fail_next(1, 429, {"Retry-After": "120"})
    sleeps = SleepRecorder()
    policy = RetryPolicy(attempts=3, max_retry_after=60, deadline=10)
    with pytest.raises(IssuerUnavailable) as caught:
        _client(creds, front.token_url, retry=policy, sleep=sleeps).get_token()
    assert (caught.value.status, caught.value.retry_after) == (429, 120)
    assert sleeps.waits == []


def test_connection_refused_is_retried_then_issuer_unavailable(live_issuer):
    creds = live_issuer.create_client()
    with serving(IssuerFront(live_issuer.url)) as gone:
        dead = gone.token_url
    sleeps = SleepRecorder()
    client = _client(creds, dead, retry=RetryPolicy(attempts=3), sleep=sleeps, timeout=2)
    with pytest.raises(IssuerUnavailable) as caught:
        client.get_token()
    assert caught.value.error == "connection_failed"
    assert len(sleeps.waits) == 2


def test_parse_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7
    assert parse_retry_after("Sat, 31 Jan 2026 12:00:30 GMT", now) == 30
    assert parse_retry_after("Sat, 31 Jan 2026 11:00:00 GMT", now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_metadata_url_inserts_well_known_before_the_issuer_path():
    well_known = "/.well-known/oauth-authorization-server"
    assert metadata_url("https://a.example") == f"https://a.example{well_known}"
    assert metadata_url("https://a.example/t1/") == f"https://a.example{well_known}/t1"


def test_discovery_refuses_metadata_for_another_issuer(live_issuer, front):
    creds = live_issuer.create_client()
    client = TokenClient.from_issuer(
        front.url, client_id=creds.client_id, client_secret=creds.client_secret
    )
    with pytest.raises(TokenError, match="invalid_metadata"):
        client.get_token()  # the front forwards the real document, which names the real issuer


def test_access_token_repr_never_shows_the_token(live_issuer):
    creds = live_issuer.create_client()
    token = _client(creds, live_issuer.token_url).get_token()
    assert token.access_token not in repr(token)


def test_real_503_during_a_database_outage_is_retried_until_it_ends(proxied_issuer):
    issuer, proxy = proxied_issuer
    creds = issuer.create_client()
    proxy.cut()
    threading.Timer(1.0, proxy.resume).start()
    sleeps = SleepRecorder(real=True)
    policy = RetryPolicy(attempts=60, max_retry_after=0.25, deadline=20)
    started = time.monotonic()
    token = _client(creds, issuer.token_url, retry=policy, sleep=sleeps).get_token()
    assert _claims(token)["client_id"] == creds.client_id
    assert sleeps.waits and set(sleeps.waits) == {0.25}  # the issuer's Retry-After: 5, capped
    assert time.monotonic() - started >= 1.0
