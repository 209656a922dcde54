"""Importing a legacy key table from CSV: parse, validate, then apply in one transaction.

The file has a header row naming its columns: ``api_key`` (clear) or ``api_key_sha256``
(hex digest), ``owner``, and optional ``scopes`` and ``audiences`` (space separated),
``expires_at`` and ``sunset_at`` (ISO 8601; no offset means UTC) and ``tenant``.
``parse_csv`` only reads and checks values; ``import_legacy_keys`` resolves owners and
duplicates against the database and inserts. A key is never kept, printed or logged in
clear: parsing turns it into its SHA-256 at once, and no message quotes a key.

A clear key too short to be secret is refused unless the caller allows weak keys: see
``max_key_bits``. A key given as its SHA-256 cannot be judged, and the report says so.
"""

from __future__ import annotations

import csv
import enum
import math
import string
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from .. import events
from ..hashing import SecretHasher
from ..lifecycle import DEFAULT_TENANT, InvalidValue, add_user
from ..models import LegacyKey, User, UserKind
from ..rules import check_audiences, check_scopes
from ..storage import Conflict
from .keys import LEGACY_KEY_IMPORTED, hash_digest, is_sha256_hex, new_key_id, sha256_hex

KEY_COLUMNS = ("api_key", "api_key_sha256")
OPTIONAL_COLUMNS = ("scopes", "audiences", "expires_at", "sunset_at", "tenant")
COLUMNS = (*KEY_COLUMNS, "owner", *OPTIONAL_COLUMNS)
_CHUNK = 500  # values per IN (...) query: well under every backend's parameter limit

#: The least a key must be able to hold. 128 bits is the usual floor for a bearer secret
#: (NIST SP 800-131A's 128-bit security strength; keyswap's own client secrets have 256): a
#: key is one lookup away from a token, and the stored hashes are only as strong as the
#: keys once the database and its pepper leak. Legacy keys are often far shorter (an
#: 8-character key was imported in review), and every unknown-key guess costs an attacker
#: one request, so short keys are refused at import rather than guarded at exchange.
MIN_KEY_BITS = 128
WEAK_KEY = (
    f"the key is too short to be secret (it cannot hold {MIN_KEY_BITS} bits of entropy); "
    "replace it, or import it anyway with --allow-weak-keys"
)
_CHARACTER_CLASSES = (
    frozenset(string.ascii_lowercase),
    frozenset(string.ascii_uppercase),
    frozenset(string.digits),
)
_OTHER_CHARACTERS = 33  # printable ASCII punctuation and space; anything else counts so too


