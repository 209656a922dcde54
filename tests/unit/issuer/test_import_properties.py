"""Properties of the legacy CSV import (``keyswap.issuer.legacy.importing``).

``parse_csv`` never raises on any text: it reports bad rows by line number. A file with
any bad row imports nothing. A well-formed file imports exactly its rows. The import runs
in a transaction on a real database (SQLite or the test PostgreSQL) that is rolled back
after each example, as ``keyswap legacy import`` does when it may not commit.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from keyswap.issuer.db import (
    make_engine,
    make_session_factory,
    transaction,
    upgrade_schema,
    utcnow,
)
from keyswap.issuer.hashing import SecretHasher
from keyswap.issuer.legacy.importing import COLUMNS, ImportReport, import_legacy_keys, parse_csv
from keyswap.issuer.legacy.keys import hash_api_key
from keyswap.issuer.lifecycle import add_user
from keyswap.issuer.models import LegacyKey, UserKind

from ...conftest import DatabaseFactory

BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OWNERS = ("alice", "bob")
OPTIONAL = ("scopes", "audiences", "expires_at", "sunset_at", "tenant")
HASHER = SecretHasher(secrets.token_bytes(32))

KEY_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
)
SCOPE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz:._-", min_size=1, max_size=12)
TIME = st.sampled_from(["", "2030-01-31", "2030-01-31T12:00:00", "2031-06-30T12:00:00+02:00"])


@dataclass(frozen=True)
class Table:
    """A generated CSV file: its text, the keys in it, and the lines of its bad rows."""

    text: str
    keys: list[str]
    bad_lines: list[int]


@pytest.fixture(scope="module")
def sessions(databases: DatabaseFactory) -> Iterator[sessionmaker[Session]]:
    """A migrated database holding the owners alice and bob (tenant acme)."""
    engine = make_engine(databases.create())
    upgrade_schema(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        for name in OWNERS:
            add_user(session, name, tenant="acme", kind=UserKind.SERVICE_ACCOUNT, actor="test")
    yield factory
    engine.dispose()


def _import(factory: sessionmaker[Session], text: str) -> tuple[ImportReport, int]:
    """Import ``text``; return the report and how many keys the transaction holds, then undo."""
    with factory() as session:
        report = import_legacy_keys(
            session,
            HASHER,
            parse_csv(io.StringIO(text, newline="")),
            allow_weak_keys=True,  # the generated keys are short; weakness is tested elsewhere
            now=utcnow(),
            actor="test",
        )
        stored = session.scalar(select(func.count()).select_from(LegacyKey)) or 0
        session.rollback()
    return report, stored


@st.composite
def good_rows(draw: st.DrawFn) -> tuple[list[str], list[dict[str, str]]]:
    """Draw a header (columns in any order) and well-formed rows with distinct keys."""
    optional = draw(st.lists(st.sampled_from(OPTIONAL), unique=True))
    header = draw(st.permutations(["api_key", "owner", *optional]))
    keys = draw(st.lists(KEY_TEXT, unique=True, max_size=8))
    rows = []
    for key in keys:
        values = {
            "api_key": key,
            "owner": draw(st.sampled_from(OWNERS)),
            "scopes": " ".join(draw(st.lists(SCOPE, max_size=3))),
            "audiences": draw(st.sampled_from(["", "https://orders.example", "urn:x:y"])),
            "expires_at": draw(TIME),
            "sunset_at": draw(TIME),
            "tenant": draw(st.sampled_from(["", "acme"])),
        }
        rows.append({name: values[name] for name in header})
    return list(header), rows


def _write(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


@st.composite
def good_tables(draw: st.DrawFn) -> Table:
    """Draw a well-formed file."""
    header, rows = draw(good_rows())
    text = _write(header, [[row[name] for name in header] for row in rows])
    # The keys are stripped and hold no whitespace, so each stays as drawn.
    return Table(text, [row["api_key"] for row in rows], [])


@st.composite
def bad_tables(draw: st.DrawFn) -> Table:
    """Draw a well-formed file, then put at least one bad row anywhere in it."""
    header, rows = draw(good_rows())
    if "expires_at" not in header:
        header.append("expires_at")
        for row in rows:
            row["expires_at"] = ""
    records = [[row[name] for name in header] for row in rows]
    width = len(header)
    key, owner, expires = (header.index(n) for n in ("api_key", "owner", "expires_at"))

    def bad_record(kind: str) -> list[str]:
        record = [""] * width
        record[key], record[owner] = secrets.token_hex(8), "alice"
        if kind == "fields":
            return [*record, "extra"]
        if kind == "owner":
            record[owner] = ""
        elif kind == "key":
            record[key] = ""
        else:
            record[expires] = "next tuesday"
        return record

    bad = draw(st.lists(st.sampled_from(["fields", "owner", "key", "time"]), min_size=1))
    marked: list[tuple[list[str], bool]] = [(r, False) for r in records]
    for kind in bad:
        marked.insert(draw(st.integers(0, len(marked))), (bad_record(kind), True))
    # Header on line 1, then one record per line (no value holds a newline).
    bad_lines = [index + 2 for index, (_, is_bad) in enumerate(marked) if is_bad]
    return Table(_write(header, [r for r, _ in marked]), [], bad_lines)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_parse_never_raises_and_reports_lines_inside_the_file(text):
    parsed = parse_csv(io.StringIO(text, newline=""))
    lines = max(1, len(io.StringIO(text, newline="").readlines()))
    for error in parsed.errors:
        assert 1 <= error.line <= lines, (error, lines)
        assert error.reason
    for row in parsed.rows:
        assert 2 <= row.line <= lines
    assert len({row.line for row in parsed.rows} | {e.line for e in parsed.errors}) == len(
        parsed.rows
    ) + len(parsed.errors)


# Any text, with edge cases drawn often: empty, a real owner, NUL, quotes, line breaks.
ANY_VALUE = st.text(max_size=12) | st.sampled_from(
    ["", "alice", "k\x00y", "al\x00ice", '"', "\r\n", "2030-01-31", "https://x.example"]
)


@st.composite
def any_files(draw: st.DrawFn) -> str:
    """Draw a valid header, then rows of any text: raw lines, or records of its width.

    Records carry any value (NUL, quotes, newlines, ...) into the owner lookup and the
    insert, not only into the parser.
    """
    header = draw(st.sampled_from([["api_key", "owner"], list(COLUMNS)]))
    raw = st.text(max_size=200)
    records = st.lists(
        st.lists(ANY_VALUE, min_size=len(header), max_size=len(header)), max_size=5
    ).map(lambda rows: _write(header, rows))
    return draw(raw.map(lambda body: ",".join(header) + "\n" + body) | records)


@BOUNDED
@given(text=any_files())
def test_import_never_raises_on_any_rows_under_a_valid_header(sessions, text):
    report, stored = _import(sessions, text)
    assert stored == (report.counts["imported"] if report.ok else 0)


@BOUNDED
@given(table=bad_tables())
def test_file_with_any_bad_row_imports_nothing_and_names_each_bad_line(sessions, table):
    report, stored = _import(sessions, table.text)
    assert not report.ok
    assert stored == 0
    assert [r.line for r in report.results if r.outcome == "error"] == table.bad_lines


@BOUNDED
@given(table=good_tables())
def test_well_formed_file_imports_exactly_its_rows(sessions, table):
    with sessions() as session:
        report = import_legacy_keys(
            session,
            HASHER,
            parse_csv(io.StringIO(table.text, newline="")),
            allow_weak_keys=True,
            now=utcnow(),
            actor="test",
        )
        stored = set(session.scalars(select(LegacyKey.key_hash)))
        session.rollback()
    assert report.ok
    assert report.counts == {
        "imported": len(table.keys),
        "orphaned": 0,
        "duplicate": 0,
        "error": 0,
    }
    assert stored == {hash_api_key(HASHER, key) for key in table.keys}


@settings(max_examples=100, deadline=None)
@given(good_tables(), st.data())
def test_unreadable_csv_line_is_reported_at_its_own_line(table, data):
    lines = table.text.splitlines(keepends=True)
    # A carriage return inside an unquoted field is a csv.Error on exactly that line.
    position = data.draw(st.integers(1, len(lines)))
    lines.insert(position, "a\rb,alice\n")
    parsed = parse_csv(io.StringIO("".join(lines)))
    assert [e.line for e in parsed.errors] == [position + 1]
