"""keyswap.clients.Verifier against a live issuer over HTTP: RFC 9068 checks and RFC 8725
attacks."""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyswap.clients import (
    ExpiredToken,
    InvalidToken,
    IssuerUnavailable,
    Principal,
    TokenRefused,
    UnknownKey,
    Verifier,
)
from keyswap.clients.verifier import REQUIRED_CLAIMS
from keyswap.issuer.cli import cli

from ..e2e.test_key_rotation import Clock as AppClock


class CountingSession(requests.Session):
    """A real requests session that counts the requests it sends, by method and URL."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: collections.Counter[tuple[str, str]] = collections.Counter()
        self._count_lock = threading.Lock()

    def request(self, method, url, *args, **kwargs):
        with self._count_lock:
            self.sent[(method.upper(), url)] += 1
        return super().request(method, url, *args, **kwargs)

    def gets(self, url: str) -> int:
        return self.sent[("GET", url)]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, object], claims: dict[str, object]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _token(issuer, creds, **form):
    response = issuer.token(creds, **form)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _claims(issuer, **changes):
    now = int(time.time())
    claims = {
        "iss": issuer.url,
        "sub": "usr_test",
        "aud": issuer.url,
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": uuid.uuid4().hex,
        "client_id": "ks_test",
        "scope": "orders:read",
        "tenant": "acme",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(issuer, claims, typ="at+jwt"):
    """Sign ``claims`` with the issuer's real signing key (a token it could have issued)."""
    return issuer.keyswap.keyring.signer().sign(claims, typ=typ)


@pytest.fixture
def session():
    with CountingSession() as counting:
        yield counting


@pytest.fixture
def verifier(live_issuer, session):
    return Verifier(live_issuer.url, live_issuer.url, session=session)


def test_verify_accepts_token_from_live_issuer(live_issuer, verifier):
    creds = live_issuer.create_client(scope="orders:read orders:write")
    principal = verifier.verify(_token(live_issuer, creds))
    assert principal.sub == live_issuer.user_id(creds.user)
    assert principal.client_id == creds.client_id
    assert principal.tenant == creds.tenant
    assert principal.scopes == frozenset({"orders:read", "orders:write"})
    assert principal.claims["iss"] == live_issuer.url
    assert principal.legacy_key is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        principal.sub = "someone else"
    with pytest.raises(TypeError):
        principal.claims["sub"] = "someone else"


def test_verify_reads_metadata_and_jwks_once_for_many_tokens(live_issuer, verifier, session):
    creds = live_issuer.create_client()
    tokens = [_token(live_issuer, creds) for _ in range(3)]
    for token in tokens * 5:
        assert verifier.verify(token).client_id == creds.client_id
    assert session.gets(f"{live_issuer.url}/.well-known/oauth-authorization-server") == 1
    assert session.gets(live_issuer.jwks_url) == 1


def test_verify_accepts_resource_audience_and_legacy_claim(live_issuer, session):
    creds = live_issuer.create_client(audience=["https://orders.example"])
    verifier = Verifier(live_issuer.url, ["https://other.example", "https://orders.example"])
    assert verifier.verify(_token(live_issuer, creds)).client_id == creds.client_id
    exchanged = _signed(
        live_issuer, _claims(live_issuer, aud="https://orders.example", ks_legacy_key="lk_1")
    )
    assert verifier.verify(exchanged).legacy_key == "lk_1"


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
def test_verify_accepts_typ_case_insensitively(live_issuer, verifier, typ):
    assert verifier.verify(_signed(live_issuer, _claims(live_issuer), typ=typ)).sub == "usr_test"


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt2", "application/jwt"])
def test_verify_rejects_token_with_wrong_typ(live_issuer, verifier, typ):
    with pytest.raises(InvalidToken, match="typ must be at\\+jwt"):
        verifier.verify(_signed(live_issuer, _claims(live_issuer), typ=typ))


def test_verify_rejects_token_without_typ(live_issuer, verifier):
    pair = live_issuer.keyswap.keyring.signer()
    token = jwt.encode(_claims(live_issuer), pair.private_key, pair.alg, headers={"kid": pair.kid})
    with pytest.raises(InvalidToken, match="typ"):
        verifier.verify(token)