def max_key_bits(key: str) -> float:
    """Return an upper bound of the entropy of ``key``, in bits.

    Each character can carry at most log2 of the size of the alphabet the key draws from,
    taken as the character classes it uses (lower case 26, upper case 26, digits 10,
    others 33). A key over the bound may still be guessable ("aaaa..."), so this can only
    refuse keys, never vouch for one: 8 characters hold at most 53 bits, 20 lower-case
    letters and digits 103; 22 random base64url characters or 32 hex digits pass.
    """
    if not key:
        return 0.0
    alphabet = sum(len(c) for c in _CHARACTER_CLASSES if not c.isdisjoint(key))
    if any(not any(ch in c for c in _CHARACTER_CLASSES) for ch in key):
        alphabet += _OTHER_CHARACTERS
    return len(key) * math.log2(alphabet) if alphabet > 1 else 0.0


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One valid CSV row: the key as its hex SHA-256, never in clear."""

    line: int
    digest: str
    owner: str
    #: True or False for a clear key; None for a digest, whose key cannot be judged.
    weak: bool | None = None
    scopes: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    expires_at: datetime | None = None
    sunset_at: datetime | None = None
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    """A bad row (or a bad file, at line 1): its line number and why."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """The valid rows and the errors of one CSV file."""

    rows: list[ImportRow]
    errors: list[RowError]


class Outcome(enum.StrEnum):
    """What an import did, or would do, with one row."""

    IMPORTED = "imported"
    ORPHANED = "orphaned"
    DUPLICATE = "duplicate"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class RowResult:
    """The outcome of one row, for the report."""

    line: int
    outcome: Outcome
    owner: str | None = None
    key_id: str | None = None
    reason: str | None = None
    owner_created: bool = False
    weak: bool | None = None


@dataclass
class ImportReport:
    """Every row's outcome; the import applies only when there is no error."""

    results: list[RowResult]
    dry_run: bool
    owners_created: int = 0
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.results.sort(key=lambda r: r.line)
        self.counts = {o.value: 0 for o in Outcome}
        for result in self.results:
            self.counts[result.outcome.value] += 1

    @property
    def ok(self) -> bool:
        """Tell whether every row was valid (so the import may be committed)."""
        return self.counts[Outcome.ERROR.value] == 0

    @property
    def weak_lines(self) -> list[int]:
        """Return the lines whose clear key is too short to be secret."""
        return [r.line for r in self.results if r.weak]

    @property
    def unchecked_lines(self) -> list[int]:
        """Return the lines given as ``api_key_sha256``, whose strength cannot be judged."""
        return [r.line for r in self.results if r.weak is None and r.outcome is not Outcome.ERROR]

    def _outcome(self, outcome: Outcome) -> str:
        # A dry run imports nothing: it says what it would do.
        if self.dry_run and outcome is Outcome.IMPORTED:
            return "would_import"
        return outcome.value

    def as_dict(self) -> dict[str, Any]:
        """Return the report as plain data: counts, then one entry per row."""
        return {
            "dry_run": self.dry_run,
            **{self._outcome(Outcome(k)): n for k, n in self.counts.items()},
            "owners_created": self.owners_created,
            "weak_keys": len(self.weak_lines),
            "unchecked_keys": len(self.unchecked_lines),
            "rows": [
                {
                    "line": r.line,
                    "outcome": self._outcome(r.outcome),
                    "owner": r.owner,
                    "key_id": r.key_id,
                    "owner_created": r.owner_created,
                    "weak_key": r.weak,
                    "reason": r.reason,
                }
                for r in self.results
            ],
        }


class _BadValue(ValueError):
    pass


