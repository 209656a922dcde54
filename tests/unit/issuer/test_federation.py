"""Trust conditions: claim paths, globs, audiences (no HTTP, no database)."""

from __future__ import annotations

from keyswap.issuer.federation import TrustRecord
from keyswap.issuer.federation.trusts import claim_value
from keyswap.issuer.models import TenantStatus, UserStatus
from keyswap.issuer.policy import OwnerStatus

OWNER = OwnerStatus("svc_1", UserStatus.ACTIVE, "acme", TenantStatus.ACTIVE)
KEYSWAP = ("https://auth.example", "https://auth.example/oauth/token")


def _trust(**changes: object) -> TrustRecord:
    fields: dict[str, object] = {
        "trust_id": "fed_1",
        "issuer": "https://issuer.example",
        "jwks_uri": None,
        "audience": None,
        "subject": None,
        "claims": {},
        "scopes": (),
        "resources": (),
        "token_ttl": None,
        "tokens_revoked_before": None,
        "owner": OWNER,
        **changes,
    }
    return TrustRecord(**fields)  # type: ignore[arg-type]


def test_claim_path_reaches_nested_members_of_dotted_claims() -> None:
    claims = {"kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "billing"}}}
    assert claim_value(claims, "kubernetes.io/namespace") == "prod"
    assert claim_value(claims, "kubernetes.io/serviceaccount/name") == "billing"
    assert claim_value(claims, "kubernetes.io/pod/name") is None
    assert claim_value({"a": "x"}, "a/b") is None


def test_all_conditions_must_match() -> None:
    trust = _trust(subject="repo:acme/api:ref:refs/heads/main", claims={"repository": "acme/*"})
    good = {"sub": "repo:acme/api:ref:refs/heads/main", "repository": "acme/api"}
    assert trust.matches(good)
    assert not trust.matches({**good, "sub": "repo:acme/api:ref:refs/heads/dev"})
    assert not trust.matches({**good, "repository": "evil/api"})
    assert not trust.matches({"sub": good["sub"]})  # a missing claim never matches


def test_globs_are_case_sensitive_and_compare_booleans_as_json_text() -> None:
    assert not _trust(subject="repo:Acme/*").matches({"sub": "repo:acme/api"})
    assert _trust(claims={"ref_protected": "true"}).matches({"ref_protected": True})
    assert _trust(claims={"ref_protected": "true"}).matches({"ref_protected": "true"})
    assert not _trust(claims={"ref_protected": "true"}).matches({"ref_protected": False})
    assert not _trust(claims={"groups": "*"}).matches({"groups": ["a"]})


def test_audience_names_keyswap_or_the_trusts_own() -> None:
    assert _trust().accepts_audience("https://auth.example", KEYSWAP)
    assert _trust().accepts_audience(["other", "https://auth.example/oauth/token"], KEYSWAP)
    assert not _trust().accepts_audience("https://github.com/acme", KEYSWAP)
    assert not _trust().accepts_audience(None, KEYSWAP)
    own = _trust(audience="keyswap-prod")
    assert own.accepts_audience("keyswap-prod", KEYSWAP)
    assert not own.accepts_audience("https://auth.example", KEYSWAP)
