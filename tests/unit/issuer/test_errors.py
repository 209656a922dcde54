"""Unit tests of ``keyswap.issuer.errors``: each wire error's status, body and headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from keyswap.issuer.errors import (
    CLIENT_AUTH_FAILED,
    UNAVAILABLE,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    KeyswapError,
    OAuthError,
    RateLimited,
    ServerError,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedGrantType,
    format_time,
)
from keyswap.issuer.rendering import render_error

NEVER_CACHED = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _render(error: OAuthError) -> tuple[int, dict[str, str], dict[str, str]]:
    response = render_error(error)
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_data()), dict(response.headers)


@pytest.mark.parametrize(
    ("error", "status", "code", "reason"),
    [
        (InvalidRequest("bad"), 400, "invalid_request", "invalid_request"),
        (InvalidGrant("bad"), 400, "invalid_grant", "invalid_grant"),
        (UnauthorizedClient("bad"), 400, "unauthorized_client", "unauthorized_client"),
        (UnsupportedGrantType("bad"), 400, "unsupported_grant_type", "unsupported_grant_type"),
        (InvalidScope("bad"), 400, "invalid_scope", "scope_not_allowed"),
        (InvalidTarget("bad"), 400, "invalid_target", "resource_not_allowed"),
        (ServerError(), 500, "server_error", "server_error"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_wire_error_status_body_and_never_cached(error, status, code, reason):
    got_status, body, headers = _render(error)
    assert got_status == status
    assert body == {"error": code, "error_description": error.description}
    assert headers.items() >= NEVER_CACHED.items()
    assert "WWW-Authenticate" not in headers and "Retry-After" not in headers
    assert error.reason == reason
    assert isinstance(error, KeyswapError)


def test_invalid_client_is_401_with_www_authenticate_and_a_bare_description():
    status, body, headers = _render(InvalidClient())
    assert status == 401
    assert body == {"error": "invalid_client", "error_description": CLIENT_AUTH_FAILED}
    assert headers["WWW-Authenticate"] == 'Basic realm="keyswap"'


def test_invalid_client_keeps_a_www_authenticate_it_was_given():
    error = InvalidClient(headers={"WWW-Authenticate": 'Bearer realm="x"'})
    assert _render(error)[2]["WWW-Authenticate"] == 'Bearer realm="x"'


def test_rate_limited_is_429_with_retry_after():
    status, body, headers = _render(RateLimited(7))
    assert status == 429
    assert body == {
        "error": "temporarily_unavailable",
        "error_description": "the caller is rate limited; retry after 7 seconds",
    }
    assert headers["Retry-After"] == "7"


def test_temporarily_unavailable_is_503_with_retry_after():
    status, body, headers = _render(TemporarilyUnavailable())
    assert status == 503
    assert body == {"error": "temporarily_unavailable", "error_description": UNAVAILABLE}
    assert headers["Retry-After"] == "5"
    assert _render(TemporarilyUnavailable(retry_after=30))[2]["Retry-After"] == "30"


def test_detail_is_never_sent():
    error = InvalidGrant("public words", detail="row 42 in tenants", reason="owner_deleted")
    _, body, _ = _render(error)
    assert "row 42" not in json.dumps(body)
    assert error.reason == "owner_deleted"


def test_status_and_reason_can_be_overridden_per_instance():
    error = UnauthorizedClient("not allowed to introspect", status=403, reason="not_introspector")
    assert _render(error)[0] == 403
    assert error.reason == "not_introspector"
    assert UnauthorizedClient("x").status == 400  # the class default is untouched


def test_format_time_is_iso_8601_utc_whole_seconds():
    assert format_time(datetime(2026, 1, 31, 12, 0, 5, 999999, tzinfo=UTC)) == (
        "2026-01-31T12:00:05Z"
    )


def test_one_root_with_a_wire_branch_and_a_domain_branch():
    from keyswap.issuer.errors import (
        ConfigError,
        Conflict,
        DomainError,
        InvalidValue,
        NoSigningKey,
        NotFound,
        StartupError,
    )

    for cls in (NotFound, Conflict, InvalidValue, ConfigError, NoSigningKey, StartupError):
        assert issubclass(cls, DomainError) and issubclass(cls, KeyswapError)
        assert not issubclass(cls, OAuthError)
    assert issubclass(OAuthError, KeyswapError) and not issubclass(OAuthError, DomainError)
    # Where callers have always caught them, they still are what they were.
    assert issubclass(NotFound, LookupError) and issubclass(InvalidValue, ValueError)