def _time(name: str, raw: str) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise _BadValue(f"{name} is not an ISO 8601 time: {raw!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _digest(values: dict[str, str]) -> tuple[str, bool | None]:
    """Return the key's hex SHA-256 and whether it is weak (None: given as a digest)."""
    clear, digest = values.get("api_key", ""), values.get("api_key_sha256", "")
    if clear and digest:
        raise _BadValue("both api_key and api_key_sha256 are given; give one")
    if clear:
        return sha256_hex(clear), max_key_bits(clear) < MIN_KEY_BITS
    if not digest:
        raise _BadValue("no key: api_key or api_key_sha256 is empty")
    if not is_sha256_hex(digest):
        # The value is not quoted: it may be a clear key pasted in the wrong column.
        raise _BadValue("api_key_sha256 is not 64 hexadecimal characters")
    return digest.lower(), None


def _parse_row(line: int, values: dict[str, str]) -> ImportRow:
    problems: list[str] = []

    def checked(parse: Any, *args: Any) -> Any:
        try:
            return parse(*args)
        except (_BadValue, InvalidValue) as exc:
            problems.append(str(exc))
            return None

    key: tuple[str, bool | None] = checked(_digest, values) or ("", None)
    digest, weak = key
    owner = values.get("owner", "")
    if not owner:
        problems.append("owner is empty")
    elif "\x00" in owner:
        # PostgreSQL text cannot hold NUL: the owner lookup would fail, not report the row.
        problems.append("owner has a NUL character")
    scopes = checked(check_scopes, values.get("scopes", ""))
    audiences = checked(check_audiences, values.get("audiences", "").split())
    expires_at = checked(_time, "expires_at", values.get("expires_at", ""))
    sunset_at = checked(_time, "sunset_at", values.get("sunset_at", ""))
    if problems:
        raise _BadValue("; ".join(problems))
    return ImportRow(
        line=line,
        digest=digest,
        owner=owner,
        weak=weak,
        scopes=scopes,
        audiences=audiences,
        expires_at=expires_at,
        sunset_at=sunset_at,
        tenant=values.get("tenant") or None,
    )


def _check_header(header: Sequence[str]) -> str | None:
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        return f"unknown column(s) {', '.join(map(repr, unknown))}; expected {', '.join(COLUMNS)}"
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        return f"column(s) {', '.join(repeated)} appear more than once"
    if "owner" not in header:
        return "the header has no owner column"
    if not any(name in header for name in KEY_COLUMNS):
        return "the header has neither an api_key nor an api_key_sha256 column"
    return None


def parse_csv(stream: TextIO) -> ParsedFile:
    """Read a key table; return its valid rows and every bad row's line and reason.

    Open files with ``newline=""`` (the csv module's rule) and ``encoding="utf-8-sig"``
    (spreadsheet exports start with a byte-order mark).
    """
    reader = csv.reader(stream)
    rows: list[ImportRow] = []
    errors: list[RowError] = []
    try:
        header = [name.strip().lstrip("\ufeff").lower() for name in next(reader, [])]
        if not header:
            return ParsedFile([], [RowError(1, "the file is empty; expected a header row")])
        problem = _check_header(header)
        if problem:
            return ParsedFile([], [RowError(1, problem)])
        for record in reader:
            line = reader.line_num
            if not any(value.strip() for value in record):
                continue
            if len(record) != len(header):
                errors.append(
                    RowError(line, f"has {len(record)} fields; the header has {len(header)}")
                )
                continue
            values = {name: value.strip() for name, value in zip(header, record, strict=True)}
            try:
                rows.append(_parse_row(line, values))
            except _BadValue as exc:
                errors.append(RowError(line, str(exc)))
    except csv.Error as exc:
        # The reader has already counted the line it could not parse.
        errors.append(RowError(reader.line_num, f"unreadable CSV: {exc}"))
    except UnicodeDecodeError as exc:
        # Decoding fails while reading the next line, before the reader counts it.
        errors.append(RowError(reader.line_num + 1, f"unreadable CSV: {exc}"))
    return ParsedFile(rows, errors)


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _existing_owners(session: Session, names: Iterable[str]) -> dict[str, User]:
    found: dict[str, User] = {}
    for chunk in _chunks(sorted(set(names))):
        found.update((u.name, u) for u in session.scalars(select(User).where(User.name.in_(chunk))))
    return found


def _stored_keys(session: Session, hashes: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Return key hash → (key id, owner name) for the hashes already stored."""
    stored: dict[str, tuple[str, str]] = {}
    query = select(LegacyKey.key_hash, LegacyKey.id, User.name).join(User)
    for chunk in _chunks(hashes):
        for key_hash, key_id, owner in session.execute(query.where(LegacyKey.key_hash.in_(chunk))):
            stored[key_hash] = (key_id, owner)
    return stored


def import_legacy_keys(
    session: Session,
    hasher: SecretHasher,
    parsed: ParsedFile,
    *,
    create_missing_owners: bool = False,
    allow_weak_keys: bool = False,
    dry_run: bool = False,
    now: datetime,
    actor: str,
    source: str = "csv",
) -> ImportReport:
    """Import ``parsed`` into ``session``'s transaction and return the per-row report.

    The keys are stamped as created at ``now`` (the app's clock).

    Orphaned rows (owner unknown) are skipped unless ``create_missing_owners``: then the
    owner is created as a service account in the row's tenant (or the default tenant).
    A key already imported, or earlier in the file, for the same owner is a duplicate and
    skipped; for another owner it is an error. A clear key too short to be secret is an
    error unless ``allow_weak_keys`` (then it is imported, and flagged in the report). The
    caller commits only if ``report.ok`` and not ``dry_run``; the ``legacy_key.imported``
    audit event is added in that case. A dry run reports no key ids: the real import
    assigns its own.
    """
    results = [RowResult(e.line, Outcome.ERROR, reason=e.reason) for e in parsed.errors]
    hashes = {row.line: hash_digest(hasher, row.digest) for row in parsed.rows}
    stored = _stored_keys(session, sorted(set(hashes.values())))
    owners = _existing_owners(session, (row.owner for row in parsed.rows))
    seen: dict[str, ImportRow] = {}
    created: set[str] = set()
    inserts: list[dict[str, Any]] = []
    for row in parsed.rows:
        key_hash = hashes[row.line]
        if key_hash in stored:
            key_id, stored_owner = stored[key_hash]
            if stored_owner == row.owner:
                results.append(
                    RowResult(
                        row.line,
                        Outcome.DUPLICATE,
                        row.owner,
                        key_id,
                        "already imported",
                        weak=row.weak,
                    )
                )
            else:
                reason = f"this key is already imported as {key_id} for another owner"
                results.append(
                    RowResult(row.line, Outcome.ERROR, row.owner, key_id, reason, weak=row.weak)
                )
            continue
        if key_hash in seen:
            first = seen[key_hash]
            outcome = Outcome.DUPLICATE if first.owner == row.owner else Outcome.ERROR
            detail = "" if outcome is Outcome.DUPLICATE else " for another owner"
            reason = f"the same key is on line {first.line}{detail}"
            results.append(RowResult(row.line, outcome, row.owner, reason=reason, weak=row.weak))
            continue
        seen[key_hash] = row
        if row.weak and not allow_weak_keys:
            results.append(
                RowResult(row.line, Outcome.ERROR, row.owner, reason=WEAK_KEY, weak=True)
            )
            continue
        owner = owners.get(row.owner)
        just_created = False
        if owner is None and not create_missing_owners:
            results.append(
                RowResult(
                    row.line,
                    Outcome.ORPHANED,
                    row.owner,
                    reason="owner does not exist",
                    weak=row.weak,
                )
            )
            continue
        if owner is None:
            try:
                owner = add_user(
                    session,
                    row.owner,
                    tenant=row.tenant or DEFAULT_TENANT,
                    kind=UserKind.SERVICE_ACCOUNT,
                    actor=actor,
                )
            except (InvalidValue, Conflict) as exc:
                results.append(
                    RowResult(row.line, Outcome.ERROR, row.owner, reason=str(exc), weak=row.weak)
                )
                continue
            owners[row.owner] = owner
            created.add(row.owner)
            just_created = True
        elif row.tenant and row.tenant != owner.tenant.name:
            reason = f"tenant {row.tenant!r} is not the owner's tenant {owner.tenant.name!r}"
            results.append(
                RowResult(row.line, Outcome.ERROR, row.owner, reason=reason, weak=row.weak)
            )
            continue
        key_id = new_key_id()
        inserts.append(
            {
                "id": key_id,
                "key_hash": key_hash,
                "owner_id": owner.id,
                "scopes": " ".join(row.scopes),
                "audiences": list(row.audiences),
                "expires_at": row.expires_at,
                "sunset_at": row.sunset_at,
                "created_at": now,
                "use_count": 0,
            }
        )
        results.append(
            RowResult(
                row.line,
                Outcome.IMPORTED,
                row.owner,
                None if dry_run else key_id,
                reason="weak key, imported as allowed" if row.weak else None,
                owner_created=just_created,
                weak=row.weak,
            )
        )
    report = ImportReport(results, dry_run=dry_run, owners_created=len(created))
    if report.ok and inserts:
        session.execute(insert(LegacyKey), inserts)
    if report.ok and not dry_run:
        events.record(
            session,
            LEGACY_KEY_IMPORTED,
            f"legacy_keys:{source}",
            actor=actor,
            imported=report.counts[Outcome.IMPORTED],
            orphaned=report.counts[Outcome.ORPHANED],
            duplicate=report.counts[Outcome.DUPLICATE],
            owners_created=len(created),
            weak_keys=len(report.weak_lines),
        )
    return report
