"""TokenClient with each credential: client_secret_post, private_key_jwt (PEM and JWK, RFC 7523)
and a legacy API key exchanged through RFC 8693, with the cache reusable per key hash."""

from __future__ import annotations

import hashlib
import io
import json
import secrets

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from keyswap.clients import TokenCache, TokenClient, TokenRefused
from keyswap.clients.client_assertion import AssertionSigner
from keyswap.issuer.cli import cli
from keyswap.issuer.db import transaction
from keyswap.issuer.legacy.importing import import_legacy_keys, parse_csv
from keyswap.issuer.legacy.usage import usage_for
from keyswap.issuer.lifecycle import add_user
from keyswap.issuer.models import AuthMethod, UserKind

from .token_servers import tokens_issued

ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


def _claims(token):
    return jwt.decode(token.access_token, options={"verify_signature": False})


def _user(live_issuer, name):
    with transaction(live_issuer.keyswap.sessions) as session:
        add_user(session, name, tenant="acme", kind=UserKind.SERVICE_ACCOUNT, actor="test")


def test_client_secret_post_gets_a_token(live_issuer):
    creds = live_issuer.create_client(auth_method=AuthMethod.CLIENT_SECRET_POST)
    client = TokenClient(
        live_issuer.token_url,
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        auth_method="client_secret_post",
    )
    assert _claims(client.get_token())["client_id"] == creds.client_id


# --- private_key_jwt -----------------------------------------------------------------


def _key_client(live_issuer, tmp_path, public_jwk):
    """Register a private_key_jwt client through the CLI with ``public_jwk``; return its id."""
    _user(live_issuer, "signer-svc")
    jwks_file = tmp_path / "client-jwks.json"
    jwks_file.write_text(json.dumps({"keys": [public_jwk]}))
    result = live_issuer.app.test_cli_runner().invoke(
        cli,
        [
            "clients", "create", "--owner", "signer-svc", "--scope", "orders:read",
            "--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["client_id"]


def test_private_key_jwt_with_a_pem_key_gets_tokens(live_issuer, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    client_id = _key_client(live_issuer, tmp_path, ECAlgorithm.to_jwk(key.public_key(), True))
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    client = TokenClient.from_issuer(live_issuer.url, client_id=client_id, private_key=pem)
    assert client.auth_method == "private_key_jwt"
    first = client.fetch_token()
    # A second request signs a new assertion: the issuer refuses a replayed jti.
    second = client.fetch_token()
    assert _claims(first)["client_id"] == _claims(second)["client_id"] == client_id
    assert _claims(first)["sub"] == live_issuer.user_id("signer-svc")


def test_private_key_jwt_with_a_jwk_gets_a_token(live_issuer, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = {**RSAAlgorithm.to_jwk(key.public_key(), True), "kid": "signer-1"}
    client_id = _key_client(live_issuer, tmp_path, public)
    private = {**RSAAlgorithm.to_jwk(key, True), "kid": "signer-1"}
    client = TokenClient(live_issuer.token_url, client_id=client_id, private_key=private)
    assert _claims(client.get_token())["scope"] == "orders:read"


def test_client_assertion_claims_follow_rfc_7523():
    key = ec.generate_private_key(ec.SECP384R1())
    signer = AssertionSigner("ks_abc", {**ECAlgorithm.to_jwk(key, True), "kid": "k1"})
    assertion = signer.sign("https://auth.example/oauth/token")
    header = jwt.get_unverified_header(assertion)
    claims = jwt.decode(
        assertion,
        key.public_key(),
        algorithms=["ES384"],
        audience="https://auth.example/oauth/token",
    )
    assert (header["alg"], header["kid"]) == ("ES384", "k1")
    assert claims["iss"] == claims["sub"] == "ks_abc"
    assert claims["exp"] - claims["iat"] == 60
    assert signer.sign("https://auth.example/oauth/token") != assertion  # fresh jti


def test_public_jwk_is_refused_as_a_private_key():
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValueError, match="no private key"):
        AssertionSigner("ks_abc", ECAlgorithm.to_jwk(key.public_key(), True))


# --- legacy key exchange (RFC 8693) --------------------------------------------------


@pytest.fixture
def legacy_key(live_issuer):
    """Import one legacy key for a new owner; return (clear key, key id, owner)."""
    usage_for(live_issuer.app).flush()
    _user(live_issuer, "billing-svc")
    api_key = "sk_" + secrets.token_urlsafe(24)
    csv_text = f"api_key,owner,scopes\n{api_key},billing-svc,orders:read orders:write\n"
    with transaction(live_issuer.keyswap.sessions) as session:
        report = import_legacy_keys(
            session,
            live_issuer.keyswap.hasher,
            parse_csv(io.StringIO(csv_text)),
            now=live_issuer.keyswap.clock(),
            actor="test",
        )
    assert report.ok, report.as_dict()
    yield api_key, report.results[0].key_id, "billing-svc"
    # Write pending usage counts now, while this test's database still exists.
    usage_for(live_issuer.app).flush()


def test_legacy_key_is_exchanged_and_cached(live_issuer, legacy_key):
    api_key, key_id, _owner = legacy_key
    before = tokens_issued(live_issuer.url)
    client = TokenClient.for_api_key(api_key, issuer=live_issuer.url)
    token = client.get_token(scope="orders:read")
    assert client.get_token(scope="orders:read") is token
    assert tokens_issued(live_issuer.url) - before == 1
    assert token.issued_token_type == ACCESS_TOKEN
    claims = _claims(token)
    assert claims["client_id"] == f"legacy:{key_id}"
    assert claims["scope"] == "orders:read"


def test_legacy_key_refusal_is_told_verbatim(live_issuer, legacy_key):
    api_key, _key_id, owner = legacy_key
    live_issuer.set_user_status(owner, "suspended")
    client = TokenClient.for_api_key(api_key, token_url=live_issuer.token_url)
    with pytest.raises(TokenRefused) as caught:
        client.get_token()
    assert caught.value.error == "invalid_request"
    assert caught.value.description == "the user associated with this key is suspended"
    assert caught.value.status == 400
    assert api_key not in str(caught.value)


def test_unknown_legacy_key_is_refused(live_issuer):
    client = TokenClient(live_issuer.token_url)
    with pytest.raises(TokenRefused) as caught:
        client.exchange_api_key("sk_" + secrets.token_urlsafe(24))
    assert (caught.value.error, caught.value.description) == ("invalid_request", "unknown API key")


def test_exchange_and_cache_are_reusable_per_key_hash(live_issuer, legacy_key):
    """What the legacy-key shim does: one client, one cache, keyed by the key's hash."""
    api_key, key_id, _owner = legacy_key
    client = TokenClient(live_issuer.token_url)  # no client credentials: the key is one
    cache = TokenCache()
    key = (hashlib.sha256(api_key.encode()).hexdigest(), None, None)
    before = tokens_issued(live_issuer.url)
    tokens = {cache.get(key, lambda: client.exchange_api_key(api_key)) for _ in range(5)}
    assert len(tokens) == 1
    assert tokens_issued(live_issuer.url) - before == 1
    assert _claims(tokens.pop())["client_id"] == f"legacy:{key_id}"
