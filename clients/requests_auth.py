"""Bearer authentication for ``requests`` (RFC 6750 §2.1), refreshed once on ``invalid_token``.

::

    session = requests.Session()
    session.auth = BearerAuth(TokenClient.from_issuer(ISSUER, client_id=ID, client_secret=SECRET))
    session.get("https://orders.example/orders")

Each request carries ``Authorization: Bearer <token>`` from the client's cache. When the
resource server answers 401 with ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750
§3.1: expired, revoked, or otherwise not accepted), the token is dropped from the cache, a
new one fetched, and the request sent once more; a second 401 is returned as it is.
"""

from __future__ import annotations

import re
from typing import Any

import requests
from requests.utils import rewind_body

from .token_client import Scope, TokenClient

_BEARER = re.compile(r"(?:^|[\s,])bearer(?:\s|$)", re.IGNORECASE)
_INVALID_TOKEN = re.compile(r'(?:^|[\s,])error\s*=\s*(?:"invalid_token"|invalid_token\b)', re.I)


def is_invalid_token_challenge(www_authenticate: str | None) -> bool:
    """Tell whether a ``WWW-Authenticate`` header is a Bearer challenge with ``invalid_token``."""
    if not www_authenticate:
        return False
    return bool(_BEARER.search(www_authenticate) and _INVALID_TOKEN.search(www_authenticate))


def bearer_value(authorization: str | None) -> str | None:
    """Return the token of a ``Bearer`` ``Authorization`` value, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class BearerAuth(requests.auth.AuthBase):
    """Add a keyswap access token to each request; refresh and resend once if it is rejected."""

    def __init__(
        self, client: TokenClient, *, scope: Scope = None, resource: str | None = None
    ) -> None:
        """Use ``client``'s tokens for ``scope`` and ``resource`` (its defaults if None)."""
        self.client = client
        self.scope = scope
        self.resource = resource

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Set the Authorization header and arm the one-time retry hook."""
        token = self.client.get_token(self.scope, self.resource)
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        # requests calls auth again on a redirect's copy, which already holds the hook.
        if self._retry_once_on_invalid_token not in request.hooks["response"]:
            request.register_hook("response", self._retry_once_on_invalid_token)
        return request

    def _retry_once_on_invalid_token(
        self, response: requests.Response, **send_options: Any
    ) -> requests.Response:
        if response.status_code != 401 or not is_invalid_token_challenge(
            response.headers.get("WWW-Authenticate")
        ):
            return response
        sent = response.request
        retry = sent.copy()
        # A streamed body was consumed by the first send; resend only if it can be rewound.
        if getattr(retry, "_body_position", None) is not None:
            try:
                rewind_body(retry)
            except requests.exceptions.UnrewindableBodyError:
                return response
        elif retry.body is not None and not isinstance(retry.body, str | bytes):
            return response
        header = sent.headers.get("Authorization")
        rejected = bearer_value(header.decode("latin-1") if isinstance(header, bytes) else header)
        self.client.invalidate(self.scope, self.resource, access_token=rejected)
        token = self.client.get_token(self.scope, self.resource)
        retry.headers["Authorization"] = f"Bearer {token.access_token}"
        # Free the connection for reuse, as requests' own digest auth does before resending.
        _ = response.content
        response.close()
        # The adapter sends without running hooks again, so a second 401 ends here: no loop.
        resent: requests.Response = response.connection.send(retry, **send_options)
        resent.history.append(response)
        resent.request = retry
        return resent
