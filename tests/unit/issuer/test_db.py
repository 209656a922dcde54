"""The engine hides SQL parameters; PreparedRead refuses converting parameters, plans per driver."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from keyswap.issuer.db import PreparedRead, _Plan, make_engine
from keyswap.issuer.legacy.keys import _BY_HASH, _BY_ID
from keyswap.issuer.models import RevokedToken
from keyswap.issuer.revocation import _IS_REVOKED
from keyswap.issuer.storage import _CLIENT_RECORD_QUERY

DIALECTS = [postgresql.psycopg.dialect(), sqlite.dialect()]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_hot_path_reads_bind_only_plain_values_on_each_backend(dialect):
    # _Plan refuses a parameter that needs bind processing (next test); every hot-path
    # read must compile for both backends, whichever one this run's database is.
    for statement in (_CLIENT_RECORD_QUERY, _BY_HASH, _BY_ID, _IS_REVOKED):
        _Plan(statement, dialect)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_a_parameter_whose_type_converts_is_refused(dialect):
    statement = select(RevokedToken.jti).where(RevokedToken.expires_at > bindparam("at"))
    with pytest.raises(ValueError, match="cannot bind 'at'"):
        _Plan(statement, dialect)


def test_plans_are_kept_per_driver_not_only_per_dialect():
    # Two PostgreSQL drivers: psycopg takes named parameters with casts, pg8000 positional
    # ones; a plan compiled for one must never run on the other.
    read = PreparedRead(_CLIENT_RECORD_QUERY)
    psycopg, pg8000 = postgresql.psycopg.dialect(), postgresql.pg8000.dialect()
    named, positional = read.plan(psycopg), read.plan(pg8000)
    assert named.positions is None and "%(client_id)s" in named.sql
    assert positional.positions == ("client_id",) and "%(client_id)s" not in positional.sql
    assert read.plan(postgresql.psycopg.dialect()) is named


def test_sql_parameters_stay_out_of_errors_and_engine_logs(databases, caplog):
    engine = make_engine(databases.create())
    secret = "secret-hash-4f1c2a9b"
    try:
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
            with pytest.raises(DBAPIError) as failure, engine.connect() as connection:
                connection.execute(text("INSERT INTO no_such_table VALUES (:h)"), {"h": secret})
    finally:
        engine.dispose()
    assert "SQL parameters hidden" in str(failure.value)
    assert secret not in str(failure.value)
    assert secret not in caplog.text