def test_verify_rejects_alg_none(live_issuer, verifier):
    kid = live_issuer.keyswap.keyring.signer().kid
    for alg in ("none", "None", "NONE"):
        token = _unsigned({"alg": alg, "typ": "at+jwt", "kid": kid}, _claims(live_issuer)) + "."
        with pytest.raises(InvalidToken, match="algorithm does not match"):
            verifier.verify(token)


@pytest.mark.parametrize("secret_form", ["pem", "jwk_json", "der"])
@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_verify_rejects_hmac_signed_with_public_key(live_issuer, verifier, secret_form, alg):
    pair = live_issuer.keyswap.keyring.signer()
    public = pair.private_key.public_key()
    secret = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk_json": json.dumps(dict(pair.public_jwk)).encode(),
    }[secret_form]
    signing_input = _unsigned({"alg": alg, "typ": "at+jwt", "kid": pair.kid}, _claims(live_issuer))
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    with pytest.raises(InvalidToken, match="algorithm does not match"):
        verifier.verify(f"{signing_input}.{_b64(signature)}")


def test_verify_rejects_header_alg_other_than_the_keys(live_issuer, verifier):
    pair = live_issuer.keyswap.keyring.signer()
    _, body, signature = pair.sign(_claims(live_issuer), typ="at+jwt").split(".")
    for alg in ("ES384", "RS256", "PS256", "EdDSA"):
        header = _b64(json.dumps({"alg": alg, "kid": pair.kid, "typ": "at+jwt"}).encode())
        with pytest.raises(InvalidToken, match="algorithm does not match"):
            verifier.verify(f"{header}.{body}.{signature}")


def _attacker_token(issuer, kid):
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(_claims(issuer), key, "ES256", headers={"kid": kid, "typ": "at+jwt"})


def test_verify_rejects_token_signed_by_key_not_in_jwks(live_issuer, verifier):
    with pytest.raises(UnknownKey):
        verifier.verify(_attacker_token(live_issuer, uuid.uuid4().hex))


def test_verify_rejects_foreign_key_claiming_real_kid(live_issuer, verifier):
    real_kid = live_issuer.keyswap.keyring.signer().kid
    with pytest.raises(InvalidToken, match="signature is invalid"):
        verifier.verify(_attacker_token(live_issuer, real_kid))


def test_unknown_kid_flood_fetches_jwks_at_most_once_per_interval(live_issuer, session):
    clock = Clock()
    verifier = Verifier(
        live_issuer.url, live_issuer.url, session=session, min_refresh_interval=10, clock=clock
    )
    forged = [_attacker_token(live_issuer, uuid.uuid4().hex) for _ in range(100)]
    for token in forged:
        with pytest.raises(UnknownKey):
            verifier.verify(token)
    assert session.gets(live_issuer.jwks_url) == 1
    clock.now += 10
    for token in forged:
        with pytest.raises(UnknownKey):
            verifier.verify(token)
    assert session.gets(live_issuer.jwks_url) == 2
    assert verifier.keys.fetches == 2


def test_unknown_kid_flood_from_many_threads_fetches_jwks_once(live_issuer, session):
    verifier = Verifier(live_issuer.url, live_issuer.url, session=session)
    forged = [_attacker_token(live_issuer, uuid.uuid4().hex) for _ in range(8)]
    barrier = threading.Barrier(len(forged))
    outcomes = []

    def attack(token: str) -> None:
        barrier.wait()
        for _ in range(10):
            try:
                verifier.verify(token)
            except UnknownKey as exc:
                outcomes.append(exc)

    threads = [threading.Thread(target=attack, args=(t,)) for t in forged]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 80
    assert session.gets(live_issuer.jwks_url) == 1
    assert session.gets(f"{live_issuer.url}/.well-known/oauth-authorization-server") == 1


def test_verify_rejects_expired_token(live_issuer, verifier):
    now = int(time.time())
    token = _signed(live_issuer, _claims(live_issuer, iat=now - 400, nbf=now - 400, exp=now - 31))
    with pytest.raises(ExpiredToken, match="expired"):
        verifier.verify(token)


