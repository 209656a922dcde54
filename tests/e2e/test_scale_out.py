"""Two real `keyswap serve` processes (granian workers) on one database, rate limits in Redis.

What one instance changes, the other sees on the very next request: a deactivated user,
a revoked token, a rotated signing key.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import requests

from keyswap.issuer import create_app
from keyswap.issuer.db import transaction
from keyswap.issuer.rotation import rotate_now
from keyswap.jwks import generate_kek

from ..conftest import Creds, LiveIssuer, LiveServer, make_settings
from ..processes import free_port as _free_port
from ..processes import stop, wait_ready


class ServeProcess:
    """One `keyswap serve` process on a port of its own."""

    def __init__(self, env: dict[str, str], log_path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keyswap.issuer.cli",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        wait_ready(self.proc, self.url, Path(self._log.name), timeout)

    def stop(self) -> None:
        stop(self.proc, timeout=15)
        self._log.close()


@pytest.fixture
def two_servers(databases, redis_url, tmp_path):
    url = databases.create()
    kek_text = generate_kek()
    env = {
        **os.environ,
        "KEYSWAP_DATABASE_URL": url,
        "KEYSWAP_KEY_ENCRYPTION_KEY": kek_text,
        "KEYSWAP_DATA_DIR": str(tmp_path),
        "KEYSWAP_ISSUER": "http://127.0.0.1:8000",
        "KEYSWAP_REDIS_URL": redis_url,
        "KEYSWAP_KEY_REFRESH_INTERVAL": "0.2",
        "KEYSWAP_KEY_PREPUBLISH": "0",
    }
    first = ServeProcess(env, tmp_path / "a.log")
    first.wait_ready()  # the first one migrates and makes the key; then the second starts
    second = ServeProcess(env, tmp_path / "b.log")
    servers = [first, second]
    try:
        second.wait_ready()
        from keyswap.jwks import decode_kek

        admin = create_app(
            make_settings(
                url,
                decode_kek(kek_text),
                tmp_path,
                issuer="http://127.0.0.1:8000",
                key_refresh_interval=0.2,
            )
        )
        yield first, second, admin
        admin.extensions["keyswap"].dispose()
    finally:
        for server in servers:
            server.stop()


def _token(server, creds: Creds) -> requests.Response:
    assert creds.client_secret is not None
    return requests.post(
        server.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(creds.client_id, creds.client_secret),
        timeout=10,
    )


def test_what_one_instance_changes_the_other_sees_at_once(two_servers):
    first, second, admin = two_servers
    issuer = LiveIssuer(LiveServer(app=admin, url="http://127.0.0.1:8000"))
    creds = issuer.create_client(user="frank")
    rs = issuer.create_client(user="orders-api", can_introspect=True)
    assert creds.client_secret is not None and rs.client_secret is not None

    # A user deactivated (through any instance's database) is refused by the other at once.
    assert _token(first, creds).status_code == 200
    assert _token(second, creds).status_code == 200
    issuer.set_user_status("frank", "deactivated")
    refused = _token(second, creds)
    assert refused.status_code == 400
    assert refused.json()["error_description"] == "the user associated with this key is deactivated"

    # A token revoked through one is inactive at the other's introspection (another
    # client: frank's tokens stay inactive up to his cutoff).
    creds = issuer.create_client(user="grace")
    assert creds.client_secret is not None
    token = _token(first, creds).json()["access_token"]
    assert (
        requests.post(
            first.url + "/oauth/revoke",
            data={"token": token},
            auth=(creds.client_id, creds.client_secret),
            timeout=10,
        ).status_code
        == 200
    )
    answer = requests.post(
        second.url + "/oauth/introspect",
        data={"token": token},
        auth=(rs.client_id, rs.client_secret),
        timeout=10,
    ).json()
    assert answer == {"active": False}

    # A key rotated (to RS256, with no pre-publication window) is served by both, and at
    # no moment does either sign with a key that the other's JWKS lacks.
    keyswap = admin.extensions["keyswap"]
    with transaction(keyswap.sessions) as session:
        new_kid = rotate_now(
            session,
            keyswap.sealer,
            alg="RS256",
            schedule=keyswap.settings.rotation_schedule,
            immediate=True,
            actor="test",
            now=keyswap.clock(),
        ).kid
    deadline = time.monotonic() + 20
    kids: set[str] = set()
    while time.monotonic() < deadline:
        kids = {
            jwt.get_unverified_header(_token(server, creds).json()["access_token"])["kid"]
            for server in (first, second)
        }
        for server in (first, second):
            published = {
                k["kid"] for k in requests.get(server.url + "/jwks.json", timeout=10).json()["keys"]
            }
            assert kids <= published, f"{server.url} does not publish {kids - published}"
        if kids == {new_kid}:
            break
        time.sleep(0.1)
    assert kids == {new_kid}
