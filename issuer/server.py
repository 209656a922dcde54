"""The one place that builds Authlib's ``AuthorizationServer`` (RFC 6749 §3.2, §5).

Authlib dispatches the token endpoint: it finds the grant for ``grant_type`` and runs
the registered client authentication methods. This adapter feeds it keyswap's request
(form body only, the issuer's public URL), keyswap's client lookup, and turns every
Authlib error into keyswap's taxonomy so that one renderer writes every error body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from flask import Request, Response
from flask import request as flask_request
from sqlalchemy.orm import Session

from .client_auth import SecretAuthenticator, basic_method, post_method
from .config import Settings
from .errors import (
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from .keyring import KeyRing
from .storage import ClientRecord, load_client_record


class _FormPayload(OAuth2Payload):  # type: ignore[misc]
    """The token request's parameters: the form body only, never the query string.

    RFC 6749 §3.2: parameters are sent in the request body; a secret in a URL would
    end up in access logs.
    """

    def __init__(self, request: Request) -> None:
        self._request = request
        self._datalist: dict[str, list[str]] | None = None

    @property
    def data(self) -> Any:
        return self._request.form

    @property
    def datalist(self) -> dict[str, list[str]]:
        if self._datalist is None:
            form = self._request.form
            self._datalist = {key: form.getlist(key) for key in form}
        return self._datalist


class _TokenRequest(OAuth2Request):  # type: ignore[misc]
    """An Authlib request whose URI is the issuer's public URL, not the proxy-facing one."""

    def __init__(self, request: Request, uri: str) -> None:
        super().__init__(method=request.method, uri=uri, headers=request.headers)
        self._request = request
        self.payload = _FormPayload(request)

    @property
    def form(self) -> Any:
        return self._request.form

    @property
    def args(self) -> Any:
        return self._request.args


_AUTHLIB_ERRORS: dict[str, type[OAuthError]] = {
    "invalid_client": InvalidClient,
    "invalid_scope": InvalidScope,
    "unauthorized_client": UnauthorizedClient,
    "unsupported_grant_type": UnsupportedGrantType,
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


class KeyswapServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's Flask authorization server, wired to keyswap's storage and signer."""

    def __init__(
        self,
        settings: Settings,
        keyring: KeyRing,
        authenticator: SecretAuthenticator,
        session: Callable[[], Session],
    ) -> None:
        super().__init__()
        self.settings = settings
        self.keyring = keyring
        self._session = session
        self.register_client_auth_method("client_secret_basic", basic_method(authenticator))
        self.register_client_auth_method("client_secret_post", post_method(authenticator))

    def query_client(self, client_id: str) -> ClientRecord | None:
        """Read the client, its secrets, owner and tenant live, in one round trip."""
        return load_client_record(self._session(), client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Store nothing: access tokens are self-contained JWTs."""

    def create_oauth2_request(self, request: Any) -> _TokenRequest:
        """Wrap Flask's request for Authlib, with the issuer's token URL as its URI."""
        return _TokenRequest(flask_request, self.settings.token_endpoint)

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Response:
        """Re-raise Authlib's error as keyswap's, for the one error renderer."""
        raise translate_error(error)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Send nothing: keyswap logs and counts issuance itself."""

    def token_response(self) -> tuple[Response, Any]:
        """Run the token endpoint for the current request; return the response and the grant.

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
        return self.handle_response(status, body, headers), grant


def _with_client(error: OAuthError, request: Any) -> OAuthError:
    client = getattr(request, "client", None)
    error.client_id = getattr(client, "client_id", None)
    return error