def test_verify_accepts_expiry_within_leeway(live_issuer, verifier):
    now = int(time.time())
    token = _signed(live_issuer, _claims(live_issuer, iat=now - 400, nbf=now - 400, exp=now - 5))
    assert verifier.verify(token).sub == "usr_test"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_verify_rejects_token_not_yet_valid(live_issuer, verifier, claim):
    token = _signed(live_issuer, _claims(live_issuer, **{claim: int(time.time()) + 120}))
    with pytest.raises(InvalidToken, match="not valid yet"):
        verifier.verify(token)


def test_verify_rejects_wrong_issuer(live_issuer, verifier):
    for iss in ("https://evil.example", live_issuer.url + "/", live_issuer.url.upper()):
        with pytest.raises(InvalidToken):
            verifier.verify(_signed(live_issuer, _claims(live_issuer, iss=iss)))


def test_verify_rejects_wrong_audience(live_issuer, verifier):
    token = _signed(live_issuer, _claims(live_issuer, aud="https://other.example"))
    with pytest.raises(InvalidToken, match="not meant for this audience"):
        verifier.verify(token)
    assert verifier.verify(token, audience="https://other.example").sub == "usr_test"


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_verify_rejects_token_missing_required_claim(live_issuer, verifier, claim):
    token = _signed(live_issuer, _claims(live_issuer, **{claim: None}))
    with pytest.raises(InvalidToken, match=f"lacks the {claim} claim"):
        verifier.verify(token)


@pytest.mark.parametrize(
    "changes", [{"sub": 42}, {"client_id": 7}, {"scope": ["orders:read"]}, {"tenant": 1}]
)
def test_verify_rejects_claims_of_wrong_type(live_issuer, verifier, changes):
    with pytest.raises(InvalidToken):
        verifier.verify(_signed(live_issuer, _claims(live_issuer, **changes)))


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.e30.", "e30.e30.e30"])
def test_verify_rejects_malformed_token(verifier, token):
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_jwks_cache_honours_max_age(live_issuer, session):
    clock = Clock()
    verifier = Verifier(live_issuer.url, live_issuer.url, session=session, clock=clock)
    token = _token(live_issuer, live_issuer.create_client())
    max_age = live_issuer.keyswap.settings.jwks_max_age
    verifier.verify(token)
    assert session.gets(live_issuer.jwks_url) == 1
    clock.now += max_age - 1
    verifier.verify(token)
    assert session.gets(live_issuer.jwks_url) == 1
    clock.now += 2
    verifier.verify(token)
    assert session.gets(live_issuer.jwks_url) == 2
    # Within the new max-age the cache is fresh again.
    clock.now += max_age - 1
    verifier.verify(token)
    assert session.gets(live_issuer.jwks_url) == 2


def test_jwks_cache_keeps_keys_while_issuer_is_down(isolated_issuer):
    issuer = isolated_issuer()
    clock = Clock()
    verifier = Verifier(issuer.url, issuer.url, clock=clock)
    token = _token(issuer, issuer.create_client())
    verifier.verify(token)
    issuer.live.server.shutdown()
    issuer.live.server.server_close()
    clock.now += issuer.keyswap.settings.jwks_max_age + 1
    assert verifier.verify(token).sub  # stale keys, within stale_if_error
    clock.now += 3600
    with pytest.raises(IssuerUnavailable):
        verifier.verify(token)


def test_verifier_fetches_new_key_after_rotation(isolated_issuer):
    app_clock = AppClock()
    issuer = isolated_issuer(app_clock, key_prepublish=0, key_refresh_interval=0)
    clock = Clock()
    session = CountingSession()
    verifier = Verifier(issuer.url, issuer.url, session=session, clock=clock)
    creds = issuer.create_client()
    old_token = _token(issuer, creds)
    assert verifier.verify(old_token).client_id == creds.client_id

    rotated = issuer.app.test_cli_runner().invoke(cli, ["keys", "rotate", "--json"])
    assert rotated.exit_code == 0, rotated.output
    app_clock.advance(issuer.keyswap.settings.rotation_schedule.settle.total_seconds())
    issuer.keyswap.maintenance.run_once()  # the server's loop promotes the settled key
    new_token = _token(issuer, creds)
    assert jwt.get_unverified_header(new_token)["kid"] == json.loads(rotated.stdout)["kid"]
    clock.now += 10  # past the minimum refresh interval since the first fetch
    assert verifier.verify(new_token).client_id == creds.client_id
    assert verifier.verify(old_token).client_id == creds.client_id
    assert session.gets(issuer.jwks_url) == 2
    session.close()


