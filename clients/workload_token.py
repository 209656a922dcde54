"""Where a workload's own identity token comes from, for the jwt-bearer grant (RFC 7523 §2.1).

Platforms hand workloads short-lived signed tokens: Kubernetes projects one into a file
and rewrites it before it expires; CI systems put one in an environment variable or
serve it on request. ``WorkloadToken`` reads the current one each time a keyswap token is
needed::

    source = WorkloadToken.from_file("/var/run/secrets/tokens/keyswap")
    client = TokenClient(issuer="https://auth.example", workload_token=source)

A file is read again only when it changed (its inode, size or modification time), so a
rewrite by the kubelet is seen at the next token request and an unchanged file costs one
``stat``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


class WorkloadToken:
    """A source of the workload's current identity token (a JWT, as text)."""

    def __init__(self, read: Callable[[], str], description: str) -> None:
        """Take tokens from ``read``; ``description`` names the source in errors."""
        self._read = read
        self.description = description

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> WorkloadToken:
        """Read the token from ``path``, again whenever the file changes."""
        return cls(_FileToken(Path(path)).read, f"file {path}")

    @classmethod
    def from_env(cls, name: str) -> WorkloadToken:
        """Read the token from the environment variable ``name`` at each use."""

        def read() -> str:
            value = os.environ.get(name)
            if value is None:
                raise ValueError(f"environment variable {name} is not set")
            return value

        return cls(read, f"environment variable {name}")

    @classmethod
    def from_callable(cls, fetch: Callable[[], str]) -> WorkloadToken:
        """Ask ``fetch`` for the token at each use (e.g. a CI provider's token endpoint)."""
        return cls(fetch, f"callable {getattr(fetch, '__name__', fetch)!r}")

    def read(self) -> str:
        """Return the current token, stripped of surrounding whitespace; ValueError if none."""
        token = self._read().strip()
        if not token:
            raise ValueError(f"the workload token from {self.description} is empty")
        return token


class _FileToken:
    """A token file, re-read when its inode, size or modification time changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._token = ""

    def read(self) -> str:
        stat = self._path.stat()
        version = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if version != self._seen:
                # Kubernetes swaps the file atomically (a symlink to a new directory), so
                # a read never sees half a token.
                self._token = self._path.read_text(encoding="utf-8")
                self._seen = version
            return self._token
