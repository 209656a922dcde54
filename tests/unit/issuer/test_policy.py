"""Unit tests of ``keyswap.issuer.policy``: every refusal fact, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keyswap.issuer.models import TenantStatus, UserStatus
from keyswap.issuer.policy import (
    ClientDisabled,
    CredentialExpired,
    CredentialRevoked,
    OwnerNotActive,
    OwnerStatus,
    TenantSuspended,
    TokenRevoked,
    check_credential,
    check_issued_after,
    check_owner,
)

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def _owner(
    user: UserStatus = UserStatus.ACTIVE, tenant: TenantStatus = TenantStatus.ACTIVE
) -> OwnerStatus:
    return OwnerStatus(user_id="usr_1", user_status=user, tenant="acme", tenant_status=tenant)


def test_credential_without_expiry_or_revocation_passes():
    check_credential(now=NOW, expires_at=None, revoked_at=None)


def test_credential_expiring_later_passes():
    check_credential(now=NOW, expires_at=NOW + SECOND, revoked_at=None)


@pytest.mark.parametrize("offset", [timedelta(0), -SECOND, -timedelta(days=3)])
def test_credential_expired_at_or_before_now_is_refused_with_its_time(offset):
    with pytest.raises(CredentialExpired) as caught:
        check_credential(now=NOW, expires_at=NOW + offset, revoked_at=None)
    assert caught.value.at == NOW + offset
    assert caught.value.reason == "credential_expired"


@pytest.mark.parametrize("offset", [timedelta(0), -SECOND])
def test_credential_revoked_at_or_before_now_is_refused_with_its_time(offset):
    with pytest.raises(CredentialRevoked) as caught:
        check_credential(now=NOW, expires_at=None, revoked_at=NOW + offset)
    assert caught.value.at == NOW + offset
    assert caught.value.reason == "credential_revoked"


def test_credential_revocation_scheduled_later_does_not_refuse_yet():
    check_credential(now=NOW, expires_at=None, revoked_at=NOW + SECOND)


def test_revocation_wins_over_expiry():
    with pytest.raises(CredentialRevoked):
        check_credential(now=NOW, expires_at=NOW - SECOND, revoked_at=NOW - 2 * SECOND)


def test_client_disabled_is_refused_with_the_time_it_was_disabled():
    disabled_at = NOW - timedelta(hours=1)
    with pytest.raises(ClientDisabled) as caught:
        check_credential(
            now=NOW,
            expires_at=None,
            revoked_at=None,
            client_enabled=False,
            client_disabled_at=disabled_at,
        )
    assert caught.value.at == disabled_at
    assert caught.value.reason == "client_disabled"


def test_client_disabled_without_a_recorded_time_reports_now():
    with pytest.raises(ClientDisabled) as caught:
        check_credential(now=NOW, expires_at=None, revoked_at=None, client_enabled=False)
    assert caught.value.at == NOW


def test_credential_state_wins_over_disabled_client():
    with pytest.raises(CredentialExpired):
        check_credential(now=NOW, expires_at=NOW - SECOND, revoked_at=None, client_enabled=False)


def test_active_owner_in_active_tenant_passes():
    check_owner(_owner())


@pytest.mark.parametrize(
    "status", [UserStatus.SUSPENDED, UserStatus.DEACTIVATED, UserStatus.DELETED]
)
def test_owner_not_active_is_refused_with_its_status(status):
    with pytest.raises(OwnerNotActive) as caught:
        check_owner(_owner(user=status))
    assert caught.value.status is status
    assert caught.value.reason == f"owner_{status.value}"


def test_tenant_suspended_is_refused_with_its_name():
    with pytest.raises(TenantSuspended) as caught:
        check_owner(_owner(tenant=TenantStatus.SUSPENDED))
    assert caught.value.tenant == "acme"
    assert caught.value.reason == "tenant_suspended"


def test_owner_status_wins_over_tenant_status():
    with pytest.raises(OwnerNotActive):
        check_owner(_owner(user=UserStatus.DELETED, tenant=TenantStatus.SUSPENDED))


def test_token_issued_after_every_cutoff_passes():
    iat = int(NOW.timestamp())
    check_issued_after(iat, None, NOW - SECOND, NOW - timedelta(days=1))


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(milliseconds=500), SECOND])
def test_token_issued_before_or_in_the_cutoff_second_is_revoked(offset):
    # iat has whole seconds: a token from the cutoff's own second errs towards inactive.
    cutoff = NOW + offset
    with pytest.raises(TokenRevoked) as caught:
        check_issued_after(int(NOW.timestamp()), None, cutoff)
    assert caught.value.cutoff == cutoff
    assert caught.value.reason == "token_revoked"


def test_token_with_no_cutoffs_passes():
    check_issued_after(0, None, None)


def test_owner_status_takes_the_later_of_the_user_and_tenant_cutoffs():
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    active, tenant_active = UserStatus.ACTIVE, TenantStatus.ACTIVE
    of = OwnerStatus.of
    assert of("u", active, early, "t", tenant_active, late).tokens_revoked_before == late
    assert of("u", active, late, "t", tenant_active, None).tokens_revoked_before == late
    assert of("u", active, None, "t", tenant_active, None).tokens_revoked_before is None