def test_verify_cached_needs_no_network(live_issuer, verifier, session):
    token = _token(live_issuer, live_issuer.create_client())
    assert verifier.verify_cached(token) is None
    assert sum(session.sent.values()) == 0
    verifier.verify(token)
    sent = sum(session.sent.values())
    principal = verifier.verify_cached(token)
    assert isinstance(principal, Principal) and principal.sub
    assert sum(session.sent.values()) == sent


def test_verifier_refuses_metadata_naming_another_issuer(live_issuer):
    token = _token(live_issuer, live_issuer.create_client())
    verifier = Verifier(live_issuer.url + "/", live_issuer.url)
    with pytest.raises(IssuerUnavailable, match="another issuer"):
        verifier.verify(token)


def test_verifier_reports_unreachable_issuer(live_issuer):
    token = _token(live_issuer, live_issuer.create_client())
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        verifier = Verifier(f"http://127.0.0.1:{port}", live_issuer.url, timeout=2)
        with pytest.raises(IssuerUnavailable):
            verifier.verify(token)


def test_verifier_asks_unreachable_issuer_once_per_interval(live_issuer, session):
    token = _token(live_issuer, live_issuer.create_client())
    clock = Clock()
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        issuer = f"http://127.0.0.1:{bound.getsockname()[1]}"
        verifier = Verifier(issuer, live_issuer.url, session=session, clock=clock, timeout=2)
        for _ in range(5):
            with pytest.raises(IssuerUnavailable):
                verifier.verify(token)
        assert sum(session.sent.values()) == 1
        clock.now += 10
        with pytest.raises(IssuerUnavailable):
            verifier.verify(token)
        assert sum(session.sent.values()) == 2


def _introspecting_verifier(issuer, session, **options):
    rs = issuer.create_client(scope="orders:read", can_introspect=True)
    return Verifier(
        issuer.url,
        issuer.url,
        session=session,
        introspection_client=(rs.client_id, rs.client_secret),
        **options,
    )


def test_introspection_sees_deactivation_at_once_without_cache(live_issuer, session):
    verifier = _introspecting_verifier(live_issuer, session, introspection_cache_ttl=0)
    creds = live_issuer.create_client()
    token = _token(live_issuer, creds)
    assert verifier.verify(token, introspect=True).client_id == creds.client_id
    live_issuer.set_user_status(creds.user, "deactivated")
    assert verifier.verify(token).client_id == creds.client_id  # offline: still valid
    with pytest.raises(InvalidToken, match="no longer active"):
        verifier.verify(token, introspect=True)


def test_introspection_cache_expires_after_its_ttl(live_issuer, session):
    clock = Clock()
    verifier = _introspecting_verifier(live_issuer, session, introspection_cache_ttl=5, clock=clock)
    creds = live_issuer.create_client()
    token = _token(live_issuer, creds)
    introspect_url = f"{live_issuer.url}/oauth/introspect"
    assert verifier.verify(token, introspect=True).client_id == creds.client_id
    live_issuer.set_user_status(creds.user, "deactivated")
    clock.now += 4
    assert verifier.verify(token, introspect=True).client_id == creds.client_id  # cached
    assert session.sent[("POST", introspect_url)] == 1
    clock.now += 2
    with pytest.raises(InvalidToken, match="no longer active"):
        verifier.verify(token, introspect=True)
    assert session.sent[("POST", introspect_url)] == 2


def test_introspection_by_client_without_permission_is_refused(live_issuer, session):
    rs = live_issuer.create_client(scope="orders:read")
    verifier = Verifier(
        live_issuer.url,
        live_issuer.url,
        session=session,
        introspection_client=(rs.client_id, rs.client_secret),
    )
    token = _token(live_issuer, live_issuer.create_client())
    with pytest.raises(TokenRefused) as refused:
        verifier.verify(token, introspect=True)
    assert refused.value.status == 403


def test_introspection_without_client_is_a_usage_error(live_issuer, verifier):
    token = _token(live_issuer, live_issuer.create_client())
    with pytest.raises(ValueError, match="introspection_client"):
        verifier.verify(token, introspect=True)
