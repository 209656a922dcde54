"""Token exchange (RFC 8693) of a legacy API key, or a workload's JWT, for an access token.

A subject token of type ``urn:ietf:params:oauth:token-type:jwt`` is a workload token from
a trusted issuer, checked exactly as by the JWT bearer grant (``federated``).

The subject token is the key itself, so it is the credential: no client authentication.
Order (STYLE.md): the key is found by its keyed hash (until then, only "unknown API key");
then its own state (revoked, expired, past sunset); then owner and tenant, live, through
the same ``policy`` checks as client credentials; then scope and resource. Every refusal
is ``invalid_request`` (RFC 8693 §2.2.2), except scope and resource ones.

Keys with a sunset date answer with ``Deprecation`` (RFC 9745 §2), ``Sunset`` (RFC 8594)
and ``Link rel="deprecation"`` (RFC 9745 §3) headers pointing at the migration guide.
"""

from __future__ import annotations

from datetime import UTC
from email.utils import format_datetime
from typing import Any

from authlib.oauth2.rfc6749 import grants

from ..client_auth import AUTH_METHODS
from ..errors import (
    API_KEY_EXPIRED,
    API_KEY_RETIRED,
    API_KEY_REVOKED,
    NO_STORE,
    UNKNOWN_API_KEY,
    InvalidRequest,
    format_time,
)
from ..legacy.keys import (
    LEGACY_CLAIM,
    KeyRetired,
    LegacyRecord,
    check_legacy_key,
    hash_api_key,
    load_legacy_key,
)
from ..policy import CredentialExpired, CredentialRevoked, Refusal, check_owner
from ..tokens import (
    ACCESS_TOKEN_TYPE_URN,
    resolve_audience,
    resolve_scopes,
)
from . import refuse_owner, reject_repeated, sign_for_owner
from .federated import check_workload_token, resolve_for_trust, sign_federated

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
#: The subject token type of a legacy API key (a keyswap URN: RFC 8693 §3 allows others).
API_KEY_TOKEN_TYPE = "urn:keyswap:params:oauth:token-type:api-key"
#: RFC 8693 §3: a JWT; here a workload's token from a trusted issuer (federation).
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
SUBJECT_TOKEN_TYPES = (API_KEY_TOKEN_TYPE, JWT_TOKEN_TYPE)
MIGRATION_GUIDE_URL = "https://github.com/keyswap/keyswap/blob/main/docs/migration-guide.md"


def refuse_key(fact: Refusal) -> InvalidRequest:
    """Map a legacy key's own state to the contract's ``invalid_request``."""
    if isinstance(fact, CredentialRevoked):
        return InvalidRequest(API_KEY_REVOKED.format(at=format_time(fact.at)), reason=fact.reason)
    if isinstance(fact, CredentialExpired):
        return InvalidRequest(API_KEY_EXPIRED.format(at=format_time(fact.at)), reason=fact.reason)
    if isinstance(fact, KeyRetired):
        date = fact.at.strftime("%Y-%m-%d")
        return InvalidRequest(API_KEY_RETIRED.format(date=date), reason=fact.reason)
    raise TypeError(f"not a key fact: {fact!r}")  # pragma: no cover


def deprecation_headers(record: LegacyRecord) -> list[tuple[str, str]]:
    """Return the RFC 9745 / RFC 8594 headers for a key with a sunset date, else none."""
    if record.sunset_at is None:
        return []
    return [
        # RFC 9745 §2.1: a Structured Field Date, "@" and Unix seconds.
        ("Deprecation", f"@{int(record.deprecated_at.timestamp())}"),
        # RFC 8594 §3: an HTTP-date.
        ("Sunset", format_datetime(record.sunset_at.astimezone(UTC), usegmt=True)),
        ("Link", f'<{MIGRATION_GUIDE_URL}>; rel="deprecation"; type="text/html"'),
    ]


def carries_client_credentials(request: Any) -> bool:
    """Tell whether the request presents a client credential (Basic, secret or assertion).

    A bare ``client_id`` is no credential (RFC 6749 §2.3): it proves nothing.
    """
    form = request.form
    scheme = (request.headers.get("Authorization") or "").partition(" ")[0]
    return scheme.lower() == "basic" or "client_secret" in form or "client_assertion" in form


