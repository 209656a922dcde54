"""``keyswap shim``: a reverse proxy that lets legacy API-key callers through as JWT callers.

It needs no database: it exchanges keys at the issuer over HTTP (RFC 8693) with
``keyswap.clients.legacy``, and forwards each request to the upstream with ``Authorization:
Bearer``.
"""

from __future__ import annotations

import click
from limits import parse_many

from keyswap.clients.legacy import DEFAULT_GUESS_LIMIT, KeyExchanger, ShimProxy

from ..config import DEFAULT_ISSUER
from ..serving import GunicornServer


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _guess_limit(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value.strip().lower() in {"0", "off", "none"}:
        return "off"
    try:
        parse_many(value)
    except ValueError:
        raise click.BadParameter(
            f"expected a limit like '10/minute', or 'off': {value!r}"
        ) from None
    return value


@click.command("shim")
@click.option("--listen", required=True, metavar="HOST:PORT", help="Address to listen on.")
@click.option("--upstream", required=True, metavar="URL", help="Base URL of the service.")
@click.option(
    "--issuer",
    envvar="KEYSWAP_ISSUER",
    default=DEFAULT_ISSUER,
    show_default=True,
    help="The keyswap issuer that exchanges keys (or KEYSWAP_ISSUER).",
)
@click.option("--scope", help="Scope to ask for with every exchange (default: the key's).")
@click.option("--resource", help="RFC 8707 resource (audience) to ask for with every exchange.")
@click.option(
    "--max-age",
    type=click.FloatRange(min=0),
    help="Reuse a key's token for at most this many seconds (0: exchange on every call, "
    "a live owner check each time). Default: until shortly before it expires.",
)
@click.option(
    "--trusted-proxies",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="How many reverse proxies of yours stand in front of the shim; their "
    "X-Forwarded-For entries are kept and name the caller. 0: believe none.",
)
@click.option(
    "--unknown-key-limit",
    default=DEFAULT_GUESS_LIMIT,
    show_default=True,
    callback=_guess_limit,
    help="Unknown API keys one caller address may try (per worker process) before it is "
    "answered 429; keep it below the issuer's KEYSWAP_RATE_LIMIT_FAILURES. 'off': no limit.",
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=16, show_default=True)
def shim_command(
    listen: str,
    upstream: str,
    issuer: str,
    scope: str | None,
    resource: str | None,
    max_age: float | None,
    trusted_proxies: int,
    unknown_key_limit: str,
    workers: int,
    threads: int,
) -> None:
    """Proxy to --upstream, swapping X-API-Key (or Authorization: ApiKey) for a bearer token.

    A key the issuer refuses is answered with the issuer's status and JSON error; a caller
    that tried too many unknown keys gets 429 with Retry-After. Requests without a legacy
    key pass through unchanged. Keys are never logged.
    """
    host, port = _address(listen)
    exchanger = KeyExchanger.from_issuer(
        issuer,
        scope=scope,
        resource=resource,
        max_age=max_age,
        guess_limit=unknown_key_limit,
    )
    proxy = ShimProxy(upstream, exchanger, trusted_proxies=trusted_proxies)
    click.echo(f"keyswap shim on http://{host}:{port} -> {upstream} (issuer {issuer})", err=True)
    GunicornServer(
        proxy,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            # No access log: a query string could carry a key.
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "proc_name": "keyswap-shim",
            "control_socket_disable": True,
        },
    ).run()
