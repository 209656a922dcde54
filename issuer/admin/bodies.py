"""Request bodies of the admin API, validated by pydantic: unknown members and wrong types refused.

A body that is not a JSON object is a 400 ``invalid_request``; a JSON object with an
unknown member or a value of the wrong type is a 422 ``invalid_value`` naming the member.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from flask import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidRequest, UnprocessableValue
from ..models import AuthMethod

B = TypeVar("B", bound="Body")

#: Bound on names and free text, far above any real one and below the column sizes.
_TEXT = Field(default=None, max_length=1000)


class Body(BaseModel):
    """A request body: strict types, no unknown members."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TenantCreate(Body):
    """``POST /admin/v1/tenants``."""

    name: str = Field(max_length=200)


class Reason(Body):
    """A status change, with an optional reason for the audit log."""

    reason: str | None = _TEXT


class UserCreate(Body):
    """``POST /admin/v1/users``."""

    name: str = Field(max_length=200)
    tenant: str | None = Field(default=None, max_length=200)
    service_account: bool = False


class ClientCreate(Body):
    """``POST /admin/v1/clients``: the options of ``keyswap clients create``."""

    owner: str = Field(max_length=200)
    scope: str = Field(max_length=2000)
    audiences: list[str] = Field(default_factory=list, max_length=50)
    token_ttl: int | None = Field(default=None, ge=1)
    auth_method: AuthMethod = Field(default=AuthMethod.CLIENT_SECRET_BASIC, strict=False)
    jwks: dict[str, object] | None = None
    jwks_uri: str | None = Field(default=None, max_length=2000)
    can_introspect: bool = False
    secret_ttl: int | None = Field(default=None, ge=1)


class SecretRotation(Body):
    """``POST /admin/v1/clients/{client_id}/rotate-secret``."""

    grace: int = Field(default=86400, ge=0)
    secret_ttl: int | None = Field(default=None, ge=1)


class TokenRevocation(Body):
    """``POST /admin/v1/tokens/revoke``: exactly one of ``jti``, ``client_id``, ``user``."""

    jti: str | None = Field(default=None, max_length=64)
    client_id: str | None = Field(default=None, max_length=64)
    user: str | None = Field(default=None, max_length=200)
    reason: str | None = _TEXT


class FederationTrustCreate(Body):
    """``POST /admin/v1/federation-trusts``: the options of ``keyswap federation add``."""

    issuer: str = Field(max_length=2000)
    service_account: str = Field(max_length=200)
    jwks_uri: str | None = Field(default=None, max_length=2000)
    audience: str | None = Field(default=None, max_length=2000)
    subject: str | None = Field(default=None, max_length=2000)
    #: ``{claim name or a/b path: glob}``, as ``--claim NAME=GLOB``.
    claims: dict[str, str] = Field(default_factory=dict, max_length=50)
    scope: str = Field(default="", max_length=2000)
    #: The ``aud`` values issued tokens may carry, as ``--resource`` (repeatable).
    resource: list[str] = Field(default_factory=list, max_length=50)
    token_ttl: int | None = Field(default=None, ge=1)


class Sunset(Body):
    """``POST /admin/v1/legacy-keys/{key_id}/sunset``: a date, or null to clear it."""

    sunset_at: datetime | None = Field(strict=False)
    reason: str | None = _TEXT


class KeyRotation(Body):
    """``POST /admin/v1/signing-keys/rotate``."""

    alg: str | None = Field(default=None, max_length=16)
    #: The key-compromise runbook's ``keys rotate --now``: skip the pre-publication window.
    now: bool = False


def read_body(request: Request, model: type[B]) -> B:
    """Parse the request's JSON body (an empty body is ``{}``) into ``model``."""
    if not request.get_data():
        data: object = {}
    else:
        if not request.is_json:
            raise InvalidRequest("the admin API takes application/json bodies")
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise InvalidRequest("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise UnprocessableValue(f"{where}: {first['msg']}") from None
