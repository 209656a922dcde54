"""PreparedRead refuses statements whose parameters would need SQLAlchemy's bind processing."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from keyswap.issuer.db import PreparedRead, _Plan
from keyswap.issuer.legacy.keys import _BY_HASH, _BY_ID
from keyswap.issuer.models import RevokedToken
from keyswap.issuer.revocation import _IS_REVOKED
from keyswap.issuer.storage import _CLIENT_RECORD_QUERY

DIALECTS = [postgresql.psycopg.dialect(), sqlite.dialect()]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_hot_path_reads_compile_for_each_backend(dialect):
    for statement in (_CLIENT_RECORD_QUERY, _BY_HASH, _BY_ID, _IS_REVOKED):
        plan = _Plan(statement, dialect)
        assert len(plan.converters) == len(statement.selected_columns)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_a_parameter_whose_type_converts_is_refused(dialect):
    statement = select(RevokedToken.jti).where(RevokedToken.expires_at > bindparam("at"))
    with pytest.raises(ValueError, match="cannot bind 'at'"):
        _Plan(statement, dialect)
    assert PreparedRead(statement).statement is statement  # compiled lazily, per dialect
