"""Faults: the database going away and coming back, a wrong or missing KEK, a crash mid-rotation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import select

from keyswap.issuer import create_app
from keyswap.issuer.config import Settings
from keyswap.issuer.db import transaction
from keyswap.issuer.models import KeyState, SigningKey
from keyswap.issuer.serving import StartupError, prepare

from ..conftest import (
    make_settings,
)


def test_postgres_outage_mid_load_is_503_then_service_resumes_by_itself(proxied_issuer):
    issuer, proxy = proxied_issuer
    creds = issuer.create_client()
    statuses = [issuer.token(creds).status_code for _ in range(10)]
    proxy.cut()
    during = [issuer.token(creds) for _ in range(10)]
    proxy.resume()
    deadline = time.monotonic() + 15
    after = issuer.token(creds)
    while after.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        after = issuer.token(creds)

    assert statuses == [200] * 10
    assert {r.status_code for r in during} == {503}
    for response in during:
        assert response.json()["error"] == "temporarily_unavailable"
        assert response.headers["Retry-After"]
        assert "Traceback" not in response.text and "access_token" not in response.text
    assert after.status_code == 200


def test_connections_lost_between_requests_are_replaced_without_failing_one(proxied_issuer):
    # A database restart between requests: every pooled connection (and the cursor each
    # keeps for live reads) is dead. The next read notices, the pool is replaced and the
    # read is run once more, so no request fails for it.
    issuer, proxy = proxied_issuer
    creds = issuer.create_client()
    assert [issuer.token(creds).status_code for _ in range(5)] == [200] * 5
    proxy.cut()
    proxy.resume()
    assert issuer.token(creds).status_code == 200


@pytest.fixture
def apps():
    """Build apps whose engines are disposed after the test."""
    built = []

    def build(settings):
        app = create_app(settings)
        built.append(app)
        return app

    yield build
    for app in built:
        app.extensions["keyswap"].dispose()


@pytest.fixture
def _app(apps):
    def build(database_url, kek, data_dir, **changes):
        return apps(make_settings(database_url, kek, data_dir, **changes))

    return build


def test_wrong_kek_stops_start_up_with_a_clear_message(databases, kek, tmp_path, _app):
    url = databases.create()
    prepare(_app(url, kek, tmp_path))
    with pytest.raises(StartupError, match="KEYSWAP_KEY_ENCRYPTION_KEY"):
        prepare(_app(url, os.urandom(32), tmp_path))


def test_missing_kek_on_a_database_with_keys_stops_and_makes_no_second_key_set(
    databases, kek, tmp_path, _app, apps
):
    url = databases.create()
    prepare(_app(url, kek, tmp_path))
    data_dir = tmp_path / "fresh"
    settings = Settings.from_env({"KEYSWAP_DATA_DIR": str(data_dir), "KEYSWAP_DATABASE_URL": url})
    assert settings.generated_kek_file == data_dir / "kek"
    with pytest.raises(StartupError, match="no key-encryption key was given"):
        prepare(apps(settings))
    assert not (data_dir / "kek").exists()
    with transaction(_app(url, kek, tmp_path).extensions["keyswap"].sessions) as session:
        assert len(session.scalars(select(SigningKey)).all()) == 1


def test_keyswap_serve_with_a_wrong_kek_exits_with_the_message(databases, kek, tmp_path, _app):
    url = databases.create()
    prepare(_app(url, kek, tmp_path))
    from keyswap.jwks import generate_kek

    env = {
        **os.environ,
        "KEYSWAP_DATABASE_URL": url,
        "KEYSWAP_DATA_DIR": str(tmp_path),
        "KEYSWAP_KEY_ENCRYPTION_KEY": generate_kek(),
    }
    result = subprocess.run(
        [sys.executable, "-m", "keyswap.issuer.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot decrypt signing key" in result.stderr
    assert "KEYSWAP_KEY_ENCRYPTION_KEY" in result.stderr
    assert "Traceback" not in result.stderr


CRASHER = textwrap.dedent(
    """
    import os, sys
    from sqlalchemy import update
    from keyswap.issuer.db import make_engine, make_session_factory
    from keyswap.issuer.models import KeyState, SigningKey

    sessions = make_session_factory(make_engine(sys.argv[1]))
    session = sessions()
    session.execute(
        update(SigningKey).where(SigningKey.state == KeyState.ACTIVE).values(state=KeyState.RETIRED)
    )
    session.flush()
    os._exit(1)  # the process dies between retiring the old key and promoting the new one
    """
)


def test_crash_during_rotation_leaves_exactly_one_signer(databases, kek, tmp_path, _app):
    url = databases.create()
    app = _app(url, kek, tmp_path, key_prepublish=0)
    prepare(app)
    keyswap = app.extensions["keyswap"]

    from keyswap.issuer.rotation import rotate_now

    schedule = keyswap.settings.rotation_schedule
    with transaction(keyswap.sessions) as session:
        rotate_now(
            session,
            keyswap.sealer,
            alg="ES256",
            schedule=schedule,
            immediate=True,
            actor="t",
            now=keyswap.clock(),
        )
    keyswap.dispose()
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHER, url], capture_output=True, text=True, timeout=60
    )
    assert crashed.returncode == 1, crashed.stderr
    with transaction(keyswap.sessions) as session:
        states = session.scalars(select(SigningKey.state)).all()
    assert sorted(states) == sorted([KeyState.ACTIVE, KeyState.NEXT])
    # The rotation then completes normally, still with one signer.
    from keyswap.issuer.db import utcnow
    from keyswap.issuer.rotation import advance

    assert advance(keyswap.sessions, keyswap.sealer, schedule, now=utcnow() + schedule.settle)
    with transaction(keyswap.sessions) as session:
        states = session.scalars(select(SigningKey.state)).all()
    assert sorted(states) == sorted([KeyState.ACTIVE, KeyState.RETIRED])
