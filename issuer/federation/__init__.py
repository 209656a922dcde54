"""Workload identity federation: external issuers' tokens traded for keyswap tokens.

``trusts`` (the trust relationships and the operations on them, shared by the CLI and
any admin API), ``keys`` (the external issuers' keys, from OIDC discovery or a JWKS URL,
fetched guarded and cached), ``assertion`` (checking a workload token: RFC 7523 §3 and
the trust's conditions). The grants are ``keyswap.issuer.grants.jwt_bearer`` and the RFC 8693
branch of ``keyswap.issuer.grants.token_exchange``; the commands are
``keyswap.issuer.cli.federation``.
"""

from __future__ import annotations

from .assertion import (
    FEDERATED_CLAIM,
    AssertionRefused,
    FederatedGrant,
    FederationVerifier,
    check_federated_token,
)
from .keys import FederatedKeys
from .trusts import (
    CLIENT_ID_PREFIX,
    TrustRecord,
    add_trust,
    list_trusts,
    remove_trust,
    trust_view,
)

__all__ = [
    "CLIENT_ID_PREFIX",
    "FEDERATED_CLAIM",
    "AssertionRefused",
    "FederatedGrant",
    "FederatedKeys",
    "FederationVerifier",
    "TrustRecord",
    "add_trust",
    "check_federated_token",
    "list_trusts",
    "remove_trust",
    "trust_view",
]
