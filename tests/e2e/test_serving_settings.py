"""``serving.run(settings)``: the workers serve the settings they were given, not the environment.

``run`` takes ``Settings`` (tests and embedders build them directly); each granian worker
must build its app from those, since nothing guarantees the environment says the same.
"""

from __future__ import annotations

import os
import sys
import textwrap

import requests

from keyswap.jwks import generate_kek

from ..processes import free_port, serving

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


def test_workers_serve_the_settings_given_to_run_not_the_environment(tmp_path):
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/only-in-settings"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # No KEYSWAP_* variable at all: a worker reading the environment would serve the default
    # issuer from ./.keyswap, with a key-encryption key of its own that opens no key.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSWAP_")}
    out = tmp_path / "server.out"
    args = [sys.executable, "-c", _SERVER, str(data_dir), generate_kek(), issuer, str(port)]
    with serving(args, port=port, out=out, env=env, cwd=tmp_path):
        metadata = requests.get(
            f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server", timeout=5
        ).json()
        assert metadata["issuer"] == issuer
        assert requests.get(f"http://127.0.0.1:{port}/jwks.json", timeout=5).json()["keys"]
        assert not (tmp_path / ".keyswap").exists()
