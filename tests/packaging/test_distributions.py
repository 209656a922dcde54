"""The two wheels, built from this tree and installed alone into fresh virtual environments.

``keyswap-client`` (``keyswap.clients``) must install and verify a real token without the
server's dependencies; ``keyswap`` (the server) must run from its wheel, with ``keyswap.clients``
coming from keyswap-client. Each wheel installs nothing but ``keyswap`` at the top of
site-packages, and declares every third-party module its code imports at run time.

Slow (two venvs, pip resolving from its cache or the index); ``.ci/run`` runs it.
"""

from __future__ import annotations

import ast
import email
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv
import zipfile
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLIENT_PROJECT = ROOT / "distributions" / "keyswap-client"
SERVER_ONLY = ["flask", "sqlalchemy", "alembic", "authlib", "granian"]
#: Left out of the copy the wheels are built from: VCS data, build output, caches, venvs.
NOT_SOURCE = (".git", "build", "dist", "*.egg-info", "__pycache__", ".*cache", ".*venv", ".keyswap")
#: What each wheel holds: its folders of this repository, under keyswap/.
FOLDERS = {"keyswap": ["issuer", "jwks", "migrations"], "keyswap_client": ["clients"]}


def run(*command: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, env=env, cwd=cwd
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both wheels, built from a copy of the tree: no stale build/ folder can add a file."""
    source = tmp_path_factory.mktemp("source") / "keyswap"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    out = tmp_path_factory.mktemp("wheels")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out,
        source, source / CLIENT_PROJECT.relative_to(ROOT))  # fmt: skip
    built = {path.name.split("-")[0]: path for path in out.glob("*.whl")}
    assert set(built) == set(FOLDERS), built
    return built


def fresh_venv(where: Path, *install: str | Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(where)
    python = where / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *install)
    return where / "bin"


@pytest.fixture(scope="module")
def server_bin(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding the keyswap wheel; keyswap-client found beside it, the rest on the index."""
    where = tmp_path_factory.mktemp("server") / "venv"
    return fresh_venv(where, "--find-links", wheels["keyswap"].parent, wheels["keyswap"])


@pytest.fixture(scope="module")
def client_bin(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding the keyswap-client wheel and its declared dependencies only."""
    where = tmp_path_factory.mktemp("client") / "venv"
    return fresh_venv(where, wheels["keyswap_client"])


def test_each_wheel_installs_only_keyswap_and_ships_its_folders_whole(wheels):
    for name, wheel in wheels.items():
        files = zipfile.ZipFile(wheel).namelist()
        payload = [f for f in files if ".dist-info/" not in f]
        assert {f.split("/")[0] for f in payload} == {"keyswap"}, wheel.name
        # keyswap is a namespace package both wheels share: neither may own a file in it.
        assert all(f.count("/") >= 2 for f in payload), wheel.name
        shipped = {f.removeprefix("keyswap/") for f in payload}
        expected = {
            path.relative_to(ROOT).as_posix()
            for folder in FOLDERS[name]
            for path in (ROOT / folder).rglob("*")
            if path.is_file()
            and not any(
                part.startswith((".", "__pycache__")) for part in path.relative_to(ROOT).parts
            )
            and path.suffix != ".pyc"
        }
        assert shipped == expected, wheel.name
    server = zipfile.ZipFile(wheels["keyswap"]).namelist()
    for data in (
        "issuer/openapi.yaml",
        "issuer/py.typed",
        "jwks/py.typed",
        "migrations/alembic.ini",
    ):
        assert f"keyswap/{data}" in server
    assert "keyswap/clients/py.typed" in zipfile.ZipFile(wheels["keyswap_client"]).namelist()


def runtime_imports(source: str) -> set[str]:
    """Top-level names of the absolute imports a module runs (not those under TYPE_CHECKING)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def test_each_wheel_declares_every_module_it_imports(wheels):
    providers = packages_distributions()
    for wheel in wheels.values():
        archive = zipfile.ZipFile(wheel)
        metadata = email.message_from_bytes(
            archive.read(next(f for f in archive.namelist() if f.endswith(".dist-info/METADATA")))
        )
        declared = {
            canonicalize_name(Requirement(line).name)
            for line in metadata.get_all("Requires-Dist", [])
        }
        imported: set[str] = set()
        for name in archive.namelist():
            if name.endswith(".py"):
                imported |= runtime_imports(archive.read(name).decode())
        third_party = imported - set(sys.stdlib_module_names) - {"__future__", "keyswap"}
        for module in sorted(third_party):
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            assert dists & declared, f"{wheel.name} imports {module} ({dists}) undeclared"


def test_keyswap_alone_reports_its_version_and_migrates(server_bin, tmp_path):
    from keyswap.clients._version import __version__

    env = {**os.environ, "KEYSWAP_DATA_DIR": str(tmp_path)}
    assert run(server_bin / "keyswap", "--version", env=env).strip() == f"keyswap {__version__}"
    run(server_bin / "keyswap", "db", "upgrade", env=env, cwd=tmp_path)
    assert (tmp_path / "keyswap.db").stat().st_size > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(server_bin: Path, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`keyswap serve` from the server's wheel, and the credentials of one client of it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "KEYSWAP_DATA_DIR": str(tmp_path), "KEYSWAP_ISSUER": url}
    keyswap = server_bin / "keyswap"
    run(keyswap, "db", "upgrade", env=env, cwd=tmp_path)
    run(keyswap, "users", "create", "billing", "--service-account", "--json", env=env, cwd=tmp_path)
    created = json.loads(
        run(keyswap, "clients", "create", "--owner", "billing", "--scope", "orders:read",
            "--audience", "https://orders.example", "--json", env=env, cwd=tmp_path)
    )  # fmt: skip
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [keyswap, "serve", "--port", str(port), "--workers", "1"],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "keyswap serve did not become ready"
            time.sleep(0.1)
        yield url, created
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


CLIENT_SCRIPT = """
import importlib.util, json, sys
from keyswap.clients import TokenClient, Verifier

url, client_id, secret = sys.argv[1:]
missing = [name for name in {server_only!r} if importlib.util.find_spec(name) is None]
token = TokenClient.from_issuer(url, client_id=client_id, client_secret=secret).get_token()
principal = Verifier(url, "https://orders.example").verify(token.access_token)
print(json.dumps({{"missing": missing, "client_id": principal.client_id,
                  "scopes": sorted(principal.scopes)}}))
"""


def test_keyswap_client_alone_verifies_a_token_from_keyswap_serve(client_bin, served):
    url, created = served
    script = CLIENT_SCRIPT.format(server_only=SERVER_ONLY)
    answer = json.loads(
        run(
            client_bin / "python", "-c", script, url, created["client_id"], created["client_secret"]
        )
    )
    assert answer == {
        "missing": SERVER_ONLY,
        "client_id": created["client_id"],
        "scopes": ["orders:read"],
    }
