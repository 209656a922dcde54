"""The JWT bearer grant (RFC 7523 §2.1): a workload's token from a trusted issuer.

The assertion is the credential, so client authentication is optional (RFC 7521 §4.1);
credentials that are sent are checked all the same. Order (STYLE.md): the assertion is
proved (``federation.assertion``: signature, times, audience, one matching trust, first
use); then the mapped service account and its tenant, live, through ``policy``; then
scope (within the trust's) and resource. Refusals are ``invalid_grant`` (RFC 7523 §3.1);
through token exchange the same checks answer ``invalid_request`` (RFC 8693 §2.2.2).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants

from ..client_auth import AUTH_METHODS
from ..errors import NO_STORE, InvalidGrant, InvalidRequest
from . import reject_repeated
from .federated import check_workload_token, resolve_for_trust, sign_federated
from .token_exchange import carries_client_credentials

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class JWTBearerGrant(grants.BaseGrant, grants.TokenEndpointMixin):  # type: ignore[misc]
    """Issue a token to the service account a trusted workload token maps to."""

    GRANT_TYPE = JWT_BEARER_GRANT
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    TOKEN_RESPONSE_HEADER = [("Content-Type", "application/json"), *NO_STORE.items()]

    def validate_token_request(self) -> None:
        """Check the assertion, the service account live, then scope and resource."""
        payload = self.request.payload
        reject_repeated(payload.datalist)
        if carries_client_credentials(self.request):
            self.authenticate_token_endpoint_client()
        assertion = payload.data.get("assertion")
        if not assertion:
            raise InvalidRequest("missing assertion parameter")
        self.federated = check_workload_token(self, str(assertion), InvalidGrant)
        resolve_for_trust(self, self.federated)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Sign the token and answer RFC 6749 §5.1."""
        token = sign_federated(self, self.federated)
        return 200, token.response_body(" ".join(self.scopes)), self.TOKEN_RESPONSE_HEADER
