"""The one place that builds Authlib's ``AuthorizationServer`` (RFC 6749 §3.2, §5).

Authlib dispatches the token endpoint: it finds the grant for ``grant_type`` and runs
the registered client authentication methods. This adapter feeds it keyswap's request
(form body only, the issuer's public URL), keyswap's client lookup, and turns every
Authlib error into keyswap's taxonomy so that one renderer writes every error body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Request, Response
from flask import request as flask_request
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from werkzeug.datastructures import ImmutableMultiDict

from .client_auth import (
    AUTH_METHODS,
    PrivateKeyJWT,
    RemoteJwks,
    SecretAuthenticator,
    basic_method,
    post_method,
)
from .config import Settings
from .db import read_live
from .errors import (
    NO_STORE,
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    RateLimited,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedTokenType,
)
from .events import TOKEN_REVOKED, record
from .federation import FederatedKeys, FederationVerifier
from .grants import reject_repeated
from .hashing import SecretHasher
from .introspection import CredentialCheck, introspect
from .keyring import KeyRing
from .legacy.usage import UsageAccumulator
from .revocation import revoke_claims
from .status_leases import StatusLeases
from .storage import ClientRecord, load_client_record
from .tokens import ACCESS_TOKEN_TYP, IssuedToken

_JSON_NO_STORE = [("Content-Type", "application/json"), *NO_STORE.items()]


def given_parameters(request: Request) -> ImmutableMultiDict[str, str]:
    """Return the form body's parameters, without those sent with an empty value.

    RFC 6749 §3.2: parameters are sent in the request body, never the query string (a
    secret in a URL would end up in access logs). RFC 6749 §3.1: "Parameters sent without
    a value MUST be treated as if they were omitted from the request."
    """
    form = request.form
    return ImmutableMultiDict([(k, v) for k, v in form.items(multi=True) if v])


class _FormPayload(OAuth2Payload):  # type: ignore[misc]
    """The request's parameters, as ``given_parameters`` reads them."""

    def __init__(self, form: ImmutableMultiDict[str, str]) -> None:
        self._form = form
        self._datalist: dict[str, list[str]] | None = None

    @property
    def data(self) -> Any:
        return self._form

    @property
    def datalist(self) -> dict[str, list[str]]:
        if self._datalist is None:
            form = self._form
            self._datalist = {key: form.getlist(key) for key in form}
        return self._datalist


class _TokenRequest(OAuth2Request):  # type: ignore[misc]
    """An Authlib request whose URI is the endpoint's public URL, not the proxy-facing one."""

    def __init__(self, request: Request, uri: str) -> None:
        super().__init__(method=request.method, uri=uri, headers=request.headers)
        self._request = request
        self._form = given_parameters(request)
        self.payload = _FormPayload(self._form)

    @property
    def form(self) -> Any:
        return self._form

    @property
    def args(self) -> Any:
        return self._request.args


_AUTHLIB_ERRORS: dict[str, type[OAuthError]] = {
    "invalid_client": InvalidClient,
    "invalid_scope": InvalidScope,
    "unauthorized_client": UnauthorizedClient,
    "unsupported_grant_type": UnsupportedGrantType,
    "unsupported_token_type": UnsupportedTokenType,
}


def translate_error(error: OAuth2Error) -> OAuthError:
    """Map an Authlib error onto keyswap's taxonomy, keeping the wire code."""
    if error.error == "invalid_client":
        # Authlib says which methods it tried; keyswap says nothing to an unauthenticated
        # caller (CONTRACT.md: "no hint whether the id exists").
        return InvalidClient(detail=error.description)
    if error.error == "unsupported_grant_type":
        return UnsupportedGrantType("unsupported grant_type")
    cls = _AUTHLIB_ERRORS.get(error.error, InvalidRequest)
    return cls(error.description or error.error)


@dataclass(frozen=True, slots=True)
class Issuance:
    """What the token endpoint issued: the answer, the grant type and the signed token."""

    response: Response
    grant_type: str
    token: IssuedToken


class KeyswapServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's Flask authorization server, wired to keyswap's storage and signer."""

    def __init__(
        self,
        settings: Settings,
        keyring: KeyRing,
        authenticator: SecretAuthenticator,
        session: Callable[[], Session],
        reader: Engine,
        status_leases: StatusLeases,
        *,
        hasher: SecretHasher,
        usage: UsageAccumulator,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__()
        self.settings = settings
        #: The one clock of the request paths (``Keyswap.clock``).
        self.clock = clock
        #: Keyed hashes of secrets and legacy API keys.
        self.hasher = hasher
        #: Legacy key use counts, written coalesced.
        self.usage = usage
        self.keyring = keyring
        self.session = session
        #: Autocommit engine for the hot path's single-statement reads.
        self.reader = reader
        #: Status list entries for issued tokens, leased in blocks.
        self.status_leases = status_leases
        #: Live-status checks for credentials that are not registered clients (legacy keys).
        self.credential_checks: list[CredentialCheck] = []
        #: The per-client rate limit, counted once a client has authenticated.
        self.limit_client: Callable[[str], RateLimited | None] = lambda _client_id: None
        self.register_client_auth_method("client_secret_basic", basic_method(authenticator))
        self.register_client_auth_method("client_secret_post", post_method(authenticator))
        self.register_client_auth_method(
            "private_key_jwt",
            PrivateKeyJWT(
                audiences=[settings.token_endpoint, settings.issuer],
                session=session,
                clock=clock,
                remote_jwks=RemoteJwks(
                    allow_private=settings.outbound_allow_private,
                    deadline=settings.outbound_deadline,
                ),
            ),
        )
        #: Workload identity federation: trusted issuers' keys, fetched with the same guards.
        self.federation = FederationVerifier(
            FederatedKeys(
                allow_private=settings.outbound_allow_private, deadline=settings.outbound_deadline
            ),
            audiences=[settings.issuer, settings.token_endpoint],
        )
        self.register_endpoint(_Revocation)
        self.register_endpoint(_Introspection)

    def read_token(self, token: str) -> dict[str, Any] | None:
        """Return the verified claims of one of this issuer's access tokens, or None."""
        return self.keyring.verify(token, issuer=self.settings.issuer, typ=ACCESS_TOKEN_TYP)

    def query_client(self, client_id: str) -> ClientRecord | None:
        """Read the client, its secrets, owner and tenant live, in one round trip."""
        return read_live(self.reader, lambda connection: load_client_record(connection, client_id))

    def authenticate_client(self, request: Any, methods: Any, endpoint: str = "token") -> Any:
        """Authenticate the client (Authlib's dispatch), then count it against its rate limit.

        Counted here, after authentication, not on the id a request presents: client ids
        are public, so counting presented ids would let anyone use up a client's limit.
        """
        client = super().authenticate_client(request, methods, endpoint)
        refused = self.limit_client(client.client_id)
        if refused is not None:
            refused.client_id = client.client_id
            raise refused
        return client

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Store nothing: access tokens are self-contained JWTs."""

    def create_oauth2_request(self, request: Any) -> _TokenRequest:
        """Wrap Flask's request for Authlib, with the endpoint's public URL as its URI.

        The URI is the issuer's base plus the path routed here, so a ``private_key_jwt``
        assertion may name the endpoint it is sent to (``client_auth``).
        """
        return _TokenRequest(flask_request, self.settings.issuer + flask_request.path)

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Response:
        """Re-raise Authlib's error as keyswap's, for the one error renderer."""
        raise translate_error(error)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Send nothing: keyswap logs and counts issuance itself."""

    def token_response(self) -> Issuance:
        """Run the token endpoint for the current request; return what it issued.

        Raises ``OAuthError`` for every refusal, with ``client_id`` set when the client
        had authenticated, so the caller can log and count it.
        """
        request = self.create_oauth2_request(None)
        grant = None
        try:
            if not request.payload.grant_type:
                raise InvalidRequest("missing grant_type parameter")
            grant = self.get_token_grant(request)
            grant.validate_token_request()
            status, body, headers = grant.create_token_response()
        except OAuth2Error as error:
            raise _with_client(translate_error(error), request) from None
        except OAuthError as error:
            raise _with_client(error, request) from None
        response = self.handle_response(status, body, headers)
        return Issuance(response, grant.GRANT_TYPE, grant.issued)

    def endpoint_response(self, name: str) -> Response:
        """Run the revocation or introspection endpoint for the current request."""
        request = self.create_oauth2_request(None)
        try:
            reject_repeated(request.payload.datalist, repeatable=frozenset())
            status, body, headers = self._endpoints[name][0](request)
        except OAuth2Error as error:
            raise _with_client(translate_error(error), request) from None
        except OAuthError as error:
            raise _with_client(error, request) from None
        response = cast(Response, self.handle_response(status, body, headers))
        if not body:
            # An empty body has no media type (not Flask's default text/html).
            del response.headers["Content-Type"]
        return response


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


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
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


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
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
        body = read_live(
            self.server.reader,
            lambda connection: introspect(
                connection, claims, self.server.clock(), tenant=tenant, other_credentials=checks
            ),
        )
        return 200, body, _JSON_NO_STORE


def _with_client(error: OAuthError, request: Any) -> OAuthError:
    client = getattr(request, "client", None)
    # Authlib's private_key_jwt sets request.client to the *claimed* client's record before
    # it checks the assertion's signature: a bare record names nobody who authenticated.
    if not isinstance(client, ClientRecord):
        error.client_id = error.client_id or getattr(client, "client_id", None)
    return error
