"""Fuzz the live server from its OpenAPI document (schemathesis): no 5xx, answers as documented.

Each operation is driven anonymously (schemathesis makes up any credentials) and as a real
introspecting client (HTTP Basic). The OAuth endpoints are driven a third way, with live
credentials put in place of the generated ones so the deeper paths run: a freshly issued
token (this client's or another's) to revoke or introspect, and a real legacy API key to
exchange. A stateful run then follows the document's links from an issued token to its
introspection and revocation. The checks are schemathesis' defaults: no server error,
documented status codes, content types, headers and body schemas, invalid data rejected,
other methods answered 405.
"""

from __future__ import annotations

import base64
import io
import secrets
from collections.abc import Iterator
from datetime import timedelta
from importlib.resources import files
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from keyswap.issuer.db import transaction, utcnow
from keyswap.issuer.grants.token_exchange import TOKEN_EXCHANGE_GRANT
from keyswap.issuer.legacy.importing import import_legacy_keys, parse_csv
from keyswap.issuer.legacy.usage import usage_for

from ..conftest import Creds, LiveIssuer

#: Bounded so the whole file runs in well under a minute.
MAX_EXAMPLES = 30

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "max-examples": MAX_EXAMPLES,
            # No example database: each run starts afresh, as it does in CI.
            "database": "none",
        },
        "checks": {
            # RFC 6749 §5.2: a well-formed request that asks for something the credential may
            # not have (an unknown scope, resource, API key) is a 400, so schema-valid data
            # cannot promise acceptance. Server errors are still failures (not_a_server_error).
            # Likewise a well-formed status list id that names no list is a 404.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "429"],
            },
        },
    }
)

schema = schemathesis.openapi.from_path(
    str(files("keyswap.issuer").joinpath("openapi.yaml")), config=CONFIG
)

# The tests reuse one client per operation (created by the function-scoped ``live_issuer``),
# not per example, so a function-scoped fixture is what they want.
FUZZ_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _basic(creds: Creds) -> dict[str, str]:
    token = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _use_live_credentials(case: schemathesis.Case[Any], api_key: str) -> None:
    """Make a generated body authenticate by Basic alone, and exchange a real API key."""
    body = case.body
    if not isinstance(body, dict):
        return
    # RFC 6749 §2.3: one authentication method per request, and Basic is the one sent here.
    for name in ("client_id", "client_secret", "client_assertion", "client_assertion_type"):
        body.pop(name, None)
    if body.get("grant_type") == TOKEN_EXCHANGE_GRANT:
        body["subject_token"] = api_key


@pytest.fixture
def introspector(live_issuer: LiveIssuer) -> Creds:
    """Return the credentials of a new client allowed to introspect."""
    return live_issuer.create_client(can_introspect=True)


@pytest.fixture
def api_key(live_issuer: LiveIssuer, introspector: Creds) -> Iterator[str]:
    """Import a legacy API key with a sunset date ahead, owned by the introspector's owner."""
    key = secrets.token_urlsafe(24)
    sunset = (utcnow() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    table = f"api_key,owner,scopes,sunset_at\n{key},{introspector.user},orders:read,{sunset}\n"
    with transaction(live_issuer.keyswap.sessions) as session:
        report = import_legacy_keys(
            session,
            live_issuer.keyswap.hasher,
            parse_csv(io.StringIO(table)),
            now=live_issuer.keyswap.clock(),
            actor="test",
        )
    assert report.ok, report.as_dict()
    yield key
    # Write the exchanges' usage counts now, while this run's database still exists.
    usage_for(live_issuer.app).flush()


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_conforms_to_its_document_anonymously(
    case: schemathesis.Case[Any], live_issuer: LiveIssuer
) -> None:
    case.call_and_validate(base_url=live_issuer.url)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_conforms_to_its_document_as_an_authenticated_client(
    case: schemathesis.Case[Any], live_issuer: LiveIssuer, introspector: Creds
) -> None:
    case.call_and_validate(base_url=live_issuer.url, headers=_basic(introspector))


@schema.include(path_regex=r"^/oauth/").parametrize()
@FUZZ_SETTINGS
def test_oauth_endpoints_conform_to_their_document_with_live_credentials(
    case: schemathesis.Case[Any], live_issuer: LiveIssuer, introspector: Creds, api_key: str
) -> None:
    _use_live_credentials(case, api_key)
    body = case.body
    generated = body.get("token") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(generated, str):
        # The generated value picks whose token it is, so a failing example replays the same way:
        # the caller's own token, or another client's (refused by revocation, RFC 7009 §2.1).
        owner = introspector if len(generated) % 2 == 0 else live_issuer.create_client()
        issued = live_issuer.token(owner)
        assert issued.status_code == 200, issued.text
        body["token"] = issued.json()["access_token"]
    case.call_and_validate(base_url=live_issuer.url, headers=_basic(introspector))


def test_token_then_introspect_or_revoke_conforms_to_the_document(
    live_issuer: LiveIssuer, introspector: Creds, api_key: str
) -> None:
    """Follow the document's links: issue a token, then introspect or revoke it (stateful)."""
    headers = _basic(introspector)

    class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case[Any]) -> None:
            if case.path == "/oauth/token" and isinstance(case.body, dict):
                _use_live_credentials(case, api_key)
                # The other tests fuzz these; here the point is a token to follow the links with.
                case.body.pop("scope", None)
                case.body.pop("resource", None)

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"base_url": live_issuer.url, "headers": headers}

    Scenarios.run(
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=4,
            deadline=None,
            database=None,
        )
    )