class TokenExchangeGrant(grants.BaseGrant, grants.TokenEndpointMixin):  # type: ignore[misc]
    """Exchange a legacy API key for an access token owned by the key's owner."""

    GRANT_TYPE = TOKEN_EXCHANGE_GRANT
    #: The key is the credential, so client authentication is optional; credentials that
    #: are sent are checked by these methods all the same.
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    TOKEN_RESPONSE_HEADER = [("Content-Type", "application/json"), *NO_STORE.items()]

    def _check_parameters(self) -> str:
        data = self.request.payload.data
        token_type = data.get("subject_token_type")
        if not token_type:
            raise InvalidRequest("missing subject_token_type parameter")
        if token_type not in SUBJECT_TOKEN_TYPES:
            raise InvalidRequest(
                f"unsupported subject_token_type; use {' or '.join(SUBJECT_TOKEN_TYPES)}"
            )
        requested = data.get("requested_token_type")
        if requested and requested != ACCESS_TOKEN_TYPE_URN:
            raise InvalidRequest(f"unsupported requested_token_type; use {ACCESS_TOKEN_TYPE_URN}")
        if data.get("actor_token") or data.get("actor_token_type"):
            raise InvalidRequest("delegation (actor_token) is not supported")
        if data.get("audience"):
            raise InvalidRequest("the audience parameter is not supported; use resource")
        subject_token = data.get("subject_token")
        if not subject_token:
            raise InvalidRequest("missing subject_token parameter")
        return str(subject_token)

    def validate_token_request(self) -> None:
        """Find the key, check it, its owner and tenant live, resolve scope and audience."""
        payload = self.request.payload
        reject_repeated(payload.datalist)
        if carries_client_credentials(self.request):
            # RFC 6749 §5.2: credentials that fail are invalid_client (401), whatever the
            # grant; a request that sends none needs none here.
            self.authenticate_token_endpoint_client()
        subject_token = self._check_parameters()
        self.federated = None
        if payload.data.get("subject_token_type") == JWT_TOKEN_TYPE:
            self.federated = check_workload_token(self, subject_token, InvalidRequest)
            resolve_for_trust(self, self.federated)
            return
        key_hash = hash_api_key(self.server.hasher, subject_token)
        record = self.server.reads(lambda reader: load_legacy_key(reader, key_hash))
        if record is None:
            raise InvalidRequest(UNKNOWN_API_KEY, reason="unknown_api_key")
        # The caller proved possession: from here refusals are logged with the key's id.
        self.request.client = record
        try:
            check_legacy_key(record, self.server.clock())
        except Refusal as fact:
            raise refuse_key(fact) from None
        try:
            check_owner(record.owner)
        except Refusal as fact:
            raise refuse_owner(fact, InvalidRequest) from None
        settings = self.server.settings
        self.record = record
        self.scopes = resolve_scopes(payload.scope, record.scopes)
        self.audience = resolve_audience(
            payload.datalist.get("resource", []), record.audiences, settings.fallback_audience
        )

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Sign the token and answer RFC 8693 §2.2.1, counting the key's use."""
        if self.federated is not None:
            token = sign_federated(self, self.federated)
            body = token.response_body(" ".join(self.scopes))
            body["issued_token_type"] = ACCESS_TOKEN_TYPE_URN
            return 200, body, self.TOKEN_RESPONSE_HEADER
        record: LegacyRecord = self.record
        token = sign_for_owner(
            self.server,
            owner=record.owner,
            client_id=record.client_id,
            audience=self.audience,
            scopes=self.scopes,
            token_ttl=None,
            credential_cutoff=record.tokens_revoked_before,
            extra={LEGACY_CLAIM: record.key_id},
        )
        self.issued = token
        self.server.usage.record(record.key_id, self.server.clock())
        body = token.response_body(" ".join(self.scopes))
        body["issued_token_type"] = ACCESS_TOKEN_TYPE_URN
        return 200, body, [*self.TOKEN_RESPONSE_HEADER, *deprecation_headers(record)]
