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
from flask import Request, Response
from flask import request as flask_request
from sqlalchemy.orm import Session
from werkzeug.datastructures import ImmutableMultiDict

from .client_auth import (
    PrivateKeyJWT,
    RemoteJwks,
    SecretAuthenticator,
    basic_method,
    post_method,
)
from .config import Settings
from .db import LiveReads
from .endpoints import Introspection, Revocation
from .errors import (
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    RateLimited,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedTokenType,
)
from .federation import FederatedKeys, FederationVerifier
from .grants import reject_repeated
from .hashing import SecretHasher
from .introspection import CredentialCheck
from .keyring import KeyRing
from .legacy.usage import UsageAccumulator
from .status_leases import StatusLeases
from .storage import ClientRecord, load_client_record
from .tokens import ACCESS_TOKEN_TYP, IssuedToken


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
        reads: LiveReads,
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
        #: The request path's reads: one round trip each, on an autocommit pool.
        self.reads = reads
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
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)

    def read_token(self, token: str) -> dict[str, Any] | None:
        """Return the verified claims of one of this issuer's access tokens, or None."""
        return self.keyring.verify(token, issuer=self.settings.issuer, typ=ACCESS_TOKEN_TYP)

    def query_client(self, client_id: str) -> ClientRecord | None:
        """Read the client, its secrets, owner and tenant live, in one round trip."""
        return self.reads(lambda reader: load_client_record(reader, client_id))

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


def _with_client(error: OAuthError, request: Any) -> OAuthError:
    client = getattr(request, "client", None)
    # Authlib's private_key_jwt sets request.client to the *claimed* client's record before
    # it checks the assertion's signature: a bare record names nobody who authenticated.
    if not isinstance(client, ClientRecord):
        error.client_id = error.client_id or getattr(client, "client_id", None)
    return error
