"""keyswap beside a service of its own: one ``keyswap`` name, nothing else taken.

Services often have a top-level ``clients`` package and an Alembic ``migrations`` folder. With
keyswap installed under ``keyswap.*`` both stay the service's, and keyswap still finds its own
clients and migrations (``keyswap db upgrade`` run from the service's directory).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

from keyswap.clients._version import __version__
from keyswap.issuer.cli import cli

SERVICE_CHECK = """
import clients, migrations
from importlib.resources import files

import keyswap.clients, keyswap.issuer.cli, keyswap.migrations

assert clients.OWNER == "the service", clients.__file__
assert migrations.OWNER == "the service", migrations.__file__
assert files(migrations).joinpath("env.py").read_text() == "# the service's\\n"
assert files("keyswap.migrations").joinpath("versions").is_dir()
assert keyswap.clients.Verifier.__module__ == "keyswap.clients.verifier"
print("ok")
"""


def make_service(root):
    for package in ("clients", "migrations"):
        (root / package).mkdir()
        (root / package / "__init__.py").write_text('OWNER = "the service"\n')
    (root / "migrations" / "env.py").write_text("# the service's\n")


def test_a_service_with_its_own_clients_and_migrations_keeps_them(tmp_path):
    service = tmp_path / "service"
    service.mkdir()
    make_service(service)
    env = {**os.environ, "KEYSWAP_DATA_DIR": str(tmp_path / "data")}
    # `python -c` and `python -m` put the current directory (the service) first on sys.path.
    check = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SERVICE_CHECK)],
        cwd=service, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert check.stdout == "ok\n"
    upgrade = subprocess.run(
        [sys.executable, "-m", "keyswap.issuer.cli", "db", "upgrade"],
        cwd=service, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stderr
    with sqlite3.connect(tmp_path / "data" / "keyswap.db") as db:
        assert db.execute("select version_num from alembic_version").fetchone()


def test_keyswap_version_is_the_one_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"keyswap {__version__}\n"
