"""Unit tests of the legacy key pieces that need no database: CSV parsing, hashing, status,
deprecation headers, and the usage accumulator's coalescing."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime

import pytest

from keyswap.issuer.grants.token_exchange import MIGRATION_GUIDE_URL, deprecation_headers
from keyswap.issuer.hashing import SecretHasher
from keyswap.issuer.legacy.importing import ImportRow, RowError, parse_csv
from keyswap.issuer.legacy.keys import LegacyRecord, hash_api_key, hash_digest
from keyswap.issuer.legacy.report import KeyStatus, key_status
from keyswap.issuer.legacy.usage import UsageAccumulator
from keyswap.issuer.models import TenantStatus, UserStatus
from keyswap.issuer.policy import OwnerStatus

DIGEST = hashlib.sha256(b"sk_one").hexdigest()


def _parse(text: str):
    return parse_csv(io.StringIO(text))


def test_parse_reads_every_column_and_hashes_clear_keys_at_once():
    parsed = _parse(
        "api_key,api_key_sha256,owner,scopes,audiences,expires_at,sunset_at,tenant\n"
        "sk_one,,alice,a:read  b:write a:read,https://x.example,2027-01-31,"
        "2027-06-30T12:00:00+02:00,acme\n"
        f",{DIGEST.upper()},bob,,,,,\n"
    )
    assert parsed.errors == []
    assert parsed.rows == [
        ImportRow(
            line=2,
            digest=DIGEST,
            owner="alice",
            weak=True,  # "sk_one" is far too short; the digest on line 3 cannot be judged
            scopes=("a:read", "b:write"),
            audiences=("https://x.example",),
            expires_at=datetime(2027, 1, 31, tzinfo=UTC),
            sunset_at=datetime(2027, 6, 30, 10, tzinfo=UTC),
            tenant="acme",
        ),
        ImportRow(line=3, digest=DIGEST, owner="bob"),
    ]
    assert "sk_one" not in repr(parsed)


def test_parse_accepts_a_byte_order_mark_header_case_and_blank_lines():
    parsed = _parse("\ufeffOwner, API_KEY\n\nalice,sk_one\n\n")
    assert parsed.errors == []
    assert [(r.line, r.owner, r.digest) for r in parsed.rows] == [(3, "alice", DIGEST)]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the file is empty; expected a header row"),
        (
            "owner,api_key,colour\n",
            "unknown column(s) 'colour'; expected api_key, api_key_sha256, "
            "owner, scopes, audiences, expires_at, sunset_at, tenant",
        ),  # fmt: skip
        ("api_key,scopes\n", "the header has no owner column"),
        ("owner,scopes\n", "the header has neither an api_key nor an api_key_sha256 column"),
        ("owner,owner,api_key\n", "column(s) owner appear more than once"),
    ],
    ids=["empty", "unknown", "no-owner", "no-key", "repeated"],
)
def test_bad_header_is_one_error_at_line_1(text, reason):
    parsed = _parse(text)
    assert parsed.rows == []
    assert parsed.errors == [RowError(1, reason)]


def test_every_bad_row_is_reported_with_all_its_problems_and_no_key():
    parsed = _parse(
        "api_key,api_key_sha256,owner,scopes,audiences,sunset_at\n"
        "sk_secret_a,,,,,\n"
        ",abc,bob,,,\n"
        'sk_secret_b,,bob,bad"scope,/relative,soon\n'
        ",,bob,,,\n"
        "sk_secret_c,,bob\n"
        "sk_ok,,bob,,,\n"
    )
    assert [r.line for r in parsed.rows] == [7]
    assert parsed.errors == [
        RowError(2, "owner is empty"),
        RowError(3, "api_key_sha256 is not 64 hexadecimal characters"),
        RowError(
            4,
            "scope 'bad\"scope' has characters RFC 6749 §3.3 does not allow; "
            "audience '/relative' must be an absolute URI without fragment; "
            "sunset_at is not an ISO 8601 time: 'soon'",
        ),
        RowError(5, "no key: api_key or api_key_sha256 is empty"),
        RowError(6, "has 3 fields; the header has 6"),
    ]
    assert "sk_secret" not in repr(parsed.errors)


def test_clear_key_and_its_sha256_hash_to_the_same_stored_value():
    hasher = SecretHasher(b"k" * 32)
    assert hash_api_key(hasher, "sk_one") == hash_digest(hasher, DIGEST.upper())
    assert hash_api_key(hasher, "sk_one") != hash_api_key(SecretHasher(b"j" * 32), "sk_one")
    assert hash_api_key(hasher, "sk_one") != DIGEST


NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
PAST, FUTURE = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("revoked", "expires", "sunset", "status"),
    [
        (None, None, None, KeyStatus.ACTIVE),
        (None, FUTURE, FUTURE, KeyStatus.ACTIVE),
        (PAST, PAST, PAST, KeyStatus.REVOKED),
        (None, PAST, PAST, KeyStatus.EXPIRED),
        (None, None, PAST, KeyStatus.RETIRED),
        (None, None, NOW, KeyStatus.RETIRED),
    ],
)
def test_key_status_follows_the_exchange_order(revoked, expires, sunset, status):
    assert key_status(NOW, revoked_at=revoked, expires_at=expires, sunset_at=sunset) is status


def _record(sunset_at):
    owner = OwnerStatus("svc_1", UserStatus.ACTIVE, "acme", TenantStatus.ACTIVE)
    return LegacyRecord("lk_1", (), (), None, sunset_at, None, None, PAST, owner)


def test_deprecation_headers_only_for_keys_with_a_sunset_date():
    assert deprecation_headers(_record(None)) == []
    assert dict(deprecation_headers(_record(FUTURE))) == {
        "Deprecation": f"@{int(PAST.timestamp())}",
        "Sunset": "Fri, 01 Jan 2027 00:00:00 GMT",
        "Link": f'<{MIGRATION_GUIDE_URL}>; rel="deprecation"; type="text/html"',
    }


class _NoDatabase:
    def __call__(self):
        raise AssertionError("recording a use must not touch the database")


def test_usage_is_accumulated_in_memory_until_a_flush():
    usage = UsageAccumulator(_NoDatabase(), interval=3600)  # type: ignore[arg-type]
    try:
        for _ in range(1000):
            usage.record("lk_a", PAST)
        usage.record("lk_b", NOW)
        usage.record("lk_b", PAST)
        assert usage.pending() == {"lk_a": 1000, "lk_b": 2}
        with pytest.raises(AssertionError):
            usage.flush()
        # A failed flush keeps the counts for the next one.
        assert usage.pending() == {"lk_a": 1000, "lk_b": 2}
    finally:
        usage._pending.clear()
        usage.close()


def test_refusals_are_accumulated_per_key_and_reason_until_a_flush():
    usage = UsageAccumulator(_NoDatabase(), interval=3600)  # type: ignore[arg-type]
    try:
        for _ in range(500):
            usage.record_refusal("lk_a", "api_key_retired", PAST)
        usage.record_refusal("lk_a", "owner_deactivated", NOW)
        expected = {("lk_a", "api_key_retired"): 500, ("lk_a", "owner_deactivated"): 1}
        assert usage.pending_refusals() == expected
        assert usage.pending() == {}
        with pytest.raises(AssertionError):
            usage.flush()
        assert usage.pending_refusals() == expected
    finally:
        usage._refused.clear()
        usage.close()
