"""``keyswap legacy import | report | revoke`` through the CLI runner, parsing ``--json``."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select, update

from keyswap.issuer.cli import cli
from keyswap.issuer.db import transaction, utcnow
from keyswap.issuer.errors import format_time
from keyswap.issuer.grants.token_exchange import API_KEY_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from keyswap.issuer.legacy.usage import usage_for
from keyswap.issuer.lifecycle import add_user
from keyswap.issuer.models import AuditEvent, LegacyKey, User, UserKind

CLEAR_KEY = "sk_live_4f1c2a9b7e3d"
HASHED_KEY = "ak_legacy_77aa"
HASHED_DIGEST = hashlib.sha256(HASHED_KEY.encode()).hexdigest()


@pytest.fixture(autouse=True)
def _flushed_usage(live_server):
    """Leave nothing pending in the shared server's usage counts (see test_token_exchange)."""
    yield
    usage_for(live_server.app).flush()


@pytest.fixture
def owners(live_issuer):
    """Create alice (tenant acme, with a client: migrated) and bob (tenant acme)."""
    live_issuer.create_client(user="alice", tenant="acme")
    with transaction(live_issuer.keyswap.sessions) as session:
        add_user(session, "bob", tenant="acme", kind=UserKind.SERVICE_ACCOUNT, actor="test")


def _csv(tmp_path, *lines, name="keys.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _run(runner, *args):
    result = runner.invoke(cli, ["legacy", *args, "--json"])
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def _count(live_issuer, model):
    with transaction(live_issuer.keyswap.sessions) as session:
        return session.scalar(select(func.count()).select_from(model))


def _exchange(live_issuer, api_key):
    return requests.post(
        live_issuer.token_url,
        data={
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token_type": API_KEY_TOKEN_TYPE,
            "subject_token": api_key,
        },
        timeout=10,
    )


def test_import_clear_and_sha256_keys_reports_orphans(live_issuer, owners, runner, tmp_path):
    path = _csv(
        tmp_path,
        "api_key,api_key_sha256,owner,scopes,audiences,expires_at,sunset_at,tenant",
        f"{CLEAR_KEY},,alice,orders:read,https://orders.example,,2099-01-01,acme",
        f",{HASHED_DIGEST},bob,reports:read,,2099-06-30T12:00:00+02:00,,",
        "sk_live_orphan_1,,carol-left-2019,,,,,",
    )
    result, report = _run(runner, "import", path)
    assert result.exit_code == 0, result.output
    assert {k: report[k] for k in ("imported", "orphaned", "duplicate", "error")} == {
        "imported": 2,
        "orphaned": 1,
        "duplicate": 0,
        "error": 0,
    }
    assert [(r["line"], r["outcome"], r["owner"]) for r in report["rows"]] == [
        (2, "imported", "alice"),
        (3, "imported", "bob"),
        (4, "orphaned", "carol-left-2019"),
    ]
    assert CLEAR_KEY not in result.output and "sk_live_orphan_1" not in result.output
    assert _exchange(live_issuer, CLEAR_KEY).status_code == 200
    assert _exchange(live_issuer, HASHED_KEY).status_code == 200
    assert _exchange(live_issuer, "sk_live_orphan_1").json()["error_description"] == (
        "unknown API key"
    )
    with transaction(live_issuer.keyswap.sessions) as session:
        bob_key = session.get(LegacyKey, report["rows"][1]["key_id"])
        assert bob_key is not None and bob_key.expires_at is not None
        assert bob_key.expires_at.isoformat() == "2099-06-30T10:00:00+00:00"
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "legacy_key.imported")
        ).one()
    assert event.details == {
        "imported": 2,
        "orphaned": 1,
        "duplicate": 0,
        "owners_created": 0,
    }
    assert event.subject == "legacy_keys:keys.csv"


def test_a_bad_row_changes_nothing_and_every_bad_row_is_reported(
    live_issuer, owners, runner, tmp_path
):
    path = _csv(
        tmp_path,
        "api_key,api_key_sha256,owner,expires_at,tenant",
        "sk_good_1,,alice,,",
        "sk_bad_both," + HASHED_DIGEST + ",alice,,",
        ",not-hex,bob,,",
        "sk_bad_time,,bob,next tuesday,",
        "sk_good_2,,newcomer,,",
        "sk_wrong_tenant,,bob,,globex",
        ",,,,",
        "sk_bad_fields,,bob",
    )
    before = _count(live_issuer, User)
    result, report = _run(runner, "import", path, "--create-missing-owners")
    assert result.exit_code == 1
    assert "5 bad row(s); nothing was imported" in result.stderr
    errors = {r["line"]: r["reason"] for r in report["rows"] if r["outcome"] == "error"}
    assert errors == {
        3: "both api_key and api_key_sha256 are given; give one",
        4: "api_key_sha256 is not 64 hexadecimal characters",
        5: "expires_at is not an ISO 8601 time: 'next tuesday'",
        7: "tenant 'globex' is not the owner's tenant 'acme'",
        9: "has 3 fields; the header has 5",
    }
    assert report["error"] == 5 and report["imported"] == 2
    assert _count(live_issuer, LegacyKey) == 0
    assert _count(live_issuer, User) == before  # the owner it would have created is not there
    assert "sk_bad" not in result.output


