"""TokenClient and Verifier refuse plain-http issuers and key URLs beyond this machine."""

from __future__ import annotations

import pytest

from keyswap.clients import IssuerUnavailable, TokenClient, TokenError, Verifier
from tests.jwks_servers import JwksServer, serve_json

METADATA = "/.well-known/oauth-authorization-server"
INSECURE = ["http://issuer.example", "http://10.0.0.8:8000", "http://[fd00::1]/tenant"]


@pytest.fixture
def remote():
    server = JwksServer()
    yield server
    server.close()


@pytest.mark.parametrize("url", INSECURE)
def test_token_client_refuses_http_issuer_or_token_url(url):
    with pytest.raises(ValueError, match="issuer must use https"):
        TokenClient.from_issuer(url, client_id="ks_a", client_secret="s")
    with pytest.raises(ValueError, match="token_url must use https"):
        TokenClient(f"{url}/oauth/token", client_id="ks_a", client_secret="s")
    with pytest.raises(ValueError, match="token_url must use https"):
        TokenClient.for_api_key("legacy-key", token_url=f"{url}/oauth/token")


@pytest.mark.parametrize("url", INSECURE)
def test_verifier_refuses_http_issuer_or_jwks_uri(url):
    with pytest.raises(ValueError, match="issuer must use https"):
        Verifier(url, "https://api.example")
    with pytest.raises(ValueError, match="jwks_uri must use https"):
        Verifier("https://issuer.example", "https://api.example", jwks_uri=f"{url}/jwks.json")


@pytest.mark.parametrize(
    "url", ["https://issuer.example", "http://127.0.0.1:8000", "http://localhost:8000"]
)
def test_https_and_loopback_http_are_accepted(url):
    assert TokenClient.from_issuer(url, client_id="ks_a", client_secret="s").issuer == url
    assert Verifier(url, "https://api.example", jwks_uri=f"{url}/jwks.json").issuer == url


def test_token_client_refuses_an_http_token_endpoint_from_metadata(remote):
    issuer = remote.url("")
    remote.routes[METADATA] = serve_json(
        {"issuer": issuer, "token_endpoint": "http://issuer.example/oauth/token"}
    )
    client = TokenClient.from_issuer(issuer, client_id="ks_a", client_secret="s")
    with pytest.raises(TokenError) as refused:
        client.get_token()
    assert refused.value.error == "invalid_metadata"
    assert "token_endpoint must use https" in str(refused.value)


def test_verifier_refuses_an_http_jwks_uri_from_metadata(remote):
    issuer = remote.url("")
    remote.routes[METADATA] = serve_json(
        {"issuer": issuer, "jwks_uri": "http://keys.example/jwks.json"}
    )
    verifier = Verifier(issuer, "https://api.example")
    with pytest.raises(IssuerUnavailable, match="jwks_uri must use https"):
        verifier.keys  # noqa: B018 - reading the metadata is the point
