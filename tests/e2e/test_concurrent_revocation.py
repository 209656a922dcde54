"""Revoking one token at once through two real `keyswap serve` processes on PostgreSQL.

Both requests used to find the jti not yet denied and insert it; the second insert hit the
primary key and answered 500 (``UniqueViolation``). RFC 7009 §2.2: revoking a revoked
token succeeds, so every request must answer 200, and the token is denied once.
"""

from __future__ import annotations

import os
import threading

import pytest
import requests
from sqlalchemy import func, select

from keyswap.issuer import create_app
from keyswap.issuer.models import AuditEvent, RevokedToken
from keyswap.jwks import decode_kek, generate_kek

from ..conftest import LiveIssuer, LiveServer, make_settings
from .test_scale_out import ServeProcess

ROUNDS = 8  # tokens, each revoked by PER_TOKEN requests released together
PER_TOKEN = 8


@pytest.fixture
def two_postgres_servers(databases, tmp_path):
    if not databases.is_postgres:
        pytest.skip(
            "needs PostgreSQL: two processes racing one SQLite file serialise on its write lock"
        )
    url = databases.create()
    kek_text = generate_kek()
    env = {
        **os.environ,
        "KEYSWAP_DATABASE_URL": url,
        "KEYSWAP_KEY_ENCRYPTION_KEY": kek_text,
        "KEYSWAP_DATA_DIR": str(tmp_path),
        "KEYSWAP_ISSUER": "http://127.0.0.1:8000",
        "KEYSWAP_RATE_LIMIT_CLIENT": "off",
        "KEYSWAP_RATE_LIMIT_ADDRESS": "off",
    }
    first = ServeProcess(env, tmp_path / "a.log")
    servers = [first]
    try:
        first.wait_ready()  # the first one migrates and makes the key; then the second starts
        second = ServeProcess(env, tmp_path / "b.log")
        servers.append(second)
        second.wait_ready()
        admin = create_app(
            make_settings(url, decode_kek(kek_text), tmp_path, issuer="http://127.0.0.1:8000")
        )
        yield first, second, admin
        admin.extensions["keyswap"].dispose()
    finally:
        for server in servers:
            server.stop()


def test_concurrent_revocations_of_one_token_all_succeed(two_postgres_servers):
    first, second, admin = two_postgres_servers
    issuer = LiveIssuer(LiveServer(app=admin, url="http://127.0.0.1:8000"))
    creds = issuer.create_client(user="racer")
    assert creds.client_secret is not None
    auth = (creds.client_id, creds.client_secret)
    tokens = [
        requests.post(
            first.url + "/oauth/token", data={"grant_type": "client_credentials"}, auth=auth
        ).json()["access_token"]
        for _ in range(ROUNDS)
    ]
    statuses: list[int] = []
    for token in tokens:
        barrier = threading.Barrier(PER_TOKEN)

        def revoke(server, token=token, barrier=barrier):
            with requests.Session() as http:
                http.get(server.url + "/healthz", timeout=10)  # connect before the race
                barrier.wait()
                response = http.post(
                    server.url + "/oauth/revoke", data={"token": token}, auth=auth, timeout=30
                )
            statuses.append(response.status_code)

        threads = [
            threading.Thread(target=revoke, args=((first, second)[i % 2],))
            for i in range(PER_TOKEN)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses == [200] * (ROUNDS * PER_TOKEN)
    with admin.extensions["keyswap"].sessions() as session:
        assert session.scalar(select(func.count()).select_from(RevokedToken)) == ROUNDS
        revoked_events = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "token.revoked")
        )
    assert revoked_events == ROUNDS  # each token's revocation is recorded once