def test_dry_run_reports_the_same_and_changes_nothing(live_issuer, owners, runner, tmp_path):
    path = _csv(tmp_path, "api_key,owner,tenant", "sk_1,alice,", "sk_2,dave,beta")
    dry, dry_report = _run(runner, "import", path, "--dry-run", "--create-missing-owners")
    assert dry.exit_code == 0, dry.output
    assert dry_report["dry_run"] is True
    assert (dry_report["imported"], dry_report["owners_created"]) == (2, 1)
    assert _count(live_issuer, LegacyKey) == 0
    with transaction(live_issuer.keyswap.sessions) as session:
        assert session.scalar(select(User).where(User.name == "dave")) is None
    real, real_report = _run(runner, "import", path, "--create-missing-owners")
    assert real.exit_code == 0
    assert [r["outcome"] for r in real_report["rows"]] == ["imported", "imported"]
    assert real_report["rows"][1]["owner_created"] is True
    with transaction(live_issuer.keyswap.sessions) as session:
        dave = session.scalar(select(User).where(User.name == "dave"))
        assert dave is not None
        assert (dave.kind, dave.tenant.name) == (UserKind.SERVICE_ACCOUNT, "beta")


def test_duplicates_in_the_file_and_in_the_database_are_reported(
    live_issuer, owners, runner, tmp_path
):
    first = _csv(tmp_path, "api_key,owner", "sk_dup,alice", name="first.csv")
    assert _run(runner, "import", first)[0].exit_code == 0
    second = _csv(
        tmp_path,
        "api_key_sha256,owner",
        f"{hashlib.sha256(b'sk_dup').hexdigest()},alice",
        f"{HASHED_DIGEST},bob",
        f"{HASHED_DIGEST.upper()},bob",
        name="second.csv",
    )
    result, report = _run(runner, "import", second)
    assert result.exit_code == 0, result.output
    assert [(r["line"], r["outcome"], r["reason"]) for r in report["rows"]] == [
        (2, "duplicate", "already imported"),
        (3, "imported", None),
        (4, "duplicate", "the same key is on line 3"),
    ]
    assert _count(live_issuer, LegacyKey) == 2


def test_the_same_key_for_another_owner_is_an_error(live_issuer, owners, runner, tmp_path):
    _run(runner, "import", _csv(tmp_path, "api_key,owner", "sk_shared,alice", name="a.csv"))
    result, report = _run(
        runner, "import", _csv(tmp_path, "api_key,owner", "sk_shared,bob", name="b.csv")
    )
    assert result.exit_code == 1
    assert report["rows"][0]["reason"].endswith("for another owner")


def test_bad_header_is_reported_at_line_1(live_issuer, runner, tmp_path):
    result, report = _run(runner, "import", _csv(tmp_path, "key,owner", "sk_1,alice"))
    assert result.exit_code == 1
    assert report["rows"][0]["line"] == 1
    assert report["rows"][0]["reason"].startswith("unknown column(s) 'key'")


def test_text_output_is_a_summary_and_a_table(live_issuer, owners, runner, tmp_path):
    path = _csv(tmp_path, "api_key,owner", "sk_text,alice", "sk_gone,nobody")
    result = runner.invoke(cli, ["legacy", "import", path])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["dry_run", "False"]
    assert lines[7].split() == ["line", "outcome", "owner", "key_id", "reason"]
    assert lines[9].split() == ["3", "orphaned", "nobody", "-", "owner", "does", "not", "exist"]


