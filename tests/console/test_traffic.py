"""Traffic counts for the console: in memory per request, written coalesced, pruned."""

from __future__ import annotations

from datetime import timedelta

import requests
from sqlalchemy import func, select

from keyswap.issuer.console.traffic import TrafficCounter
from keyswap.issuer.db import transaction
from keyswap.issuer.models import TrafficHour, TrafficMinute

from .conftest import Console


def _stored(console: Console) -> list[tuple[str, str, str, int]]:
    with transaction(console.issuer.keyswap.sessions) as session:
        rows = session.execute(
            select(
                TrafficMinute.tenant,
                TrafficMinute.outcome,
                TrafficMinute.reason,
                TrafficMinute.count,
            ).order_by(TrafficMinute.outcome, TrafficMinute.reason)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_token_requests_are_counted_in_memory_and_written_once_per_flush(console: Console) -> None:
    creds = console.issuer.create_client(user="alice", tenant="acme")
    for _ in range(3):
        assert console.issuer.token(creds).status_code == 200
    console.issuer.set_user_status("alice", "deactivated")
    assert console.issuer.token(creds).status_code == 400
    requests.post(
        console.issuer.token_url,
        data={"grant_type": "client_credentials"},
        auth=(creds.client_id, "wrong"),
        timeout=10,
    )
    traffic = console.issuer.keyswap.traffic
    assert _stored(console) == []  # nothing written per request
    assert sum(traffic.pending().values()) == 5

    assert traffic.flush() > 0
    assert traffic.pending() == {}
    assert _stored(console) == [
        ("acme", "issued", "client_credentials", 3),
        ("", "refused", "invalid_client", 1),  # no credential proven: no tenant either
        ("acme", "refused", "owner_deactivated", 1),  # tenant looked up at flush time
    ]
    with transaction(console.issuer.keyswap.sessions) as session:
        hours = session.execute(
            select(TrafficHour.credential, TrafficHour.outcome, TrafficHour.count).order_by(
                TrafficHour.outcome
            )
        ).all()
    assert [tuple(h) for h in hours] == [
        (creds.client_id, "issued", 3),
        (creds.client_id, "refused", 1),
    ]


def test_counts_of_several_processes_add_up(console: Console) -> None:
    keyswap = console.issuer.keyswap
    creds = console.issuer.create_client(user="alice", tenant="acme")
    other = TrafficCounter(
        keyswap.sessions, keyswap.clock, enabled=True, retention=timedelta(days=1)
    )
    try:
        assert console.issuer.token(creds).status_code == 200
        other.issued("client_credentials", creds.client_id, "acme")
        other.issued("client_credentials", creds.client_id, "acme")
        keyswap.traffic.flush()
        other.flush()
        assert _stored(console) == [("acme", "issued", "client_credentials", 3)]
    finally:
        other.close()


def test_flush_prunes_counts_older_than_the_retention(console: Console) -> None:
    keyswap = console.issuer.keyswap
    creds = console.issuer.create_client(user="alice", tenant="acme")
    assert console.issuer.token(creds).status_code == 200
    keyswap.traffic.flush()
    console.clock.advance(15 * 86400)  # the default retention is 14 days
    assert console.issuer.token(creds).status_code == 200
    keyswap.traffic.flush()
    with transaction(keyswap.sessions) as session:
        assert session.scalar(select(func.count()).select_from(TrafficMinute)) == 1
        assert session.scalar(select(func.count()).select_from(TrafficHour)) == 1


def test_counter_of_an_app_without_console_counts_nothing(live_issuer) -> None:
    creds = live_issuer.create_client()
    assert live_issuer.token(creds).status_code == 200
    assert live_issuer.keyswap.traffic.enabled is False
    assert live_issuer.keyswap.traffic.pending() == {}


def test_overview_shows_a_refusal_at_once_before_any_flush(console: Console) -> None:
    creds = console.issuer.create_client(user="alice", tenant="acme")
    assert console.issuer.token(creds).status_code == 200
    console.issuer.set_user_status("alice", "suspended")
    assert console.issuer.token(creds).status_code == 400
    http = console.sign_in()
    page = http.get(console.url + "/", timeout=10).text
    assert 'data-series="refused"' in page
    assert 'data-label="owner_suspended" data-count="1"' in page
    assert creds.client_id in page.split('id="top-refused"', 1)[1]
    # A tenant admin of another tenant sees none of it.
    console.issuer.create_client(user="bob", tenant="globex")
    other = console.sign_in(tenant="globex").get(console.url + "/", timeout=10).text
    assert "owner_suspended" not in other
    assert creds.client_id not in other
