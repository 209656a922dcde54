"""The ``keyswap`` command line: a Flask ``FlaskGroup`` given ``create_app``.

Each noun is an ``AppGroup`` in its own module; commands are ``<noun>_<verb>`` functions
that return a dict or list for ``output`` to print (``--json`` on every command).
Exit codes: 0 ok, 1 domain error (message on stderr), 2 usage.
"""

from __future__ import annotations

from typing import Any

import click
from flask.cli import FlaskGroup

from ..app import create_app
from . import (
    admin,
    audit,
    clients,
    console,
    db,
    federation,
    keys,
    legacy,
    scim,
    serve,
    shim,
    tenants,
    tokens,
    users,
)


class KeyswapGroup(FlaskGroup):
    """FlaskGroup without Flask's own options or app-provided commands.

    ``keyswap --help`` must not build the app (that would create a data directory); only
    commands that need the app load it, through their app context.
    """

    def __init__(self, **extra: Any) -> None:
        super().__init__(
            create_app=lambda: create_app(),
            add_default_commands=False,
            # Flask's option prints Flask's and Werkzeug's versions; ours names keyswap's.
            add_version_option=False,
            load_dotenv=False,
            set_debug_flag=False,
            **extra,
        )
        self.params = [p for p in self.params if p.name not in {"env_file", "app", "debug"}]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """Look up only keyswap's own commands."""
        return click.Group.get_command(self, ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """List only keyswap's own commands."""
        return click.Group.list_commands(self, ctx)


@click.group(cls=KeyswapGroup)
@click.version_option(package_name="keyswap", prog_name="keyswap", message="%(prog)s %(version)s")
def cli() -> None:
    """keyswap: trade client credentials and legacy API keys for short-lived JWTs.

    Configuration comes from KEYSWAP_* environment variables (see the README).
    """


for group in (
    db.group,
    tenants.group,
    users.group,
    clients.group,
    tokens.group,
    keys.group,
    legacy.group,
    admin.group,
    scim.group,
    federation.group,
    console.group,
):
    cli.add_command(group)
cli.add_command(audit.audit)
cli.add_command(serve.serve_command)
cli.add_command(serve.demo_command)
cli.add_command(shim.shim_command)


def main() -> None:
    """Run the ``keyswap`` command."""
    cli(prog_name="keyswap")
