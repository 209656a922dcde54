"""How the ``keyswap`` distribution is built: the repository's folders, mapped into one namespace.

The folders stay at the top of the repository (issuer/, jwks/, clients/, migrations/); installed,
they are ``keyswap.issuer``, ``keyswap.jwks``, ``keyswap.clients`` and ``keyswap.migrations``, so
nothing but ``keyswap`` (a namespace package, shared with keyswap-client) lands in site-packages.
Every subpackage and every data file under a folder ships with it: new code needs no edit here.

Two builds, told apart by distributions/keyswap_build.py:
- the wheel (``pip wheel .``, ``pip install .``) is the server: issuer, jwks and migrations,
  depending on ``keyswap-client`` of the same version, which ships ``keyswap.clients``
  (built by distributions/keyswap-client/pyproject.toml);
- the editable install (``pip install -e '.[dev]'``) is the development tree: ``clients/`` too,
  with the client's own dependencies and extras, since keyswap-client is not installed from a
  checkout. The version is clients/_version.py's, for both distributions.
"""

from __future__ import annotations

import os
import runpy
import tomllib
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
EDITABLE = os.environ.get("KEYSWAP_BUILD_EDITABLE") == "1"
VERSION: str = runpy.run_path(str(ROOT / "clients" / "_version.py"))["__version__"]
CLIENT_PROJECT = ROOT / "distributions" / "keyswap-client" / "pyproject.toml"
#: Files under a package folder that never ship (developer scratch, caches).
NOT_SHIPPED = ("*.py", "*.pyc", "*.db", "*.sqlite3", "kek")

SERVER_REQUIRES = [
    "authlib>=1.6",
    "flask>=3.1",
    "flask-wtf>=1.2",
    "click>=8.1",
    "werkzeug>=3.1",
    "sqlalchemy>=2.0.30",
    "alembic>=1.13",
    "joserfc>=1.0",
    "pyjwt[crypto]>=2.10",
    "cryptography>=43",
    "gunicorn>=23",
    "granian>=2.5",
    "prometheus-client>=0.20",
    "limits>=4.0",
    "requests>=2.32",
    "pydantic>=2.7",
    "scim2-models>=0.12.3",
    "scim2-server>=0.8.3",
]
SERVER_EXTRAS = {
    "postgres": ["psycopg[binary]>=3.2"],
    "redis": ["redis>=5"],
}
DEV_TOOLS = [
    "pytest>=8.3",
    "packaging>=24",
    "requests-oauthlib>=2.0",
    "types-requests-oauthlib>=2.0",
    "hypothesis>=6.100",
    "schemathesis>=4.0",
    "scim2-client[httpx2]>=0.13.2",
    # An independent implementation of draft-ietf-oauth-status-list, for the interop test.
    "token-status-list==0.1.0a2.dev1",
    "mypy>=1.13",
    "ruff>=0.8",
    "playwright>=1.45",
]


def packages_of(folder: str) -> list[str]:
    """``keyswap.<folder>`` and every package below it."""
    return [f"keyswap.{folder}", *(f"keyswap.{folder}.{sub}" for sub in find_packages(folder))]


def data_files_of(folder: str) -> list[str]:
    """Every non-Python file under ``folder`` (globs relative to it), caches and scratch aside."""
    found = []
    for path in sorted(Path(folder).rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(
            part.startswith((".", "__pycache__")) for part in relative.parts
        ):
            continue
        if not any(path.match(pattern) for pattern in NOT_SHIPPED):
            found.append(relative.as_posix())
    return found


folders = ["issuer", "jwks", "migrations", *(["clients"] if EDITABLE else [])]
if EDITABLE:
    client = tomllib.loads(CLIENT_PROJECT.read_text())["project"]
    client_requires = [r for r in client["dependencies"] if r not in SERVER_REQUIRES]
    client_extras: dict[str, list[str]] = client["optional-dependencies"]
    client_extra_names = ",".join(client_extras)
    dev_client = [f"keyswap[{client_extra_names}]"]
else:
    client_requires = [f"keyswap-client=={VERSION}"]
    client_extra_names = "flask,httpx,asgi"
    client_extras = {
        name: [f"keyswap-client[{name}]=={VERSION}"] for name in client_extra_names.split(",")
    }
    dev_client = [f"keyswap-client[{client_extra_names}]=={VERSION}"]

setup(
    version=VERSION,
    package_dir={f"keyswap.{folder}": folder for folder in folders},
    packages=[name for folder in folders for name in packages_of(folder)],
    package_data={f"keyswap.{folder}": data_files_of(folder) for folder in folders},
    install_requires=SERVER_REQUIRES + client_requires,
    extras_require={
        **SERVER_EXTRAS,
        **client_extras,
        "dev": ["keyswap[postgres,redis]", *dev_client, *DEV_TOOLS],
    },
)
