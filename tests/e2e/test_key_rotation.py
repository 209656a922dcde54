"""Signing-key rotation over HTTP: pre-publication, a verifier with a cached JWKS, retirement.

Time is the app's injected clock, moved by the tests; rotation steps run where the server
runs them, in the maintenance pass (``keyswap.maintenance.run_once()``), never in a request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from sqlalchemy import select

from keyswap.issuer.cli import cli
from keyswap.issuer.db import transaction, utcnow
from keyswap.issuer.models import AuditEvent, KeyState, SigningKey


class CountingJWKClient(jwt.PyJWKClient):
    """PyJWT's JWKS client, counting its fetches."""

    fetches = 0

    def fetch_data(self):
        self.fetches += 1
        return super().fetch_data()


def _kid(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def _token(issuer, creds) -> str:
    response = issuer.token(creds)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _verify(client: jwt.PyJWKClient, issuer, token: str, clock: Clock | None) -> dict[str, Any]:
    # The issuer signs at its clock's time, so a resource server judges the times by it too
    # (None: the signature only, for a token the moved clock has seen expire).
    key = client.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=[key.algorithm_name],
        audience=issuer.url,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert clock is None or claims["iat"] <= clock().timestamp() < claims["exp"]
    return claims


def _jwks_kids(issuer) -> set[str]:
    return {k["kid"] for k in requests.get(issuer.jwks_url, timeout=10).json()["keys"]}


@dataclass
class Clock:
    """The app's wall clock, moved by hand."""

    now: datetime = field(default_factory=utcnow)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_rotation_keeps_a_caching_verifier_verifying_old_and_new_tokens(isolated_issuer):
    clock = Clock()
    issuer = isolated_issuer(clock, key_prepublish=3600, key_refresh_interval=0)
    creds = issuer.create_client()
    old_token = _token(issuer, creds)
    old_kid = _kid(old_token)

    rotated = issuer.app.test_cli_runner().invoke(cli, ["keys", "rotate", "--json"])
    assert rotated.exit_code == 0, rotated.output
    new_kid = json.loads(rotated.stdout)["kid"]
    assert json.loads(rotated.stdout)["state"] == "next"
    # Published before it signs anything.
    assert _jwks_kids(issuer) == {old_kid, new_kid}
    assert _kid(_token(issuer, creds)) == old_kid

    verifier = CountingJWKClient(issuer.jwks_url)
    assert _verify(verifier, issuer, old_token, clock)["client_id"] == creds.client_id
    assert verifier.fetches == 1

    clock.advance(3600)
    assert _kid(_token(issuer, creds)) == old_kid  # requests never take a rotation step
    issuer.keyswap.maintenance.run_once()
    new_token = _token(issuer, creds)
    assert _kid(new_token) == new_kid
    # The verifier already holds the new key from its one fetch.
    assert _verify(verifier, issuer, new_token, clock)["client_id"] == creds.client_id
    assert _verify(verifier, issuer, old_token, None)["client_id"] == creds.client_id
    assert verifier.fetches == 1

    listed = issuer.app.test_cli_runner().invoke(cli, ["keys", "list", "--json"])
    states = {k["kid"]: k["state"] for k in json.loads(listed.stdout)}
    assert states == {new_kid: "active", old_kid: "retired"}
    assert _jwks_kids(issuer) == {old_kid, new_kid}

    # Once every token the old key signed has expired, it leaves the JWKS.
    max_ttl = issuer.keyswap.settings.max_token_ttl
    clock.advance(max_ttl + 1)
    assert _jwks_kids(issuer) == {new_kid}

    with transaction(issuer.keyswap.sessions) as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert "key.published" in actions and "key.rotated" in actions


def test_second_rotation_while_one_waits_is_refused(isolated_issuer):
    issuer = isolated_issuer(key_prepublish=3600)
    runner = issuer.app.test_cli_runner()
    assert runner.invoke(cli, ["keys", "rotate"]).exit_code == 0
    second = runner.invoke(cli, ["keys", "rotate"])
    assert second.exit_code == 1
    assert "already published" in second.stderr


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_rotation_to_another_algorithm_verifies_with_pyjwkclient(isolated_issuer, alg):
    clock = Clock()
    issuer = isolated_issuer(clock, key_prepublish=0, key_refresh_interval=0)
    creds = issuer.create_client()
    assert issuer.app.test_cli_runner().invoke(cli, ["keys", "rotate", "--alg", alg]).exit_code == 0
    clock.advance(issuer.keyswap.settings.rotation_schedule.settle.total_seconds())
    issuer.keyswap.maintenance.run_once()
    token = _token(issuer, creds)
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert _verify(jwt.PyJWKClient(issuer.jwks_url), issuer, token, clock)["sub"]


def test_automatic_schedule_publishes_then_promotes(isolated_issuer):
    clock = Clock()
    issuer = isolated_issuer(
        clock, key_rotation_period=86400, key_prepublish=3600, key_refresh_interval=0
    )
    creds = issuer.create_client()
    first_kid = _kid(_token(issuer, creds))
    # The active key has signed for almost its whole period: a next key is published.
    clock.advance(86400 - 60)
    issuer.keyswap.maintenance.run_once()
    assert _kid(_token(issuer, creds)) == first_kid
    assert len(_jwks_kids(issuer)) == 2
    clock.advance(3600)
    issuer.keyswap.maintenance.run_once()
    assert _kid(_token(issuer, creds)) != first_kid


ROTATOR = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    from keyswap.issuer import create_app
    from keyswap.issuer.config import Settings
    from keyswap.issuer.db import transaction, utcnow
    from keyswap.issuer.rotation import advance, rotate_now

    url, kek, start = sys.argv[1], bytes.fromhex(sys.argv[2]), float(sys.argv[3])
    settings = Settings(data_dir=".", database_url=url, key_encryption_key=kek, key_prepublish=0)
    app = create_app(settings)
    ks = app.extensions["keyswap"]
    while time.time() < start:
        pass
    published = promoted = 0
    for _ in range(20):
        try:
            with transaction(ks.sessions) as session:
                rotate_now(
                    session, ks.sealer, alg="ES256", schedule=settings.rotation_schedule,
                    immediate=True, actor="race", now=ks.clock(),
                )
            published += 1
        except Exception:
            pass
        later = utcnow() + timedelta(hours=1)  # every key published so far has settled
        promoted += advance(ks.sessions, ks.sealer, settings.rotation_schedule, now=later)
    print(published, promoted)
    """
)


def test_two_processes_rotating_concurrently_leave_one_signer(isolated_issuer, kek, tmp_path):
    import time

    issuer = isolated_issuer()
    url = issuer.keyswap.settings.database_url
    start = time.time() + 1.5
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ROTATOR, url, kek.hex(), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    with transaction(issuer.keyswap.sessions) as session:
        rows = session.scalars(select(SigningKey)).all()
    states = [r.state for r in rows]
    assert states.count(KeyState.ACTIVE) == 1
    assert states.count(KeyState.NEXT) <= 1
    total_promotions = sum(int(out.split()[1]) for out, _ in outputs)
    assert total_promotions == states.count(KeyState.RETIRED)
    assert total_promotions >= 1
