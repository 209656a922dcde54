"""Real server processes for tests: started in their own process group, awaited, stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import requests


def free_port() -> int:
    """Return a loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: subprocess.Popen[Any], url: str, out: Path, timeout: float = 30) -> None:
    """Poll ``url``/readyz until it answers 200; fail with the process's output if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, out.read_text()
        try:
            if requests.get(f"{url}/readyz", timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, out.read_text()
        time.sleep(0.1)


def stop(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """Stop the process group (TERM, then KILL after ``timeout``) and reap the process."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def serving(
    args: Sequence[str],
    *,
    port: int,
    out: Path,
    env: dict[str, str],
    cwd: Path | None = None,
    stderr: int | IO[Any] | None = subprocess.STDOUT,
) -> Iterator[subprocess.Popen[Any]]:
    """Run ``args`` (a server on ``port``, output to ``out``) until ready; stop it afterwards."""
    with out.open("w") as stream:
        proc = subprocess.Popen(
            list(args), env=env, cwd=cwd, stdout=stream, stderr=stderr, start_new_session=True
        )
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}", out)
        yield proc
    finally:
        stop(proc)
