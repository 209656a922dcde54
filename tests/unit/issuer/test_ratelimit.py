"""The client id a request claims, read unverified for limits and log lines, never raising."""

from __future__ import annotations

import base64
import json

import pytest
from flask import Flask

from keyswap.issuer.ratelimit import claimed_client_id


def _b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def _assertion(payload: bytes) -> str:
    return ".".join((_b64(b'{"alg":"ES256"}'), _b64(payload), _b64(b"sig")))


def _claimed(**request: object) -> str | None:
    with Flask(__name__).test_request_context("/oauth/token", method="POST", **request):
        from flask import request as current

        return claimed_client_id(current)


def test_the_basic_user_is_the_claimed_id():
    header = "Basic " + base64.b64encode(b"ks_a%3Ab:secret").decode()
    assert _claimed(headers={"Authorization": header}) == "ks_a:b"


def test_the_client_id_field_or_the_assertion_subject_is_the_claimed_id():
    assert _claimed(data={"client_id": "ks_post"}) == "ks_post"
    sub = _assertion(json.dumps({"sub": "ks_jwt", "iss": "ks_jwt"}).encode())
    assert _claimed(data={"client_assertion": sub}) == "ks_jwt"


@pytest.mark.parametrize(
    "assertion",
    [
        "not-a-jwt",
        _assertion(b"[" * 100_000),  # too long to read
        _assertion(b"[" * 3000 + b"]" * 3000),  # deeply nested, within the length cap
        _assertion(b'{"sub": 7}'),
        _assertion(b"\xff\xfe"),
    ],
    ids=["garbage", "huge", "nested", "sub-not-a-string", "not-utf8"],
)
def test_a_malformed_assertion_claims_nothing_and_never_raises(assertion):
    assert _claimed(data={"client_assertion": assertion}) is None


def test_a_long_claimed_id_is_cut_for_logs():
    assert _claimed(data={"client_id": "x" * 5000}) == "x" * 200


def test_the_memory_storage_sweeps_expired_counters_without_a_timer_per_write(monkeypatch):
    import threading

    from keyswap.issuer.ratelimit import SweptMemoryStorage

    storage = SweptMemoryStorage()
    storage.timer.join()  # MemoryStorage's own first timer has run: a write would start another
    started = []
    monkeypatch.setattr(threading, "Timer", lambda *a, **k: started.append(a))
    for n in range(50):
        storage.incr(f"live-{n}", expiry=3600)
    storage.incr("spent", expiry=0)  # expired as soon as it is written
    assert started == []  # MemoryStorage would have started a sweeping timer here
    storage.sweep()
    assert storage.get("live-0") == 1
    assert "spent" not in storage.storage and "spent" not in storage.expirations


def test_the_sweeping_thread_ends_with_its_storage(monkeypatch):
    import gc
    import threading

    from keyswap.issuer.ratelimit import SweptMemoryStorage

    monkeypatch.setattr(SweptMemoryStorage, "SWEEP_SECONDS", 0.01)
    before = set(threading.enumerate())
    storage = SweptMemoryStorage()
    (sweeper,) = [t for t in threading.enumerate() if t not in before and t.name.endswith("sweep")]
    storage.timer.join()  # its first MemoryStorage timer holds the storage until it has run
    del storage
    gc.collect()
    sweeper.join(timeout=5)
    assert not sweeper.is_alive()
