"""Properties of ``keyswap.issuer.policy``: issue iff every fact is good; refusals in the fixed
order.

STYLE.md fixes the order: the credential's own state (revoked, then expired, then its
client disabled), then the owner, then the tenant, then (introspection) the token's
revocation cutoffs. The grants and introspection call the checks in that order, so the
pipeline below is theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from keyswap.issuer.models import TenantStatus, UserStatus
from keyswap.issuer.policy import (
    ClientDisabled,
    CredentialExpired,
    CredentialRevoked,
    OwnerNotActive,
    OwnerStatus,
    Refusal,
    TenantSuspended,
    TokenRevoked,
    check_credential,
    check_issued_after,
    check_owner,
)

BOUNDED = settings(max_examples=150, deadline=None)
# Microsecond instants between 2000 and 2100 (integers draw much faster than datetimes).
NOW_RANGE = st.integers(946_684_800_000_000, 4_102_444_800_000_000).map(
    lambda us: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
)
# Offsets around "now" that hit the boundary (0) and both sides of it often.
OFFSETS = st.one_of(
    st.just(timedelta(0)),
    st.integers(-(10**7), 10**7).map(lambda s: timedelta(seconds=s)),
    st.integers(-2000, 2000).map(lambda ms: timedelta(milliseconds=ms)),
)


@dataclass(frozen=True)
class Facts:
    """One combination of the live facts the policy reads."""

    now: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    client_enabled: bool
    client_disabled_at: datetime | None
    user_status: UserStatus
    tenant_status: TenantStatus
    iat: int
    cutoffs: tuple[datetime | None, ...]


@st.composite
def facts(draw: st.DrawFn) -> Facts:
    """Draw facts, each independently good or bad, times around ``now``."""
    now = draw(NOW_RANGE)

    def around() -> datetime | None:
        return draw(st.none() | OFFSETS.map(lambda offset: now + offset))

    enabled = draw(st.booleans())
    return Facts(
        now=now,
        expires_at=around(),
        revoked_at=around(),
        client_enabled=enabled,
        client_disabled_at=None if enabled else around(),
        user_status=draw(st.sampled_from(UserStatus)),
        tenant_status=draw(st.sampled_from(TenantStatus)),
        iat=int((now + draw(OFFSETS)).timestamp()),
        cutoffs=tuple(draw(st.lists(st.none() | OFFSETS.map(lambda o: now + o), max_size=3))),
    )


def decide(f: Facts, *, introspection: bool = False) -> Refusal | None:
    """Run the checks in the order the grants (and introspection) run them."""
    try:
        check_credential(
            now=f.now,
            expires_at=f.expires_at,
            revoked_at=f.revoked_at,
            client_enabled=f.client_enabled,
            client_disabled_at=f.client_disabled_at,
        )
        check_owner(OwnerStatus("usr_1", f.user_status, "acme", f.tenant_status))
        if introspection:
            check_issued_after(f.iat, *f.cutoffs)
    except Refusal as fact:
        return fact
    return None


def expected(f: Facts, *, introspection: bool = False) -> type[Refusal] | None:
    """State the fixed order as a list of (bad fact, refusal), first bad one wins."""
    order: list[tuple[bool, type[Refusal]]] = [
        (f.revoked_at is not None and f.revoked_at <= f.now, CredentialRevoked),
        (f.expires_at is not None and f.expires_at <= f.now, CredentialExpired),
        (not f.client_enabled, ClientDisabled),
        (f.user_status is not UserStatus.ACTIVE, OwnerNotActive),
        (f.tenant_status is not TenantStatus.ACTIVE, TenantSuspended),
    ]
    if introspection:
        # iat has whole seconds: a cutoff in the token's own second (or later) revokes it.
        revoked = any(c is not None and f.iat <= int(c.timestamp()) for c in f.cutoffs)
        order.append((revoked, TokenRevoked))
    return next((refusal for bad, refusal in order if bad), None)


@BOUNDED
@given(facts())
def test_policy_issues_iff_every_fact_is_good_and_refuses_in_the_fixed_order(f):
    fact = decide(f)
    want = expected(f)
    assert type(fact) is want if want is not None else fact is None


@BOUNDED
@given(facts())
def test_introspection_adds_the_revocation_cutoff_last(f):
    fact = decide(f, introspection=True)
    want = expected(f, introspection=True)
    assert type(fact) is want if want is not None else fact is None


@BOUNDED
@given(facts())
def test_refusals_carry_the_data_of_the_fact(f):
    fact = decide(f, introspection=True)
    if isinstance(fact, CredentialRevoked):
        assert fact.at == f.revoked_at
    elif isinstance(fact, CredentialExpired):
        assert fact.at == f.expires_at
    elif isinstance(fact, ClientDisabled):
        assert fact.at == (f.client_disabled_at or f.now)
    elif isinstance(fact, OwnerNotActive):
        assert fact.status is f.user_status
        assert fact.reason == f"owner_{f.user_status.value}"
    elif isinstance(fact, TenantSuspended):
        assert fact.tenant == "acme"
    elif isinstance(fact, TokenRevoked):
        assert fact.cutoff in f.cutoffs


@BOUNDED
@given(facts(), st.sampled_from(UserStatus), st.sampled_from(TenantStatus))
def test_owner_and_tenant_never_mask_a_bad_credential(f, user_status, tenant_status):
    # Whatever the owner and tenant, a bad credential is what the caller hears first.
    changed = replace(f, user_status=user_status, tenant_status=tenant_status)
    first, second = decide(f), decide(changed)
    credential_facts = (CredentialRevoked, CredentialExpired, ClientDisabled)
    if isinstance(first, credential_facts):
        assert type(second) is type(first)
