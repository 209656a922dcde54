"""The key ring only reads, single-flight, with backoff: requests never wait on the database."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from keyswap.issuer.db import (
    make_engine,
    make_session_factory,
    transaction,
    upgrade_schema,
    utcnow,
)
from keyswap.issuer.keyring import KeyRing, NoSigningKey, ensure_signing_key
from keyswap.issuer.maintenance import Maintenance
from keyswap.jwks import Schedule, Sealer

from ...e2e.test_key_rotation import Clock

KEK = bytes(range(32))


class Sessions:
    """A session factory that counts calls, and can fail or hold a caller like a slow database."""

    def __init__(self, real) -> None:
        self.real = real
        self.calls = 0
        self.down = False
        self.hold: threading.Event | None = None
        self.entered = threading.Event()

    def __call__(self):
        self.calls += 1
        if self.hold is not None:
            self.entered.set()
            assert self.hold.wait(timeout=30)
        if self.down:
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        return self.real()


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    upgrade_schema(engine)
    real = make_session_factory(engine)
    with transaction(real) as session:
        kid = ensure_signing_key(session, Sealer(KEK), now=utcnow()).kid
    yield Sessions(real), kid
    engine.dispose()


def _ring(sessions, clock, interval=10.0) -> KeyRing:
    return KeyRing(
        sessions, Sealer(KEK), max_token_ttl=3600, refresh_interval=interval, clock=clock
    )


def test_failed_refresh_is_retried_once_per_interval_not_per_request(store):
    sessions, kid = store
    clock = Clock()
    ring = _ring(sessions, clock)
    assert ring.signer().kid == kid
    sessions.down = True
    clock.advance(11)
    for _ in range(50):
        assert ring.signer().kid == kid  # the cached key keeps signing
        assert kid in ring.published().kids
    assert sessions.calls == 2
    clock.advance(11)
    for _ in range(50):
        ring.signer()
    assert sessions.calls == 3


def test_a_stale_ring_is_read_by_one_thread_while_the_others_keep_the_cached_keys(store):
    sessions, kid = store
    clock = Clock()
    ring = _ring(sessions, clock)
    ring.signer()
    clock.advance(11)
    sessions.hold = threading.Event()
    reader = threading.Thread(target=ring.published)
    reader.start()
    assert sessions.entered.wait(timeout=30)  # the reader is inside the database call
    # Meanwhile other requests neither wait nor start a second read.
    assert ring.signer().kid == kid
    assert kid in ring.published().kids
    assert sessions.calls == 2
    sessions.hold.set()
    reader.join(timeout=30)
    assert not reader.is_alive()


def test_with_a_maintenance_loop_requests_never_read_the_database(store):
    sessions, kid = store
    clock = Clock()
    ring = _ring(sessions, clock)
    ring.refresh_in_background()
    with pytest.raises(NoSigningKey):
        ring.signer()  # not loaded yet: a 503, not a database read on the request
    assert sessions.calls == 0
    ring.reload()
    clock.advance(3600)
    assert ring.signer().kid == kid
    assert ring.verify("not.a.token", issuer="x", typ="at+jwt") is None
    assert sessions.calls == 1


def test_a_ring_that_never_loaded_refuses_without_retrying_during_the_backoff(store):
    sessions, _kid = store
    clock = Clock()
    ring = _ring(sessions, clock)
    sessions.down = True
    with pytest.raises(OperationalError):
        ring.signer()
    for _ in range(20):
        with pytest.raises(NoSigningKey):
            ring.signer()
    assert sessions.calls == 1


def test_maintenance_start_loads_the_ring_and_stop_ends_the_loop(store):
    sessions, kid = store
    clock = Clock()
    ring = _ring(sessions, clock)
    schedule = Schedule(period=None, prepublish=timedelta(0))
    loop = Maintenance(
        sessions.real, Sealer(KEK), ring, schedule, alg="ES256", interval=3600, clock=clock
    )
    loop.start()
    try:
        assert ring.signer().kid == kid
    finally:
        loop.stop()


def test_maintenance_pass_survives_a_database_outage(store):
    sessions, kid = store
    clock = Clock()
    ring = _ring(sessions, clock)
    schedule = Schedule(period=timedelta(days=1), prepublish=timedelta(0))
    loop = Maintenance(sessions, Sealer(KEK), ring, schedule, alg="ES256", interval=10, clock=clock)
    assert loop.run_once()
    sessions.down = True
    assert not loop.run_once()
    assert ring.signer().kid == kid