def test_report_lists_status_usage_sunset_and_migration(live_issuer, owners, runner, tmp_path):
    path = _csv(
        tmp_path,
        "api_key,owner,sunset_at",
        "sk_alice,alice,2099-01-01",
        "sk_bob_old,bob,2020-01-01",
        "sk_bob_new,bob,",
    )
    rows = _run(runner, "import", path)[1]["rows"]
    alice_key, old_key, new_key = (r["key_id"] for r in rows)
    with transaction(live_issuer.keyswap.sessions) as session:
        session.execute(
            update(LegacyKey)
            .where(LegacyKey.id == new_key)
            .values(use_count=40, last_used_at=utcnow() - timedelta(days=10))
        )
    assert _exchange(live_issuer, "sk_alice").status_code == 200
    usage_for(live_issuer.app).flush()
    live_issuer.set_user_status("bob", "deleted")
    result, report = _run(runner, "report")
    assert result.exit_code == 0, result.output
    by_id = {k["key_id"]: k for k in report["keys"]}
    assert by_id[alice_key] | {"last_used_at": None} == {
        "key_id": alice_key,
        "owner": "alice",
        "tenant": "acme",
        "status": "active",
        "owner_status": "active",
        "tenant_status": "active",
        "last_used_at": None,
        "uses": 1,
        "sunset_at": "2099-01-01T00:00:00Z",
        "migrated": True,
    }
    assert by_id[alice_key]["last_used_at"] is not None
    assert (by_id[old_key]["status"], by_id[old_key]["owner_status"]) == ("retired", "deleted")
    assert (by_id[new_key]["uses"], by_id[new_key]["migrated"]) == (40, False)
    assert report["totals"] == {
        "keys": 3,
        "active_7d": 1,
        "active_30d": 2,
        "orphaned": 2,
        "past_sunset": 1,
        "migrated": 1,
    }
    text = runner.invoke(cli, ["legacy", "report"]).output
    assert "key_id" in text and alice_key in text


def test_revoke_refuses_the_key_and_is_audited(live_issuer, owners, runner, tmp_path):
    key_id = _run(runner, "import", _csv(tmp_path, "api_key,owner", "sk_rev,alice"))[1]["rows"][0][
        "key_id"
    ]
    result, revoked = _run(runner, "revoke", key_id, "--reason", "leaked in a log")
    assert result.exit_code == 0, result.output
    assert revoked["key_id"] == key_id
    assert revoked["revoked_at"] == revoked["tokens_revoked_before"]
    refused = _exchange(live_issuer, "sk_rev").json()
    at = datetime.fromisoformat(revoked["revoked_at"])
    assert refused["error_description"] == f"the API key was revoked at {format_time(at)}"
    with transaction(live_issuer.keyswap.sessions) as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "legacy_key.revoked")
        ).one()
    assert (event.subject, event.reason) == (f"legacy_key:{key_id}", "leaked in a log")
    again = _run(runner, "revoke", key_id)[1]
    assert again["revoked_at"] == revoked["revoked_at"]


def test_revoke_unknown_key_exits_1(live_issuer, runner):
    result = runner.invoke(cli, ["legacy", "revoke", "lk_nope", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stderr) == {"error": "no legacy key 'lk_nope'"}


def test_sunset_sets_headers_then_retires_the_key_and_can_be_cleared(
    live_issuer, owners, runner, tmp_path
):
    key_id = _run(runner, "import", _csv(tmp_path, "api_key,owner", "sk_sun,alice"))[1]["rows"][0][
        "key_id"
    ]
    assert "Sunset" not in _exchange(live_issuer, "sk_sun").headers

    result, answer = _run(runner, "sunset", key_id, "2099-12-31")
    assert result.exit_code == 0, result.output
    assert answer["sunset_at"].startswith("2099-12-31T00:00:00")
    assert _exchange(live_issuer, "sk_sun").headers["Sunset"] == "Thu, 31 Dec 2099 00:00:00 GMT"

    past = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%d")
    assert _run(runner, "sunset", key_id, past, "--reason", "moved to ks_")[0].exit_code == 0
    refused = _exchange(live_issuer, "sk_sun")
    assert refused.status_code == 400
    assert refused.json()["error_description"] == (
        f"this API key was retired on {past}; use client credentials"
    )

    assert _run(runner, "sunset", key_id, "--clear")[1]["sunset_at"] is None
    assert _exchange(live_issuer, "sk_sun").status_code == 200
    with transaction(live_issuer.keyswap.sessions) as session:
        reasons = session.scalars(
            select(AuditEvent.reason)
            .where(AuditEvent.action == "legacy_key.sunset_set")
            .order_by(AuditEvent.id)
        ).all()
    assert len(reasons) == 3
    assert reasons[1] is not None and reasons[1].endswith(": moved to ks_")


def test_sunset_needs_a_date_or_clear_and_a_valid_date(live_issuer, owners, runner, tmp_path):
    key_id = _run(runner, "import", _csv(tmp_path, "api_key,owner", "sk_sun2,alice"))[1]["rows"][0][
        "key_id"
    ]
    assert runner.invoke(cli, ["legacy", "sunset", key_id]).exit_code == 2
    assert runner.invoke(cli, ["legacy", "sunset", key_id, "2099-01-01", "--clear"]).exit_code == 2
    bad = runner.invoke(cli, ["legacy", "sunset", key_id, "next tuesday"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.output
    assert runner.invoke(cli, ["legacy", "sunset", "lk_nope", "2099-01-01"]).exit_code == 1
