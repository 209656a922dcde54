"""``keyswap demo`` prints where its database is, never the database password."""

from __future__ import annotations

import json

import pytest

from keyswap.issuer.cli.serve import _print_demo
from keyswap.issuer.config import Settings


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_demo_masks_the_database_password(tmp_path, capsys, as_json):
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql://keyswap:s3cret-pw@db.internal:5432/keyswap",
        key_encryption_key=bytes(32),
    )
    _print_demo(settings, "ks_demo", "client-secret", as_json)
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out
    assert "postgresql://keyswap:***@db.internal:5432/keyswap" in out
    if as_json:
        assert json.loads(out)["database"] == "postgresql://keyswap:***@db.internal:5432/keyswap"
