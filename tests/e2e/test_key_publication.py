"""Every key any process signs with is in every process's JWKS, and the key-compromise runbook.

Two apps on one database (SQLite, or PostgreSQL under ``KEYSWAP_TEST_DATABASE_URL``), each
served over real HTTP, share one injected clock that the tests move. Each app refreshes its
key ring only in its own maintenance pass, run at its own phase of the refresh interval, as
``keyswap serve`` workers do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from sqlalchemy import select

from keyswap.issuer.db import transaction
from keyswap.issuer.models import AuditEvent

from ..cli.invoke import ok
from ..conftest import Creds, LiveIssuer, make_settings, prepared_app, start_live_server
from ..conftest import stop_live_server as stop
from .test_key_rotation import Clock

REFRESH = 10.0
ISSUER = "http://127.0.0.1:8000"


@dataclass
class Process:
    """One app standing for one server process, with the phase of its maintenance loop."""

    issuer: LiveIssuer
    phase: int

    def tick(self, second: int) -> None:
        """Run the maintenance pass if this process's loop is due at ``second``."""
        if second % int(REFRESH) == self.phase:
            self.issuer.keyswap.maintenance.run_once()


@pytest.fixture
def two_apps(
    databases, kek, tmp_path: Path
) -> Iterator[Callable[..., tuple[Clock, list[Process]]]]:
    started = []

    def start(**changes) -> tuple[Clock, list[Process]]:
        clock = Clock()
        url = databases.create()
        settings = {"key_refresh_interval": REFRESH, **changes}
        processes = []
        for phase in (0, 5):
            # One issuer identifier for both, as behind one load balancer.
            live = start_live_server(
                lambda _base: prepared_app(
                    make_settings(url, kek, tmp_path, issuer=ISSUER, **settings), clock
                )
            )
            started.append(live)
            issuer = LiveIssuer(live)
            issuer.keyswap.keyring.refresh_in_background()  # as under `keyswap serve`
            issuer.keyswap.maintenance.run_once()
            processes.append(Process(issuer, phase))
        return clock, processes

    yield start
    for live in started:
        stop(live)


def _token(issuer: LiveIssuer, creds: Creds) -> requests.Response:
    return issuer.token(creds)


def _signed_kid(issuer: LiveIssuer, creds: Creds) -> str:
    response = issuer.token(creds)
    assert response.status_code == 200, response.text
    return str(jwt.get_unverified_header(response.json()["access_token"])["kid"])


def _jwks_kids(issuer: LiveIssuer) -> set[str]:
    return {k["kid"] for k in requests.get(issuer.jwks_url, timeout=10).json()["keys"]}


def _cli(issuer: LiveIssuer, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = ok(issuer.app.test_cli_runner(), *args)
    return data


def _assert_every_signer_published(processes: list[Process], creds: Creds, second: int) -> set[str]:
    signed = {_signed_kid(p.issuer, creds) for p in processes}
    for p in processes:
        missing = signed - _jwks_kids(p.issuer)
        assert not missing, f"at t={second}s a token was signed by {missing}, not in a JWKS"
    return signed


@pytest.mark.parametrize(
    "args", [("keys", "rotate", "--alg", "RS256"), ("keys", "rotate", "--now")]
)
def test_no_process_signs_with_a_key_another_process_does_not_publish(two_apps, args):
    # The reported case: no pre-publication window, so the key would sign at the first
    # maintenance pass while the other process's JWKS, read before the rotation, lacks it.
    clock, processes = two_apps(key_prepublish=0)
    first, _second = processes
    creds = first.issuer.create_client()
    (old_kid,) = _assert_every_signer_published(processes, creds, 0)

    new_kid = None
    for second in range(1, 60):
        clock.advance(1)
        if second == 6:  # just after the second process re-read the table
            new_kid = _cli(first.issuer, *args)["kid"]
        for p in processes:
            p.tick(second)
        signed = _assert_every_signer_published(processes, creds, second)
    assert signed == {new_kid} != {old_kid}


def test_runbook_rotate_now_then_revoke_withdraws_the_key_and_its_tokens(two_apps):
    clock, processes = two_apps()
    first, second = processes
    creds = first.issuer.create_client()
    rs = first.issuer.create_client(can_introspect=True)
    old_token = _token(first.issuer, creds).json()["access_token"]
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    # 1. A new key that signs as soon as every process publishes it (no hour-long window).
    new = _cli(first.issuer, "keys", "rotate", "--now")
    assert new["state"] == "next"
    settle = first.issuer.keyswap.settings.rotation_schedule.settle
    for t in range(1, int(settle.total_seconds() + 2 * REFRESH)):
        clock.advance(1)
        for p in processes:
            p.tick(t)
    assert {_signed_kid(p.issuer, creds) for p in processes} == {new["kid"]}

    # 2. Revoke the compromised key: gone from every JWKS, its tokens inactive everywhere.
    assert _introspect(second.issuer, rs, old_token) is True
    revoked = _cli(first.issuer, "keys", "revoke", old_kid, "--reason", "private key leaked")
    assert (revoked["state"], revoked["published"]) == ("revoked", False)
    for p in processes:
        p.issuer.keyswap.maintenance.run_once()
    for p in processes:
        assert old_kid not in _jwks_kids(p.issuer)
        assert _introspect(p.issuer, rs, old_token) is False
    new_token = _token(second.issuer, creds).json()["access_token"]
    assert _introspect(first.issuer, rs, new_token) is True

    with transaction(first.issuer.keyswap.sessions) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "key.revoked")).one()
        assert (event.subject, event.reason) == (f"key:{old_kid}", "private key leaked")
        assert event.actor.startswith("cli:")


def test_revoking_the_active_key_pauses_issuance_until_its_successor_is_published(two_apps):
    clock, processes = two_apps()
    first, second = processes
    creds = first.issuer.create_client()
    old_kid = _signed_kid(first.issuer, creds)
    waiting = _cli(first.issuer, "keys", "rotate")  # scheduled, an hour away
    for p in processes:
        p.issuer.keyswap.maintenance.run_once()

    _cli(first.issuer, "keys", "revoke", old_kid)
    for p in processes:
        p.issuer.keyswap.maintenance.run_once()
    # Never a token from the revoked key, nor from a key some process may not publish yet.
    for p in processes:
        refused = _token(p.issuer, creds)
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"]
        assert old_kid not in _jwks_kids(p.issuer)
    # The waiting key was brought forward: it signs once it has settled, not in an hour.
    settle = first.issuer.keyswap.settings.rotation_schedule.settle
    clock.advance(settle.total_seconds())
    for p in processes:
        p.issuer.keyswap.maintenance.run_once()
    assert {_signed_kid(p.issuer, creds) for p in processes} == {waiting["kid"]}


def _introspect(issuer: LiveIssuer, rs: Creds, token: str) -> bool:
    assert rs.client_secret is not None
    response = requests.post(
        f"{issuer.url}/oauth/introspect",
        data={"token": token},
        auth=(rs.client_id, rs.client_secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])
