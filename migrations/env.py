"""Alembic environment: migrates the keyswap schema described by ``keyswap.issuer.db.Base``.

Run through ``keyswap db upgrade`` (which passes the connection) or plain ``alembic``
with ``-x url=...``. Batch mode on SQLite lets migrations alter tables there too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import keyswap.issuer.models  # noqa: F401  (registers every table on Base.metadata)
from keyswap.issuer.db import Base, UTCDateTime, make_engine

target_metadata = Base.metadata


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    # Migrations must not import application types: a UTC column is a plain
    # timezone-aware DateTime in the schema.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the connection keyswap passed in, or an engine for ``-x url=``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database URL: alembic -x url=sqlite:///path/to/keyswap.db ...")
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("keyswap migrations run online only")
run_migrations_online()
