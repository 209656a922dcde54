"""Unit tests of ``keyswap.issuer.metadata``: the RFC 8414 document lists only what is supported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from authlib.oauth2.rfc6749 import AuthorizationServer, grants
from sqlalchemy.exc import OperationalError

from keyswap.issuer.app import create_app
from keyswap.issuer.config import Settings
from keyswap.issuer.metadata import Discovery, Supported, build_metadata, metadata_bytes

#: The document for keyswap's own registration, byte for byte (scopes "b", "a").
DOCUMENT = (
    b'{"issuer":"https://issuer.example","token_endpoint":"https://issuer.example/oauth/token",'
    b'"jwks_uri":"https://issuer.example/jwks.json",'
    b'"revocation_endpoint":"https://issuer.example/oauth/revoke",'
    b'"revocation_endpoint_auth_methods_supported":'
    b'["client_secret_basic","client_secret_post","private_key_jwt"],'
    b'"introspection_endpoint":"https://issuer.example/oauth/introspect",'
    b'"introspection_endpoint_auth_methods_supported":'
    b'["client_secret_basic","client_secret_post","private_key_jwt"],'
    b'"grant_types_supported":["client_credentials",'
    b'"urn:ietf:params:oauth:grant-type:token-exchange",'
    b'"urn:ietf:params:oauth:grant-type:jwt-bearer"],'
    b'"token_endpoint_auth_methods_supported":'
    b'["client_secret_basic","client_secret_post","private_key_jwt"],'
    b'"token_endpoint_auth_signing_alg_values_supported":'
    b'["ES256","ES384","RS256","PS256","Ed25519","EdDSA"],'
    b'"scopes_supported":["a","b"],'
    b'"access_token_signing_alg_values_supported":["ES256","RS256","EdDSA"],'
    b'"status_list_aggregation_endpoint":"https://issuer.example/statuslists",'
    b'"service_documentation":"https://github.com/keyswap/keyswap#readme"}'
)


def _settings(tmp_path: Path, issuer: str = "https://issuer.example") -> Settings:
    return Settings(
        data_dir=tmp_path, database_url="sqlite://", key_encryption_key=bytes(32), issuer=issuer
    )


def _supported(tmp_path: Path) -> Supported:
    """What keyswap's own app registers."""
    return Supported.of(create_app(_settings(tmp_path)).extensions["keyswap"].server)


def test_metadata_is_derived_from_the_registration_byte_for_byte(tmp_path):
    assert metadata_bytes(_settings(tmp_path), _supported(tmp_path), ["b", "a"]) == DOCUMENT


def test_supported_follows_what_is_registered_on_the_server(tmp_path):
    class Grant(grants.ClientCredentialsGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_post", "none"]

    class Other(grants.BaseGrant, grants.TokenEndpointMixin):  # type: ignore[misc]
        GRANT_TYPE = "urn:example:grant"
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    server = AuthorizationServer()
    empty = Supported.of(server)
    assert empty == Supported((), (), (), ())
    assert empty.assertion_algorithms() == []
    server.register_grant(Grant)
    server.register_grant(Other)
    supported = Supported.of(server)
    assert supported.grant_types == ("client_credentials", "urn:example:grant")
    assert supported.token_auth_methods == ("client_secret_post", "none", "client_secret_basic")
    # No endpoint takes private_key_jwt: no assertion algorithms to list.
    document = build_metadata(_settings(tmp_path), supported)
    assert "token_endpoint_auth_signing_alg_values_supported" not in document
    assert "revocation_endpoint_auth_methods_supported" not in document


def test_metadata_endpoints_are_under_the_issuer(tmp_path):
    document = build_metadata(_settings(tmp_path), _supported(tmp_path))
    assert document["issuer"] == "https://issuer.example"
    assert document["token_endpoint"] == "https://issuer.example/oauth/token"
    assert document["jwks_uri"] == "https://issuer.example/jwks.json"
    assert document["revocation_endpoint"] == "https://issuer.example/oauth/revoke"
    assert document["introspection_endpoint"] == "https://issuer.example/oauth/introspect"


def test_metadata_lists_only_supported_grants_methods_and_algorithms(tmp_path):
    document = build_metadata(_settings(tmp_path), _supported(tmp_path))
    methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
    assert document["grant_types_supported"] == [
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ]
    assert document["token_endpoint_auth_methods_supported"] == methods
    assert document["revocation_endpoint_auth_methods_supported"] == methods
    assert document["introspection_endpoint_auth_methods_supported"] == methods
    # README: assertions signed with ES256, ES384, RS256, PS256 or EdDSA; never a MAC or none.
    assertion_algs = set(document["token_endpoint_auth_signing_alg_values_supported"])
    assert {"ES256", "ES384", "RS256", "PS256", "EdDSA"} <= assertion_algs
    assert not {a for a in assertion_algs if a.startswith("HS") or a.lower() == "none"}
    # RFC 8414 §3.2: members with zero elements are omitted (there is no authorization endpoint).
    assert "response_types_supported" not in document
    assert "scopes_supported" not in document
    assert "authorization_endpoint" not in document
    assert "client_secret_jwt" not in json.dumps(document)


def test_metadata_lists_are_copies(tmp_path):
    supported = _supported(tmp_path)
    first = build_metadata(_settings(tmp_path), supported)
    first["grant_types_supported"].append("password")
    assert "password" not in build_metadata(_settings(tmp_path), supported)["grant_types_supported"]


def test_metadata_bytes_is_the_document_as_compact_json(tmp_path):
    settings = _settings(tmp_path, "http://127.0.0.1:8000")
    supported = _supported(tmp_path)
    raw = metadata_bytes(settings, supported)
    assert json.loads(raw) == build_metadata(settings, supported)
    assert b" " not in raw


def test_scopes_are_listed_sorted_once(tmp_path):
    document = build_metadata(_settings(tmp_path), _supported(tmp_path), ["b", "a", "b"])
    assert document["scopes_supported"] == ["a", "b"]


def test_discovery_serves_the_last_document_while_the_database_is_down(tmp_path):

    now = [0.0]
    answers: list[object] = [["a"], OperationalError("select", {}, Exception("down")), ["a", "b"]]
    reads: list[object] = []

    def read_scopes():
        reads.append(answer := answers.pop(0))
        if isinstance(answer, Exception):
            raise answer
        return answer

    def down():
        raise OperationalError("select", {}, Exception("down"))

    server = AuthorizationServer()
    failing = Discovery(_settings(tmp_path), server, down)
    with pytest.raises(OperationalError):
        failing.document()  # nothing to fall back on: the 503 handler answers

    discovery = Discovery(_settings(tmp_path), server, read_scopes, ttl=10, clock=lambda: now[0])
    assert json.loads(discovery.document())["scopes_supported"] == ["a"]
    now[0] = 10
    assert json.loads(discovery.document())["scopes_supported"] == ["a"]  # read failed
    now[0] = 15
    assert json.loads(discovery.document())["scopes_supported"] == ["a"]  # no retry yet
    assert len(reads) == 2
    now[0] = 20
    assert json.loads(discovery.document())["scopes_supported"] == ["a", "b"]
