"""The client credentials grant (RFC 6749 §4.4) with keyswap's live owner policy.

Order (STYLE.md): the client proves possession (``client_auth``, which also checks the
credential's own state), then the owner and tenant are checked live, then scope and
resource are resolved; only then is a token signed.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants

from ..client_auth import AUTH_METHODS
from ..errors import NO_STORE, InvalidGrant
from ..policy import Refusal, check_owner
from ..tokens import IssuedToken, resolve_audience, resolve_scopes
from . import refuse_owner, reject_repeated, sign_for_owner


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """Issue an RFC 9068 access token to an authenticated client whose owner is active."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    TOKEN_RESPONSE_HEADER = [("Content-Type", "application/json"), *NO_STORE.items()]

    def validate_token_request(self) -> None:
        """Authenticate the client, check owner and tenant live, resolve scope and audience."""
        payload = self.request.payload
        reject_repeated(payload.datalist)
        client = self.authenticate_token_endpoint_client()
        self.request.client = client
        record = client.record
        try:
            check_owner(record.owner)
        except Refusal as fact:
            raise refuse_owner(fact, InvalidGrant) from None
        settings = self.server.settings
        self.scopes = resolve_scopes(payload.scope, record.scopes)
        self.audience = resolve_audience(
            payload.datalist.get("resource", []), record.audiences, settings.fallback_audience
        )

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Sign the token with the cached signer and answer RFC 6749 §5.1."""
        record = self.request.client.record
        token: IssuedToken = sign_for_owner(
            self.server,
            owner=record.owner,
            client_id=record.client_id,
            audience=self.audience,
            scopes=self.scopes,
            token_ttl=record.token_ttl,
            credential_cutoff=record.tokens_revoked_before,
        )
        self.issued = token
        return 200, token.response_body(" ".join(self.scopes)), self.TOKEN_RESPONSE_HEADER
