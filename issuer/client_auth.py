"""Client authentication at the token endpoint: client_secret_basic and client_secret_post.

RFC 6749 §2.3.1. Functions here plug into Authlib's ``ClientAuthentication`` registry
(``server.py`` registers them). Until a caller proves possession of a real secret it
learns nothing but a bare ``invalid_client``; after that, the credential's own state
(expired, revoked, client disabled) is told precisely (CONTRACT.md "Errors").
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from .errors import (
    CLIENT_DISABLED,
    SECRET_EXPIRED,
    SECRET_REVOKED,
    InvalidClient,
    InvalidRequest,
    format_time,
)
from .hashing import SecretHasher
from .models import AuthMethod
from .policy import ClientDisabled, CredentialExpired, CredentialRevoked, Refusal, check_credential
from .storage import ClientRecord

QueryClient = Callable[[str], ClientRecord | None]

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
        if record.auth_method is not method:
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
