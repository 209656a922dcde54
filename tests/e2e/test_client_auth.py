"""Client authentication at every endpoint, over HTTP, with third-party clients.

A secret client's secret is accepted by client_secret_basic and by client_secret_post
alike at the token, revocation and introspection endpoints (CONTRACT.md); a private_key_jwt
client's assertion may name the issuer or the endpoint it is sent to, and a client_id
parameter must name its sub (RFC 7521 §4.2); malformed assertions are a clean 401.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import ECKey

from keyswap.issuer.cli import cli
from keyswap.issuer.db import transaction
from keyswap.issuer.lifecycle import add_user
from keyswap.issuer.models import AuthMethod

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GENERIC = {"error": "invalid_client", "error_description": "client authentication failed"}
ENDPOINTS = ("token", "revoke", "introspect")


def _url(live_issuer, endpoint):
    return f"{live_issuer.url}/oauth/{endpoint}"


def _form(live_issuer, creds, endpoint):
    """A valid request body for ``endpoint``: a token of the client's own to revoke or ask about."""
    if endpoint == "token":
        return {"grant_type": "client_credentials"}
    return {"token": live_issuer.token(creds).json()["access_token"]}


@pytest.mark.parametrize(
    "registered", [AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST]
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_secret_is_accepted_by_basic_and_by_post_at_every_endpoint(
    live_issuer, registered, endpoint
):
    creds = live_issuer.create_client(auth_method=registered, can_introspect=True)
    url = _url(live_issuer, endpoint)
    by_basic = requests.post(
        url,
        data=_form(live_issuer, creds, endpoint),
        auth=(creds.client_id, creds.client_secret),
        timeout=10,
    )
    assert by_basic.status_code == 200, by_basic.text
    by_post = requests.post(
        url,
        data={
            **_form(live_issuer, creds, endpoint),
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
        timeout=10,
    )
    assert by_post.status_code == 200, by_post.text


def test_openid_client_post_and_authlib_basic_revoke_for_the_same_client(live_issuer):
    creds = live_issuer.create_client()  # the demo client's registration: the default method
    revoke_url = _url(live_issuer, "revoke")
    # openid-client's default (client_secret_post): the secret in the form body.
    first = live_issuer.token(creds).json()["access_token"]
    response = requests.post(
        revoke_url,
        data={"token": first, "client_id": creds.client_id, "client_secret": creds.client_secret},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    # Authlib's revocation default (client_secret_basic).
    second = live_issuer.token(creds).json()["access_token"]
    with OAuth2Session(creds.client_id, creds.client_secret) as session:
        assert session.revocation_endpoint_auth_method == "client_secret_basic"
        response = session.revoke_token(revoke_url, token=second)
    assert response.status_code == 200, response.text
    introspector = live_issuer.create_client(can_introspect=True)
    for token in (first, second):
        answer = requests.post(
            _url(live_issuer, "introspect"),
            data={"token": token},
            auth=(introspector.client_id, introspector.client_secret),
            timeout=10,
        )
        assert answer.json() == {"active": False}


def test_wrong_secret_by_post_stays_generic(live_issuer):
    creds = live_issuer.create_client()
    response = requests.post(
        live_issuer.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": "not-the-secret",
        },
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json() == GENERIC


# --- private_key_jwt -----------------------------------------------------------------


@pytest.fixture
def key_client(live_issuer, tmp_path):
    """A private_key_jwt introspecting client registered through the CLI, and its key."""
    key = ECKey.generate_key("P-256", private=True)
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    with transaction(live_issuer.keyswap.sessions) as session:
        add_user(session, "signer-svc", tenant="acme", actor="test")
    result = live_issuer.app.test_cli_runner().invoke(
        cli,
        [
            "clients", "create", "--owner", "signer-svc", "--scope", "orders:read",
            "--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file),
            "--can-introspect", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["client_id"], key


def _session(client_id, key):
    """An Authlib client whose PrivateKeyJWT signs the URL it posts to as the aud."""
    session = OAuth2Session(
        client_id,
        key,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
    )
    session.register_client_auth_method(PrivateKeyJWT(alg="ES256"))
    return session


def test_authlib_private_key_jwt_revokes_and_introspects(live_issuer, key_client):
    client_id, key = key_client
    with _session(client_id, key) as session:
        token = session.fetch_token(live_issuer.token_url, grant_type="client_credentials")
        access_token = token["access_token"]
        live = session.introspect_token(_url(live_issuer, "introspect"), token=access_token)
        assert live.status_code == 200, live.text
        assert live.json()["active"] is True
        revoked = session.revoke_token(_url(live_issuer, "revoke"), token=access_token)
        assert revoked.status_code == 200, revoked.text
        after = session.introspect_token(_url(live_issuer, "introspect"), token=access_token)
    assert after.json() == {"active": False}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_assertion_for_the_issuer_identifier_works_at_every_endpoint(
    live_issuer, key_client, endpoint
):
    client_id, key = key_client
    token = _post_assertion(
        live_issuer, "token", private_key_jwt_sign(key, client_id, live_issuer.url, alg="ES256")
    ).json()["access_token"]
    form = {} if endpoint == "token" else {"token": token}
    assertion = private_key_jwt_sign(key, client_id, live_issuer.url, alg="ES256")
    response = _post_assertion(live_issuer, endpoint, assertion, **form)
    assert response.status_code == 200, response.text


def test_assertion_for_another_endpoint_of_another_server_is_refused(live_issuer, key_client):
    client_id, key = key_client
    assertion = private_key_jwt_sign(
        key, client_id, "https://elsewhere.example/oauth/revoke", alg="ES256"
    )
    response = _post_assertion(live_issuer, "revoke", assertion, token="x")
    assert response.status_code == 401
    assert response.json() == GENERIC


def _post_assertion(live_issuer, endpoint, assertion, **form):
    data = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **form}
    if endpoint == "token":
        data["grant_type"] = "client_credentials"
    return requests.post(_url(live_issuer, endpoint), data=data, timeout=10)


def test_client_id_other_than_the_assertion_sub_is_refused(live_issuer, key_client):
    client_id, key = key_client
    other = live_issuer.create_client()
    assertion = private_key_jwt_sign(key, client_id, live_issuer.token_url, alg="ES256")
    response = _post_assertion(live_issuer, "token", assertion, client_id=other.client_id)
    assert response.status_code == 401
    assert response.json() == GENERIC
    # The same assertion with the matching client_id (unused: the refusal came first) works.
    response = _post_assertion(live_issuer, "token", assertion, client_id=client_id)
    assert response.status_code == 200, response.text


def test_private_key_jwt_client_refuses_a_secret_at_revocation(live_issuer, key_client):
    client_id, _key = key_client
    response = requests.post(
        _url(live_issuer, "revoke"),
        data={"token": "x", "client_id": client_id, "client_secret": "anything"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json() == GENERIC


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("part", ["header", "payload"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_deeply_nested_assertion_json_is_invalid_client(live_issuer, key_client, part, endpoint):
    client_id, _key = key_client
    nested = b"[" * 3_000 + b"]" * 3_000  # deeper than Python's recursion limit
    header = _b64(json.dumps({"alg": "ES256"}).encode())
    claims = {"iss": client_id, "sub": client_id, "exp": int(time.time()) + 60}
    payload = _b64(json.dumps(claims).encode())
    if part == "header":
        header = _b64(nested)
    else:
        payload = _b64(nested)
    response = _post_assertion(live_issuer, endpoint, f"{header}.{payload}.c2ln", token="x")
    assert response.status_code == 401, response.text
    assert response.json() == GENERIC
