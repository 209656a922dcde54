"""``keyswap federation``: trust external issuers' workload tokens (RFC 7523 jwt-bearer)."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import AppGroup

from ..context import current_keyswap
from ..federation import add_trust, list_trusts, remove_trust, trust_view
from ..lifecycle import InvalidValue
from .context import actor, now, session
from .output import json_option

group = AppGroup(
    "federation", help="Trust workload tokens from GitHub, GitLab, Kubernetes, SPIFFE."
)


def _claims(pairs: tuple[str, ...]) -> dict[str, str]:
    claims: dict[str, str] = {}
    for pair in pairs:
        name, sep, glob = pair.partition("=")
        if not sep:
            raise InvalidValue(f"--claim {pair!r} must be NAME=GLOB")
        if name in claims:
            raise InvalidValue(f"--claim {name} is given twice")
        claims[name] = glob
    return claims


@group.command("add")
@click.option("--issuer", required=True, help="The tokens' exact `iss`.")
@click.option("--service-account", required=True, help="The service account tokens are for.")
@click.option("--jwks-uri", help="The issuer's JWK Set (default: from its OIDC discovery).")
@click.option("--audience", help="The `aud` tokens must carry (default: keyswap's issuer URL).")
@click.option("--subject", help="Glob the token's `sub` must match.")
@click.option(
    "--claim", "claims", multiple=True, help="NAME=GLOB a claim must match (nested: a/b)."
)
@click.option("--scope", default="", help="Scopes the issued tokens may carry (space separated).")
@click.option("--resource", "resources", multiple=True, help="An `aud` issued tokens may carry.")
@click.option("--token-ttl", type=int, help="Lifetime of the issued tokens (seconds).")
@json_option
def federation_add(
    issuer: str,
    service_account: str,
    jwks_uri: str | None,
    audience: str | None,
    subject: str | None,
    claims: tuple[str, ...],
    scope: str,
    resources: tuple[str, ...],
    token_ttl: int | None,
) -> dict[str, Any]:
    """Trust ISSUER's tokens that match the conditions, as SERVICE_ACCOUNT."""
    settings = current_keyswap().settings
    with session() as s:
        trust = add_trust(
            s,
            issuer=issuer,
            service_account=service_account,
            jwks_uri=jwks_uri,
            audience=audience,
            subject=subject,
            claims=_claims(claims),
            scope=scope,
            resources=resources,
            token_ttl=token_ttl,
            max_token_ttl=settings.max_token_ttl,
            allow_private=settings.outbound_allow_private,
            actor=actor(),
        )
        return trust_view(trust)


@group.command("list")
@json_option
def federation_list() -> list[dict[str, Any]]:
    """List the trusts."""
    with session() as s:
        return [trust_view(trust) for trust in list_trusts(s)]


@group.command("remove")
@click.argument("trust_id")
@click.option("--reason", help="Why, for the audit log.")
@json_option
def federation_remove(trust_id: str, reason: str | None) -> dict[str, Any]:
    """Stop trusting TRUST_ID; tokens issued through it turn inactive."""
    with session() as s:
        return trust_view(remove_trust(s, trust_id, now=now(), actor=actor(), reason=reason))
