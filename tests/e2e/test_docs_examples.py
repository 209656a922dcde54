"""The README's and the migration guide's shell examples, as a new user pastes them.

Found by a new user's run (issue 10): a comment after a line continuation ended the guide's
curl command early, and the README's introspection example used a user it never created
and a ``$RS_ID`` it never set. Every shell block is checked for both; the blocks that
failed are also run, with bash and curl, against a live issuer.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from keyswap.issuer.db import transaction
from keyswap.issuer.legacy.importing import import_legacy_keys, parse_csv

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A fenced block without a language, or marked as shell, holds commands to paste.
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_SHELL = {"", "sh", "bash", "shell", "console"}
_ASSIGNED = re.compile(r"^\s*([A-Z_][A-Z0-9_]*)=", re.M)
_USED = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)")
#: What `keyswap demo` creates: the README's examples may use it without creating it.
DEMO_USERS = {"demo-service"}
#: Documents that walk through from `keyswap demo` on, so must create every owner they name
#: (the migration guide's owners are the reader's own, from the key table).
WALKTHROUGHS = {"README.md"}
STRONG_KEY = "sk_live_Q7mZp2Rw9XkT4vLc8NbY3sHd"


def shell_blocks(path: Path) -> list[str]:
    """Return the shell blocks of a Markdown document, in order."""
    return [body for lang, body in _FENCE.findall(path.read_text()) if lang in _SHELL]


def commands(block: str) -> list[str]:
    """Return the block's logical lines: continuations joined, comment and blank lines out."""
    logical, pending = [], ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    return logical


def block_with(path: Path, marker: str) -> str:
    """Return the one shell block of ``path`` that contains ``marker``."""
    (block,) = [b for b in shell_blocks(path) if marker in b]
    return block


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_no_shell_command_is_cut_short_by_a_comment(path):
    for block in shell_blocks(path):
        for command in commands(block):
            # An option at the start of a command means the line before it was ended
            # early, by a comment after its continuation or a missing backslash.
            assert not command.lstrip().startswith("-"), (path.name, command)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_every_variable_and_owner_is_set_up_before_use(path):
    assigned: set[str] = set()
    users = set(DEMO_USERS)
    for block in shell_blocks(path):
        for command in commands(block):
            code = command.split(" #")[0]
            used = set(_USED.findall(code)) - assigned - {"PATH", "HOME"}
            assert not used, f"{path.name}: {sorted(used)} used before it is set: {command}"
            assigned.update(_ASSIGNED.findall(code))
            if created := re.search(r"keyswap users create (\S+)", code):
                users.add(created.group(1))
            for owner in re.findall(r"--owner (\S+)", code):
                assert path.name not in WALKTHROUGHS or owner in users, (
                    f"{path.name}: owner {owner!r} never created: {command}"
                )


def _bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def shell_env(live_server, database_url, kek, tmp_path):
    """An environment in which `keyswap` commands act on the live server's database."""
    if shutil.which("bash") is None or shutil.which("curl") is None:
        pytest.skip("needs bash and curl, as the documents do")
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "KEYSWAP_DATABASE_URL": database_url,
        "KEYSWAP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(kek).rstrip(b"=").decode(),
        "KEYSWAP_DATA_DIR": str(tmp_path / "data"),
        "KEYSWAP_ISSUER": live_server.url,
    }


def test_migration_guide_exchange_example_gets_a_narrowed_token(live_issuer, shell_env):
    live_issuer.create_client(user="billing-svc")
    table = f"api_key,owner,scopes,audiences\n{STRONG_KEY},billing-svc,orders:read orders:write,"
    table += "https://orders.example\n"
    with transaction(live_issuer.keyswap.sessions) as session:
        report = import_legacy_keys(
            session,
            live_issuer.keyswap.hasher,
            parse_csv(io.StringIO(table)),
            now=live_issuer.keyswap.clock(),
            actor="test",
        )
    assert report.ok
    block = block_with(ROOT / "docs" / "migration-guide.md", "--data-urlencode subject_token")
    script = block.replace("https://keyswap.example", live_issuer.url).replace(
        "API_KEY=...", f"API_KEY={STRONG_KEY}"
    )
    result = _bash(script, shell_env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["scope"] == "orders:read"
    token = answer["access_token"]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==").decode())
    assert claims["aud"] == "https://orders.example"


def test_readme_introspection_example_answers_active(live_issuer, shell_env):
    demo = live_issuer.create_client(user="demo-service", tenant="demo", service_account=True)
    token = live_issuer.token(demo, scope="orders:read").json()["access_token"]
    block = block_with(ROOT / "README.md", "/oauth/introspect")
    script = block.replace("http://127.0.0.1:8000", live_issuer.url)
    result = _bash(script, {**shell_env, "TOKEN": token})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["active"] is True
    assert answer["client_id"] == demo.client_id
