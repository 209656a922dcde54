"""A live read (PreparedRead on LiveReads) returns exactly what a session's execute returns.

It runs on the real database of the run (SQLite, or PostgreSQL in CI), since the point is
that SQLAlchemy's type processing is the same on each backend.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from keyswap.issuer.db import SessionReader, transaction, utcnow
from keyswap.issuer.models import Client, ClientSecret
from keyswap.issuer.storage import _CLIENT_RECORD, _CLIENT_RECORD_QUERY, load_client_record


def test_prepared_read_rows_equal_execute_rows_with_every_type(live_issuer):
    creds = live_issuer.create_client(audience=["https://orders.example"], token_ttl=600)
    now = utcnow()
    with transaction(live_issuer.keyswap.sessions) as session:
        # Fill the nullable datetimes too, so their conversion is compared.
        session.execute(
            update(ClientSecret)
            .where(ClientSecret.client_id == creds.client_id)
            .values(expires_at=now + timedelta(days=1), revoked_at=now)
        )
        session.execute(
            update(Client).where(Client.id == creds.client_id).values(tokens_revoked_before=now)
        )
    reads = live_issuer.keyswap.reads
    with live_issuer.keyswap.engine.connect() as connection:
        expected = [
            tuple(row)
            for row in connection.execute(_CLIENT_RECORD_QUERY, {"client_id": creds.client_id})
        ]
    rows = reads(lambda reader: reader.rows(_CLIENT_RECORD, client_id=creds.client_id))
    assert rows == expected
    assert [type(v) for v in rows[0]] == [type(v) for v in expected[0]]
    assert reads(lambda reader: reader.rows(_CLIENT_RECORD, client_id="ks_nobody")) == []
    record = reads(lambda reader: load_client_record(reader, creds.client_id))
    with transaction(live_issuer.keyswap.sessions) as session:
        assert record == load_client_record(SessionReader(session), creds.client_id)
    assert record is not None
    assert record.audiences == ("https://orders.example",) and record.token_ttl == 600
    assert record.secrets[0].revoked_at == now
    assert record.tokens_revoked_before is not None
    assert record.tokens_revoked_before.tzinfo is not None


def test_legacy_key_lookups_agree_between_prepared_and_session_reads(live_issuer):
    import io

    from keyswap.issuer.legacy.importing import import_legacy_keys, parse_csv
    from keyswap.issuer.legacy.keys import hash_api_key, load_legacy_key, load_legacy_status

    live_issuer.create_client(user="billing-svc")
    text = (
        "api_key,owner,scopes,expires_at,sunset_at\n"
        "sk_parity_Q7mZp2Rw9XkT4vLc8NbY,billing-svc,a b,2099-01-01,2098-06-30\n"
    )
    with transaction(live_issuer.keyswap.sessions) as session:
        report = import_legacy_keys(
            session,
            live_issuer.keyswap.hasher,
            parse_csv(io.StringIO(text)),
            now=live_issuer.keyswap.clock(),
            actor="test",
        )
    key_id = report.results[0].key_id
    assert key_id is not None
    key_hash = hash_api_key(live_issuer.keyswap.hasher, "sk_parity_Q7mZp2Rw9XkT4vLc8NbY")
    reads = live_issuer.keyswap.reads
    by_hash = reads(lambda reader: load_legacy_key(reader, key_hash))
    by_id = reads(lambda reader: load_legacy_status(reader, key_id))
    with transaction(live_issuer.keyswap.sessions) as session:
        assert by_hash == load_legacy_key(SessionReader(session), key_hash)
        assert by_id == load_legacy_status(SessionReader(session), key_id)
    assert by_hash is not None and by_hash == by_id
    assert by_hash.scopes == ("a", "b") and by_hash.sunset_at is not None
    assert by_hash.sunset_at.tzinfo is not None
