"""``keyswap clients``: register clients, list them, disable and enable them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TextIO

import click
from cryptography.hazmat.primitives import serialization
from flask.cli import AppGroup

from keyswap.jwks import ALGORITHMS, generate_key

from ..context import current_keyswap
from ..lifecycle import (
    InvalidValue,
    disable_client,
    enable_client,
    register_client,
    rotate_secret,
)
from ..models import AuthMethod
from ..representations import client_view
from ..storage import list_clients
from .context import actor, now, session
from .output import json_option

group = AppGroup("clients", help="Manage OAuth clients.")

AUTH_METHODS = [m.value for m in AuthMethod]


@group.command("create")
@click.option("--owner", required=True, help="The user or service account that owns it.")
@click.option("--scope", required=True, help='Allowed scopes, space separated: "a b".')
@click.option("--audience", "audiences", multiple=True, help="An allowed audience (repeatable).")
@click.option("--token-ttl", type=click.IntRange(min=1), help="Token lifetime in seconds.")
@click.option(
    "--auth-method",
    type=click.Choice(AUTH_METHODS),
    default=AuthMethod.CLIENT_SECRET_BASIC.value,
    show_default=True,
    help="private_key_jwt (RFC 7523) is the recommended method: no shared secret.",
)
@click.option(
    "--jwks-file",
    type=click.File("r"),
    help="The client's public JWK Set (JSON), for private_key_jwt.",
)
@click.option("--jwks-uri", help="Where to fetch the client's public JWK Set, for private_key_jwt.")
@click.option("--can-introspect", is_flag=True, help="May call the introspection endpoint.")
@click.option(
    "--any-tenant",
    is_flag=True,
    help="With --can-introspect: may introspect every tenant's tokens, not only its own.",
)
@click.option("--secret-ttl", type=click.IntRange(min=1), help="Secret lifetime in seconds.")
@json_option
def clients_create(
    owner: str,
    scope: str,
    audiences: tuple[str, ...],
    token_ttl: int | None,
    auth_method: str,
    jwks_file: TextIO | None,
    jwks_uri: str | None,
    can_introspect: bool,
    any_tenant: bool,
    secret_ttl: int | None,
) -> dict[str, Any]:
    """Register a client; its secret (if it has one) is printed once and never again."""
    keyswap = current_keyswap()
    jwks = None
    if jwks_file is not None:
        try:
            jwks = json.load(jwks_file)
        except ValueError as exc:
            raise InvalidValue(f"--jwks-file is not JSON: {exc}") from None
    with session() as s:
        created = register_client(
            s,
            keyswap.hasher,
            owner=owner,
            scope=scope,
            audiences=audiences,
            token_ttl=token_ttl,
            max_token_ttl=keyswap.settings.max_token_ttl,
            auth_method=AuthMethod(auth_method),
            jwks=jwks,
            jwks_uri=jwks_uri,
            can_introspect=can_introspect,
            any_tenant=any_tenant,
            secret_ttl=secret_ttl,
            allow_private_jwks_uri=keyswap.settings.outbound_allow_private,
            now=now(),
            actor=actor(),
        )
        return {
            "client_id": created.client.id,
            "client_secret": created.secret,
            **{k: v for k, v in client_view(created.client, now()).items() if k != "client_id"},
        }


def _write_new_file(path: Path, text: str, mode: int) -> None:
    # O_EXCL: never overwrite a key a client may already use; the mode is set at creation,
    # so the private key is never readable by others, not even for an instant.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise InvalidValue(f"{path} already exists; choose another file") from None
    except OSError as exc:
        raise InvalidValue(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


@group.command("keygen", with_appcontext=False)
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--alg",
    type=click.Choice(ALGORITHMS),
    default="ES256",
    show_default=True,
    help="Signing algorithm of the client's assertions.",
)
@click.option(
    "--jwks-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the public JWK Set [default: KEY_FILE with .jwks.json].",
)
@json_option
def clients_keygen(key_file: Path, alg: str, jwks_file: Path | None) -> dict[str, Any]:
    """Make a private_key_jwt key pair: KEY_FILE (PEM, mode 0600) and its public JWK Set.

    Register the JWK Set with `clients create --auth-method private_key_jwt --jwks-file`;
    the private key stays with the client and signs its assertions (RFC 7523).
    """
    jwks_file = jwks_file or key_file.with_suffix(".jwks.json")
    pair = generate_key(alg)
    pem = pair.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    jwks = {"keys": [dict(pair.public_jwk)]}
    if jwks_file.exists():  # checked first, so no private key is left without its JWK Set
        raise InvalidValue(f"{jwks_file} already exists; choose another file")
    _write_new_file(key_file, pem, 0o600)
    _write_new_file(jwks_file, json.dumps(jwks, indent=2) + "\n", 0o644)
    return {
        "private_key_file": str(key_file),
        "jwks_file": str(jwks_file),
        "alg": alg,
        "kid": pair.kid,
    }


@group.command("list")
@json_option
def clients_list() -> list[dict[str, Any]]:
    """List every client."""
    at = now()
    with session() as s:
        return [client_view(c, at) for c in list_clients(s)]


@group.command("disable")
@click.argument("client_id")
@click.option("--reason", help="Why, for the audit log.")
@json_option
def clients_disable(client_id: str, reason: str | None) -> dict[str, Any]:
    """Disable CLIENT_ID: its credentials are refused from now on."""
    with session() as s:
        client = disable_client(s, client_id, now=now(), actor=actor(), reason=reason)
        return client_view(client, now())


@group.command("enable")
@click.argument("client_id")
@click.option("--reason", help="Why, for the audit log.")
@json_option
def clients_enable(client_id: str, reason: str | None) -> dict[str, Any]:
    """Enable CLIENT_ID again: new tokens only; tokens from before stay revoked."""
    with session() as s:
        return client_view(enable_client(s, client_id, actor=actor(), reason=reason), now())


@group.command("rotate-secret")
@click.argument("client_id")
@click.option(
    "--grace",
    type=click.IntRange(min=0),
    default=86400,
    show_default=True,
    help="Seconds the current secrets keep working.",
)
@click.option("--secret-ttl", type=click.IntRange(min=1), help="New secret's lifetime in seconds.")
@json_option
def clients_rotate_secret(client_id: str, grace: int, secret_ttl: int | None) -> dict[str, Any]:
    """Issue a new secret for CLIENT_ID (printed once); old ones expire after the grace."""
    keyswap = current_keyswap()
    with session() as s:
        client, secret, old_until = rotate_secret(
            s,
            keyswap.hasher,
            client_id,
            grace=grace,
            secret_ttl=secret_ttl,
            now=now(),
            actor=actor(),
        )
        return {"client_id": client.id, "client_secret": secret, "old_secrets_expire_at": old_until}
