"""Client authentication: client_secret_basic/post (RFC 6749 §2.3.1), private_key_jwt (RFC 7523).

Functions here plug into Authlib's ``ClientAuthentication`` registry
(``server.py`` registers them). Until a caller proves possession of a real secret it
learns nothing but a bare ``invalid_client``; after that, the credential's own state
(expired, revoked, client disabled) is told precisely (CONTRACT.md "Errors").
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import unquote_plus

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7523.client import ASSERTION_TYPE
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, KeySet
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keyswap.clients.errors import IssuerUnavailable
from keyswap.clients.jwks_cache import RemoteKeySets
from keyswap.clients.outbound import DEFAULT_DEADLINE, outbound_session
from keyswap.jwks import PRIVATE_MEMBERS

from .db import utcnow
from .errors import (
    CLIENT_DISABLED,
    SECRET_EXPIRED,
    SECRET_REVOKED,
    InvalidClient,
    InvalidRequest,
    format_time,
)
from .hashing import SecretHasher
from .models import AuthMethod, UsedAssertion
from .policy import ClientDisabled, CredentialExpired, CredentialRevoked, Refusal, check_credential
from .storage import ClientRecord

QueryClient = Callable[[str], ClientRecord | None]
log = logging.getLogger(__name__)

#: The methods this module provides, accepted at the token, revocation and introspection
#: endpoints (RFC 7591 §2 names; ``server.py`` registers them).
AUTH_METHODS: tuple[str, ...] = tuple(method.value for method in AuthMethod)

# Markers of each way a client may present a credential in one request.
_POST_SECRET = "client_secret"
_ASSERTION = "client_assertion"


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    """A client that proved possession of a usable credential (Authlib's ClientMixin)."""

    record: ClientRecord
    method: str

    @property
    def client_id(self) -> str:
        """Return the public client identifier."""
        return self.record.client_id

    def get_client_id(self) -> str:
        """Return the public client identifier (Authlib's name)."""
        return self.record.client_id

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Accept: the method was checked against the registration when authenticating."""
        return method == self.method

    def check_grant_type(self, grant_type: str) -> bool:
        """Every keyswap client may use the client credentials grant."""
        return grant_type == "client_credentials"


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """Return ``(client_id, secret)`` from a Basic Authorization header, or None if absent.

    RFC 6749 §2.3.1: both parts are form-urlencoded before Base64. Anything malformed
    (bad Base64, not UTF-8, no colon, empty id) is a failed authentication.
    """
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClient(
            detail="malformed Basic credentials", reason="malformed_credentials"
        ) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id or not secret:
        raise InvalidClient(
            detail="malformed Basic credentials", reason="malformed_credentials"
        ) from None
    return unquote_plus(client_id), unquote_plus(secret)


def refuse_credential(fact: Refusal) -> InvalidClient:
    """Map a credential fact to the client credentials grant's wire error (401)."""
    if isinstance(fact, CredentialExpired):
        description = SECRET_EXPIRED.format(at=format_time(fact.at))
    elif isinstance(fact, CredentialRevoked):
        description = SECRET_REVOKED.format(at=format_time(fact.at))
    elif isinstance(fact, ClientDisabled):
        description = CLIENT_DISABLED.format(at=format_time(fact.at))
    else:  # pragma: no cover - every credential fact is listed above
        raise TypeError(f"not a credential fact: {fact!r}")
    return InvalidClient(description, reason=fact.reason)


class SecretAuthenticator:
    """Check a presented client secret against a client's stored hashes."""

    def __init__(self, hasher: SecretHasher, clock: Callable[[], datetime]) -> None:
        self._hasher = hasher
        self._clock = clock

    def authenticate(
        self, record: ClientRecord | None, secret: str, method: AuthMethod
    ) -> AuthenticatedClient:
        """Return the authenticated client or raise ``InvalidClient``.

        The hash is computed and compared against every stored secret even for an
        unknown client, so timing does not tell whether a client id exists.
        """
        presented = self._hasher.hash(secret)
        matched = None
        for stored in record.secrets if record is not None else ():
            if self._hasher.matches(presented, stored.secret_hash) and matched is None:
                matched = stored
        if record is None or matched is None:
            raise InvalidClient(detail="unknown client or wrong secret", reason="invalid_client")
        try:
            check_credential(
                now=self._clock(),
                expires_at=matched.expires_at,
                revoked_at=matched.revoked_at,
                client_enabled=record.enabled,
                client_disabled_at=record.disabled_at,
            )
        except Refusal as fact:
            raise refuse_credential(fact) from None
        # CONTRACT.md: a secret is accepted by client_secret_basic and by client_secret_post
        # alike, at every endpoint (RFC 6749 §2.3.1 defines both for the same secret).
        if record.auth_method is AuthMethod.PRIVATE_KEY_JWT:
            raise InvalidClient(
                f"this client authenticates with {record.auth_method.value}",
                reason="wrong_auth_method",
            )
        return AuthenticatedClient(record=record, method=method.value)


def _reject_mixed_methods(form: Mapping[str, Any], header: str | None) -> None:
    # RFC 6749 §2.3: the client MUST NOT use more than one authentication method.
    used = sum(
        (
            bool(header and header.lower().startswith("basic ")),
            _POST_SECRET in form,
            _ASSERTION in form,
        )
    )
    if used > 1:
        raise InvalidRequest("use exactly one client authentication method per request")


def basic_method(authenticator: SecretAuthenticator) -> Callable[[QueryClient, Any], Any]:
    """Build the ``client_secret_basic`` function for Authlib's registry."""

    def authenticate_basic(query_client: QueryClient, request: Any) -> AuthenticatedClient | None:
        header = request.headers.get("Authorization")
        _reject_mixed_methods(request.form, header)
        credentials = parse_basic(header)
        if credentials is None:
            return None
        client_id, secret = credentials
        record = query_client(client_id)
        return authenticator.authenticate(record, secret, AuthMethod.CLIENT_SECRET_BASIC)

    return authenticate_basic


def post_method(authenticator: SecretAuthenticator) -> Callable[[QueryClient, Any], Any]:
    """Build the ``client_secret_post`` function for Authlib's registry."""

    def authenticate_post(query_client: QueryClient, request: Any) -> AuthenticatedClient | None:
        form = request.form
        _reject_mixed_methods(form, request.headers.get("Authorization"))
        client_id, secret = form.get("client_id"), form.get(_POST_SECRET)
        if not client_id or not secret:
            return None
        record = query_client(client_id)
        return authenticator.authenticate(record, secret, AuthMethod.CLIENT_SECRET_POST)

    return authenticate_post


# RFC 7523 client assertions: asymmetric algorithms only (RFC 8725 §3.1).
#: "Ed25519" is RFC 9864's fully specified name; "EdDSA" is deprecated there but still what
#: most client libraries send, so both are accepted (joserfc warns on the latter).
ASSERTION_ALGORITHMS = ["ES256", "ES384", "RS256", "PS256", "Ed25519", "EdDSA"]
#: The longest an assertion may live (exp - iat): an hour, which is what common client
#: libraries (Authlib among them) sign by default; the replay store keeps a jti that long.
MAX_ASSERTION_LIFETIME = 3600


_PUBLIC_KTYS = frozenset({"EC", "RSA", "OKP"})


def import_public_keys(jwks: list[dict[str, Any]]) -> KeySet:
    """Return a fetched set's asymmetric public keys as one joserfc KeySet, imported once.

    A key that is symmetric, holds private members or does not import is skipped; a set
    with no usable key is a ValueError (a failed fetch, cached like one).
    """
    keys = []
    for jwk in jwks:
        if jwk.get("kty") not in _PUBLIC_KTYS or PRIVATE_MEMBERS & jwk.keys():
            continue
        try:
            keys.append(JWKRegistry.import_key(cast(Any, jwk)))
        except (JoseError, ValueError, TypeError):
            log.warning("skipping unusable client JWK %s", jwk.get("kid"))
    if not keys:
        raise ValueError("no usable public key")
    return KeySet(keys)


class RemoteJwks:
    """Client JWK Sets fetched from their ``jwks_uri``: ``clients``' one JWKS cache, guarded.

    Each uri has its own cache, one fetch in flight, parsed keys kept per ``max-age``, and
    failures remembered with backoff; a fetch has a total deadline, a byte and a key cap,
    follows no redirect, and reaches only public addresses unless ``allow_private``.
    A set that cannot be had means no key, so authentication fails closed.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        deadline: float = DEFAULT_DEADLINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sets = RemoteKeySets(
            import_public_keys,
            session=outbound_session(allow_private=allow_private),
            timeout=deadline,
            deadline=deadline,
            clock=clock,
        )

    def get(self, uri: str) -> KeySet | None:
        """Return the keys at ``uri``, or None when they cannot be had now."""
        try:
            return self._sets.get(uri)
        except IssuerUnavailable:
            return None


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt``: Authlib's RFC 7523 assertion check with keyswap's rules.

    The assertion's ``aud`` must be the issuer, the token endpoint or the endpoint it is
    sent to; its lifetime at most an hour, its algorithm asymmetric, its ``jti`` unused
    (replay is refused), and a ``client_id`` parameter, if sent, its ``sub``; the key
    comes from the client's registered JWK Set.
    """

    CLIENT_AUTH_METHOD = AuthMethod.PRIVATE_KEY_JWT.value

    def __init__(
        self,
        *,
        audiences: list[str],
        session: Callable[[], Session],
        clock: Callable[[], datetime] = utcnow,
        remote_jwks: RemoteJwks | None = None,
    ) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._remote = remote_jwks or RemoteJwks()
        self._audiences = audiences
        self._session = session
        self._clock = clock

    def __call__(self, query_client: QueryClient, request: Any) -> AuthenticatedClient | None:
        """Authenticate by a client assertion; None when the request carries none.

        Unlike Authlib's, the request's client is named only once the signature is
        verified, so a forged assertion is never taken for its victim's request.
        """
        form = request.form
        assertion = form.get(_ASSERTION)
        if form.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
            return None
        _reject_mixed_methods(form, request.headers.get("Authorization"))
        _header, unverified = self.extract_assertion(assertion)
        subject = unverified.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidClientError(description="assertion without a string sub")
        # RFC 7521 §4.2: if present, the client_id parameter MUST identify the same client
        # as the assertion.
        client_id = form.get("client_id")
        if client_id is not None and client_id != subject:
            raise InvalidClientError(description="client_id differs from the assertion's sub")
        client = query_client(subject)
        if client is None:
            raise InvalidClientError(description="unknown client")
        key = self.resolve_client_public_key(client)
        # RFC 7523 §3: aud identifies the server; the endpoint's own URL is what client
        # libraries send (Authlib's PrivateKeyJWT signs the URL it posts to).
        audiences = [*self._audiences, request.uri]
        self.process_assertion_claims(assertion, key, audiences=audiences)
        return self.authenticate_client(client)

    def get_audiences(self) -> list[str]:
        """Return the audiences accepted at every endpoint: the issuer and token endpoint."""
        return self._audiences

    def extract_assertion(self, assertion: str) -> tuple[Any, dict[str, Any]]:
        """Parse the assertion unverified; deeply nested JSON is a malformed assertion."""
        try:
            header, claims = super().extract_assertion(assertion)
        except RecursionError:
            raise InvalidClientError(description="assertion JSON nested too deeply") from None
        return header, claims

    def resolve_client_public_key(self, client: ClientRecord) -> KeySet:
        """Return the client's registered public keys, inline or from its ``jwks_uri``."""
        if client.auth_method is AuthMethod.PRIVATE_KEY_JWT and client.jwks is None:
            fetched = self._remote.get(client.jwks_uri) if client.jwks_uri else None
            if fetched is None:
                raise InvalidClientError(description="client has no usable keys")
            return fetched
        jwks = client.jwks
        if client.auth_method is not AuthMethod.PRIVATE_KEY_JWT or not jwks:
            raise InvalidClientError(description="client has no usable keys")
        try:
            return KeySet.import_key_set(cast(Any, jwks))
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidClientError(description=f"client keys unusable: {exc}") from exc

    def process_assertion_claims(
        self, assertion: str, key: Any, *, audiences: list[str] | None = None
    ) -> Any:
        """Verify the signature with an allowed algorithm, then the claims."""
        try:
            token = jose_jwt.decode(assertion, key, algorithms=ASSERTION_ALGORITHMS)
        except (JoseError, ValueError, RecursionError) as exc:
            raise InvalidClientError(description=f"bad assertion: {exc!r}") from exc
        self.verify_claims(token.claims, audiences=audiences)
        return token.claims

    def verify_claims(self, claims: Any, *, audiences: list[str] | None = None) -> None:
        """Check lifetime, ``iss``/``sub``/``aud``/``exp``, then record the ``jti``."""
        exp, iat = claims.get("exp"), claims.get("iat")
        now = int(self._clock().timestamp())
        if not isinstance(exp, int) or exp - (iat if isinstance(iat, int) else now) > (
            MAX_ASSERTION_LIFETIME
        ):
            raise InvalidClientError(description="assertion lifetime too long or no exp")
        # RFC 7523 §3: iss and sub are the client_id; aud names this server; exp is required.
        registry = jose_jwt.JWTClaimsRegistry(
            now=now,
            leeway=self.leeway,
            iss={"essential": True},
            sub={"essential": True},
            aud={"essential": True, "values": audiences or self.get_audiences()},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from exc
        if claims["sub"] != claims["iss"]:
            raise InvalidClientError(description="assertion iss and sub differ")
        if "jti" not in claims or not self.validate_jti(claims, claims["jti"]):
            raise InvalidClientError(description="assertion jti missing or already used")

    def validate_jti(self, claims: Any, jti: Any) -> bool:
        """Record the jti until the assertion expires; False if it was seen (a replay)."""
        if not isinstance(jti, str) or not jti or len(jti) > 200:
            return False
        session = self._session()
        now = self._clock()
        session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at <= now))
        try:
            with session.begin_nested():
                session.add(
                    UsedAssertion(
                        jti=jti,
                        client_id=str(claims["sub"]),
                        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
                    )
                )
        except IntegrityError:
            return False
        session.commit()
        return True

    def authenticate_client(self, client: ClientRecord) -> AuthenticatedClient:
        """Check the proved client's own state, as for secrets."""
        if client.auth_method is not AuthMethod.PRIVATE_KEY_JWT:
            raise InvalidClient(
                f"this client authenticates with {client.auth_method.value}",
                reason="wrong_auth_method",
            )
        try:
            check_credential(
                now=self._clock(),
                expires_at=None,
                revoked_at=None,
                client_enabled=client.enabled,
                client_disabled_at=client.disabled_at,
            )
        except Refusal as fact:
            raise refuse_credential(fact) from None
        return AuthenticatedClient(record=client, method=self.CLIENT_AUTH_METHOD)
