"""The revocation (RFC 7009) and introspection (RFC 7662) endpoints, as Authlib endpoints.

``server.KeyswapServer`` registers both and dispatches to them; they authenticate the
calling client through it, read tokens with its key ring, and leave the protocol rules to
``revocation`` (the jti denylist) and ``introspection`` (fail-closed, earned step by step).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from .client_auth import AUTH_METHODS
from .errors import NO_STORE, InvalidRequest, UnauthorizedClient, UnsupportedTokenType
from .events import TOKEN_REVOKED, record
from .introspection import introspect
from .revocation import revoke_claims

#: Client authentication methods accepted at the token, revocation and introspection endpoints.
_JSON_NO_STORE = [("Content-Type", "application/json"), *NO_STORE.items()]


def check_token_params(form: Any, supported: tuple[str, ...]) -> None:
    """Refuse a request without ``token`` or with a hint naming an unsupported token type.

    Authlib raises the same errors without a description; these say what is wrong.
    """
    if "token" not in form:  # sent empty is omitted too (RFC 6749 §3.1, ``given_parameters``)
        raise InvalidRequest("missing token parameter")
    hint = form.get("token_type_hint")
    if hint and hint not in supported:
        raise UnsupportedTokenType(
            f"token_type_hint {hint!r} is not supported; use one of {', '.join(supported)}"
        )


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: a client revokes one of its own access tokens."""

    CLIENT_AUTH_METHODS = AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token")

    def check_params(self, request: Any, client: Any) -> None:
        """Refuse a missing token or an unsupported hint, with a description."""
        check_token_params(request.form, self.SUPPORTED_TOKEN_TYPES)

    def authenticate_token(self, request: Any, client: Any) -> dict[str, Any] | None:
        """Return the token's claims if it is one of ours, None if unknown."""
        self.check_params(request, client)
        claims: dict[str, Any] | None = self.server.read_token(request.form["token"])
        if claims is not None and claims["client_id"] != client.client_id:
            # RFC 7009 §2.1: the server verifies the token was issued to the requesting
            # client; if not, the request is refused.
            raise UnauthorizedClient("the token was not issued to this client")
        return claims

    def revoke_token(self, claims: dict[str, Any], request: Any) -> None:
        """Deny the token's jti until it expires, and record who did it."""
        session = self.server.session()
        if revoke_claims(session, claims, self.server.clock()):
            record(
                session,
                TOKEN_REVOKED,
                f"token:{claims['jti']}",
                actor=f"client:{claims['client_id']}",
                reason="revoked by its client (RFC 7009)",
            )
        session.commit()

    def create_endpoint_response(self, request: Any) -> tuple[int, Any, list[tuple[str, str]]]:
        """Answer 200 with an empty body, for unknown tokens too (RFC 7009 §2.2)."""
        status, _body, _headers = super().create_endpoint_response(request)
        return status, "", list(NO_STORE.items())


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662 for clients registered with ``--can-introspect``."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def check_params(self, request: Any, client: Any) -> None:
        """Refuse a missing token or an unsupported hint, with a description."""
        check_token_params(request.form, self.SUPPORTED_TOKEN_TYPES)

    def create_endpoint_response(self, request: Any) -> tuple[int, Any, list[tuple[str, str]]]:
        """Authenticate the caller, check its permission, and answer about the token now."""
        client = self.authenticate_endpoint_client(request)
        if not client.record.can_introspect:
            raise UnauthorizedClient(
                "this client may not introspect tokens", status=403, reason="not_introspector"
            )
        self.check_params(request, client)
        claims = self.server.read_token(request.form["token"])
        checks = tuple(self.server.credential_checks)
        record = client.record
        # CONTRACT.md: a tenant's introspecting client sees only its own tenant's tokens.
        tenant = None if record.introspect_any_tenant else record.owner.tenant
        # Reads only: in autocommit, one round trip per query, retried on a stale connection.
        body = self.server.reads(
            lambda reader: introspect(
                reader, claims, self.server.clock(), tenant=tenant, other_credentials=checks
            ),
        )
        return 200, body, _JSON_NO_STORE
