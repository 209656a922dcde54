"""Schema migrations on a fresh database: upgrade, no drift, downgrade, step round trips.

After ory/hydra's ``migratest``: the migrated schema must equal what the models
describe (Alembic's autogenerate comparison finds nothing), and every revision must
undo cleanly, leaving the schema exactly as it found it.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

import keyswap.issuer.models  # noqa: F401  (registers every table on Base.metadata)
from keyswap.issuer.db import Base, downgrade_schema, make_engine, upgrade_schema

from ..conftest import DatabaseFactory

VERSION_TABLE = "alembic_version"


@pytest.fixture
def engine(databases: DatabaseFactory) -> Iterator[Engine]:
    """Return an engine on a new, empty database."""
    engine = make_engine(databases.create())
    yield engine
    engine.dispose()


def _revisions() -> list[str]:
    """Return the revision ids from base to head (a single line of history)."""
    config = Config()
    config.set_main_option("script_location", str(files("keyswap.migrations")))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1, "the migration history has more than one head"
    return [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))]


def _current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {VERSION_TABLE}


def _schema(engine: Engine) -> dict[str, Any]:
    """Describe every table: columns, keys, indexes and constraints, comparable with ==."""
    inspector = inspect(engine)  # a fresh inspector: reflection results are cached per one
    schema: dict[str, Any] = {}
    for table in sorted(_tables(engine)):
        schema[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted(
                (fk["name"], tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in inspector.get_indexes(table)
            ),
            "uniques": sorted(
                (uq["name"], tuple(uq["column_names"]))
                for uq in inspector.get_unique_constraints(table)
            ),
        }
    return schema


def _drift(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_upgrade_to_head_creates_every_model_table(engine):
    upgrade_schema(engine)
    assert _current(engine) == _revisions()[-1]
    assert _tables(engine) == set(Base.metadata.tables)


def test_upgraded_schema_has_no_drift_from_the_models(engine):
    upgrade_schema(engine)
    assert _drift(engine) == []


def test_downgrade_to_base_removes_every_table_then_upgrade_again(engine):
    upgrade_schema(engine)
    head_schema = _schema(engine)
    downgrade_schema(engine, "base")
    assert _tables(engine) == set()
    assert _current(engine) is None
    upgrade_schema(engine)
    assert _schema(engine) == head_schema
    assert _drift(engine) == []


def test_every_revision_downgrade_and_upgrade_round_trip(engine):
    previous = "base"
    for revision in _revisions():
        before = _schema(engine)
        upgrade_schema(engine, revision)
        after = _schema(engine)
        assert after != before, f"revision {revision} changes nothing"
        downgrade_schema(engine, previous)
        assert _current(engine) == (None if previous == "base" else previous)
        assert _schema(engine) == before, f"downgrade of {revision} is not its upgrade's inverse"
        upgrade_schema(engine, revision)
        assert _schema(engine) == after, f"upgrade of {revision} differs the second time"
        previous = revision


def test_upgrade_keeps_rows_written_at_an_earlier_revision(engine):
    revisions = _revisions()
    upgrade_schema(engine, revisions[0])
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tenants (id, name, status, created_at, status_changed_at) "
                "VALUES (1, 'acme', 'active', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    upgrade_schema(engine)
    with engine.connect() as connection:
        names = connection.execute(text("SELECT name, status FROM tenants")).all()
    assert [tuple(row) for row in names] == [("acme", "active")]


def test_drift_check_sees_a_schema_one_revision_behind(engine):
    # The no-drift test is only worth something if the comparison can fail.
    revisions = _revisions()
    upgrade_schema(engine, revisions[-2] if len(revisions) > 1 else "base")
    assert _drift(engine) != []
