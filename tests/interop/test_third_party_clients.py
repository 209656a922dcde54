"""Tokens obtained and verified by libraries keyswap did not write (Authlib, requests-oauthlib,
PyJWT's PyJWKClient, joserfc), over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session as RequestsOAuthlibSession

REQUIRED = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "tenant"]


def _verify_with_pyjwkclient(live_issuer, token: str, audience: str) -> dict[str, Any]:
    jwks_client = PyJWKClient_for(live_issuer)
    signing_key = jwks_client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=["ES256"],
        audience=audience,
        issuer=live_issuer.url,
        options={"require": REQUIRED},
    )


def PyJWKClient_for(live_issuer) -> jwt.PyJWKClient:  # noqa: N802 - reads like the class
    metadata = requests.get(
        f"{live_issuer.url}/.well-known/oauth-authorization-server", timeout=10
    ).json()
    return jwt.PyJWKClient(metadata["jwks_uri"])


def test_authlib_client_token_verifies_with_pyjwkclient_every_claim(live_issuer):
    creds = live_issuer.create_client(user="billing-svc", tenant="acme", token_ttl=120)
    before = int(time.time())
    with OAuth2Session(
        creds.client_id,
        creds.client_secret,
        scope="orders:read",
        token_endpoint_auth_method="client_secret_basic",
    ) as session:
        token = session.fetch_token(live_issuer.token_url, grant_type="client_credentials")
    after = int(time.time())

    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 120
    assert token["scope"] == "orders:read"
    header = jwt.get_unverified_header(token["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    claims = _verify_with_pyjwkclient(live_issuer, token["access_token"], live_issuer.url)
    assert claims["iss"] == live_issuer.url
    assert claims["sub"] == live_issuer.user_id("billing-svc")
    assert claims["aud"] == live_issuer.url
    assert claims["client_id"] == creds.client_id
    assert claims["scope"] == "orders:read"
    assert claims["tenant"] == "acme"
    assert before <= claims["iat"] <= after
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] == claims["iat"] + 120
    assert len(claims["jti"]) >= 16
    assert header["kid"] in {
        k["kid"] for k in requests.get(live_issuer.jwks_url, timeout=10).json()["keys"]
    }


def test_client_secret_post_with_requests_oauthlib(live_issuer, monkeypatch):
    from keyswap.issuer.models import AuthMethod

    # oauthlib refuses plain http even on loopback unless told; the test server has no TLS.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    creds = live_issuer.create_client(
        auth_method=AuthMethod.CLIENT_SECRET_POST, audience=["https://orders.example"]
    )
    session = RequestsOAuthlibSession(client=BackendApplicationClient(client_id=creds.client_id))
    token = session.fetch_token(
        live_issuer.token_url,
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        include_client_id=True,
    )
    session.close()
    claims = _verify_with_pyjwkclient(live_issuer, token["access_token"], "https://orders.example")
    assert claims["client_id"] == creds.client_id
    assert claims["scope"] == "orders:read orders:write"


def test_joserfc_verifies_the_token_independently(live_issuer):
    creds = live_issuer.create_client()
    body = live_issuer.token(creds, scope="orders:write").json()
    key_set = KeySet.import_key_set(requests.get(live_issuer.jwks_url, timeout=10).json())
    decoded = jose_jwt.decode(body["access_token"], key_set, algorithms=["ES256"])
    assert decoded.header["typ"] == "at+jwt"
    registry = jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": live_issuer.url},
        aud={"essential": True, "value": live_issuer.url},
        sub={"essential": True},
        jti={"essential": True},
    )
    registry.validate(decoded.claims)
    assert decoded.claims["scope"] == "orders:write"


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
)
def test_discovery_points_verifiers_at_the_jwks(live_issuer, path):
    metadata = requests.get(live_issuer.url + path, timeout=10).json()
    assert metadata["issuer"] == live_issuer.url
    assert metadata["token_endpoint"] == live_issuer.token_url
    assert metadata["jwks_uri"] == live_issuer.jwks_url
    assert metadata["grant_types_supported"] == [
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    }
    assert metadata["revocation_endpoint"] == f"{live_issuer.url}/oauth/revoke"
    assert metadata["introspection_endpoint"] == f"{live_issuer.url}/oauth/introspect"
