"""The console under real servers: on in `keyswap demo`, off in `keyswap serve` unless enabled."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from ..e2e.test_serve_ports import _env, _keyswap
from ..processes import free_port, serving
from .conftest import redeem


@contextmanager
def server(command: str, tmp_path: Path, **env: str) -> Iterator[tuple[int, Path]]:
    """Run ``keyswap COMMAND`` with one worker until ready; yield its port and stdout file."""
    port = free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / f"{command}.out"
    args = _keyswap(
        command,
        "--port",
        str(port),
        "--workers",
        "1",
        *(["--json"] if command == "demo" else []),
    )
    with serving(
        args,
        port=port,
        out=out,
        env={**_env(tmp_path / command, port), **env},
        stderr=subprocess.DEVNULL,
    ):
        yield port, out


def test_demo_serves_the_console_and_prints_a_one_time_link(tmp_path: Path) -> None:
    with server("demo", tmp_path) as (port, out):
        demo = json.loads(out.read_text())
        link = demo["console_link"]
        assert link.startswith(f"http://127.0.0.1:{port}/console/login/")
        token = requests.post(
            demo["token_endpoint"],
            data={"grant_type": "client_credentials"},
            auth=(demo["client_id"], "wrong"),
            timeout=10,
        )
        assert token.status_code == 401
        http = requests.Session()
        assert redeem(http, link).status_code == 303
        page = http.get(f"http://127.0.0.1:{port}/console/", timeout=10)
        assert page.status_code == 200
        assert 'data-label="invalid_client" data-count="1"' in page.text
        assert redeem(requests.Session(), link).status_code == 403


def test_serve_has_no_console_unless_enabled(tmp_path: Path) -> None:
    with server("serve", tmp_path) as (port, _):
        assert requests.get(f"http://127.0.0.1:{port}/console/", timeout=10).status_code == 404
    with server("serve", tmp_path / "on", KEYSWAP_CONSOLE="1") as (port, _):
        assert requests.get(f"http://127.0.0.1:{port}/console/", timeout=10).status_code == 401
