"""`keyswap serve` and `keyswap demo` as real processes: where they listen, and a taken port.

granian's workers bind with SO_REUSEPORT, so without a check a second server on the same
port started and the kernel split connections between the two (CONTRACT "Command line":
a port already in use is an error, never shared).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from keyswap.jwks import generate_kek

from ..processes import free_port as _free_port
from ..processes import serving


def _env(data_dir: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "KEYSWAP_DATA_DIR": str(data_dir),
        "KEYSWAP_KEY_ENCRYPTION_KEY": generate_kek(),
        "KEYSWAP_ISSUER": f"http://127.0.0.1:{port}",
    }


def _keyswap(*args: str) -> list[str]:
    return [sys.executable, "-m", "keyswap.issuer.cli", *args]


def _run_to_exit(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command that should exit; a server that starts instead is stopped, group and all."""
    proc = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


@pytest.fixture
def running_server(tmp_path):
    """One `keyswap serve` on a port of its own; yields (port, path of its output)."""
    port = _free_port()
    out = tmp_path / "first.out"
    args = _keyswap("serve", "--port", str(port), "--workers", "1")
    with serving(args, port=port, out=out, env=_env(tmp_path / "first", port)):
        yield port, out


def test_serve_prints_where_it_listens(running_server):
    port, out = running_server
    assert f"keyswap listening on http://127.0.0.1:{port} (1 worker)" in out.read_text()


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_second_server_on_a_taken_port_fails_and_the_first_keeps_it(
    running_server, tmp_path, command
):
    port, _ = running_server
    first_kid = requests.get(f"http://127.0.0.1:{port}/jwks.json", timeout=5).json()["keys"]
    second = _run_to_exit(
        _keyswap(command, "--port", str(port), "--workers", "1"), _env(tmp_path / "second", port)
    )
    assert second.returncode == 1, (second.stdout, second.stderr)
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in second.stderr
    assert "client_secret" not in second.stdout  # demo stopped before creating anything
    assert not (tmp_path / "second" / "keyswap.db").exists()
    # Every connection still reaches the first server: the same keys, time after time.
    for _ in range(10):
        keys = requests.get(f"http://127.0.0.1:{port}/jwks.json", timeout=5).json()["keys"]
        assert keys == first_kid


def test_serve_on_a_port_another_program_holds_fails(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        result = _run_to_exit(
            _keyswap("serve", "--port", str(port), "--workers", "1"), _env(tmp_path / "data", port)
        )
    assert result.returncode == 1
    assert "address already in use" in result.stderr


def test_a_port_held_by_a_starting_server_is_refused_to_another(tmp_path):
    # While a server migrates and spawns its workers it holds the port (a bound, never
    # listening SO_REUSEPORT socket): a second server starting then is refused too.
    from keyswap.issuer.serving import reserve_port

    port = _free_port()
    guard = reserve_port("127.0.0.1", port)
    assert guard is not None
    try:
        result = _run_to_exit(
            _keyswap("serve", "--port", str(port), "--workers", "1"), _env(tmp_path / "data", port)
        )
        assert result.returncode == 1
        assert "address already in use" in result.stderr
        # The holder's own workers (granian binds each with SO_REUSEPORT) still can.
        with socket.socket() as worker:
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            worker.bind(("127.0.0.1", port))
            worker.listen()
    finally:
        guard.close()
