"""``keyswap serve`` and ``keyswap demo``: run the server (granian worker processes)."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from typing import Any, TypeVar

import click
from flask import Flask
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..config import DEFAULT_ISSUER, ConfigError, Settings
from ..console.links import create_link
from ..db import transaction
from ..lifecycle import add_user, register_client
from ..models import UserKind
from ..serving import StartupError, run
from ..storage import NotFound, get_user

DEMO_TENANT = "demo"
DEMO_USER = "demo-service"
DEMO_SCOPE = "orders:read orders:write"


def _default_workers() -> int:
    # One per core measured best (python -m bench): more only queue behind the GIL-free
    # server threads and raise p99. At least two, so one slow request never stalls all.
    return max(2, min(os.cpu_count() or 1, 8))


def _settings(host: str, port: int) -> Settings:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if settings.issuer == DEFAULT_ISSUER and (host, port) != ("127.0.0.1", 8000):
        click.echo(
            f"warning: KEYSWAP_ISSUER is {DEFAULT_ISSUER} but the server listens on "
            f"{host}:{port}; set KEYSWAP_ISSUER to the URL clients use.",
            err=True,
        )
    return settings


def _serve(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    threads: int,
    setup: Callable[[Flask], None] | None = None,
    quiet_stdout: bool = False,
) -> None:
    def announce(url: str) -> None:
        # With --json, stdout carries only the JSON document.
        plural = "s" if workers > 1 else ""
        click.echo(f"keyswap listening on {url} ({workers} worker{plural})", err=quiet_stdout)

    try:
        run(
            settings,
            host=host,
            port=port,
            workers=workers,
            threads=threads,
            setup=setup,
            on_listening=announce,
        )
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None


server_options = [
    click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind."),
    click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535)),
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=_default_workers,
        show_default="1 per core, 2 to 8",
        help="Worker processes (granian).",
    ),
    click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Request threads per worker.",
    ),
]


F = TypeVar("F", bound=Callable[..., Any])


def _with_server_options(func: F) -> F:
    for option in reversed(server_options):
        func = option(func)
    return func


@click.command("serve")
@_with_server_options
def serve_command(host: str, port: int, workers: int, threads: int) -> None:
    """Migrate the database, make sure a signing key exists, and serve (granian workers)."""
    _serve(_settings(host, port), host, port, workers, threads)


@click.command("demo")
@_with_server_options
@click.option("--json", "as_json", is_flag=True, help="Print the demo credentials as JSON.")
def demo_command(host: str, port: int, workers: int, threads: int, as_json: bool) -> None:
    """Start the server on the embedded database with a demo tenant, user and client.

    The console is on (unless KEYSWAP_CONSOLE=0), and a one-time link to it is printed.
    """
    # Set in the environment, not only in these settings: the workers read it again.
    os.environ.setdefault("KEYSWAP_CONSOLE", "1")
    settings = _settings(host, port)

    def setup(app: Flask) -> None:
        keyswap = app.extensions["keyswap"]
        with transaction(keyswap.sessions) as session:
            try:
                get_user(session, DEMO_USER)
            except NotFound:
                add_user(
                    session,
                    DEMO_USER,
                    tenant=DEMO_TENANT,
                    kind=UserKind.SERVICE_ACCOUNT,
                    actor="demo",
                )
            created = register_client(
                session,
                keyswap.hasher,
                owner=DEMO_USER,
                scope=DEMO_SCOPE,
                max_token_ttl=settings.max_token_ttl,
                now=keyswap.clock(),
                actor="demo",
            )
            link = None
            if settings.console:
                link = create_link(
                    session,
                    keyswap.hasher,
                    issuer=settings.issuer,
                    tenant=None,
                    ttl=settings.console_link_ttl,
                    actor="demo",
                    now=keyswap.clock(),
                ).url
        _print_demo(settings, created.client.id, str(created.secret), as_json, console_link=link)

    _serve(settings, host, port, workers, threads, setup=setup, quiet_stdout=as_json)


def _shown_url(url: str) -> str:
    # The database URL may carry a password: print it masked ("***").
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


def _print_demo(
    settings: Settings,
    client_id: str,
    secret: str,
    as_json: bool,
    *,
    console_link: str | None = None,
) -> None:
    if as_json:
        creds = {
            "issuer": settings.issuer,
            "token_endpoint": settings.token_endpoint,
            "client_id": client_id,
            "client_secret": secret,
            "scope": DEMO_SCOPE,
            "database": _shown_url(settings.database_url),
            "console_link": console_link,
        }
        click.echo(json.dumps(creds, indent=2))
        return
    curl = (
        f"curl -s -u {shlex.quote(client_id + ':' + secret)} "
        f"-d grant_type=client_credentials -d {shlex.quote('scope=orders:read')} "
        f"{settings.token_endpoint}"
    )
    click.echo(
        "keyswap demo\n"
        f"  issuer         {settings.issuer}\n"
        f"  tenant / owner {DEMO_TENANT} / {DEMO_USER}\n"
        f"  client_id      {client_id}\n"
        f"  client_secret  {secret}   (shown once)\n"
        f"  database       {_shown_url(settings.database_url)}\n\n"
        f"Get a token:\n  {curl}\n\n"
        f"Public keys:\n  curl -s {settings.issuer}/jwks.json\n"
        + (
            f"\nOperator console (one-time link, {settings.console_link_ttl // 60} minutes; "
            f"more with `keyswap console link`):\n  {console_link}\n"
            if console_link
            else ""
        ),
    )
