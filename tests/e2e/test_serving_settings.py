"""``serving.run(settings)``: the workers serve the settings they were given, not the environment.

``run`` takes ``Settings`` (tests and embedders build them directly); each granian worker
must build its app from those, since nothing guarantees the environment says the same.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import requests

from keyswap.jwks import generate_kek

_SERVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from keyswap.issuer.config import Settings
    from keyswap.issuer.serving import run
    from keyswap.jwks import decode_kek

    data_dir, kek, issuer, port = sys.argv[1:]
    settings = Settings(
        data_dir=Path(data_dir),
        database_url=f"sqlite:///{data_dir}/keyswap.db",
        key_encryption_key=decode_kek(kek),
        issuer=issuer,
        default_audience="https://api.example/only-in-settings",
    )
    run(settings, host="127.0.0.1", port=int(port), workers=1, threads=1)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_workers_serve_the_settings_given_to_run_not_the_environment(tmp_path):
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}/only-in-settings"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # No KEYSWAP_* variable at all: a worker reading the environment would serve the default
    # issuer from ./.keyswap, with a key-encryption key of its own that opens no key.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSWAP_")}
    out = tmp_path / "server.out"
    with out.open("w") as stream:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(data_dir), generate_kek(), issuer, str(port)],
            env=env,
            cwd=tmp_path,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, out.read_text()
            try:
                ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                if ready.ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        metadata = requests.get(
            f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server", timeout=5
        ).json()
        assert metadata["issuer"] == issuer
        assert requests.get(f"http://127.0.0.1:{port}/jwks.json", timeout=5).json()["keys"]
        assert not (tmp_path / ".keyswap").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
