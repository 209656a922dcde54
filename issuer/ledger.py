"""The refusal ledger: every refusal at the OAuth endpoints, recorded once, in one place.

Each refusal at the token (RFC 6749 §5.2), revocation (RFC 7009 §2.2.1) and introspection
(RFC 7662 §2.3) endpoints — a policy refusal, a failed client authentication, a 429 from
the limiter, a 503 while the database is down — reaches the app's error handlers, which
hand it here. The ledger then:

- counts it in ``keyswap_refusals_total{endpoint, outcome, reason}`` (outcome is the wire
  ``error`` code, reason the ``OAuthError.reason``);
- writes one JSON line on the ``keyswap.issuance`` log: the endpoint, status, reason, the
  source address, and either ``client`` (a client that authenticated, or a legacy key
  found by its hash) or ``client_attempted`` (the id the request claimed, unverified: a
  forged ``private_key_jwt`` assertion names its victim, who must not be logged as the
  one refused). Never a secret, an API key or a token;
- tells the limiter when a credential failed (a 401, or an unknown legacy API key), and
  counts unknown keys against the global budget;
- counts a legacy key's refusal, by reason, for ``keyswap legacy report``;
- counts a token endpoint refusal for the console's charts (in memory, written coalesced).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from flask import Request

from .errors import OAuthError
from .events import INTROSPECTION_DENIED, REVOCATION_DENIED, TOKEN_DENIED, log_issuance
from .legacy.keys import CLIENT_ID_PREFIX as LEGACY_PREFIX
from .legacy.usage import UsageAccumulator
from .ratelimit import RateLimits, claimed_client_id

if TYPE_CHECKING:
    from .console.traffic import TrafficCounter
    from .metrics import Metrics

log = logging.getLogger(__name__)

#: The endpoints whose refusals are recorded, by path, with their log event.
ENDPOINTS = {
    "/oauth/token": ("token", TOKEN_DENIED),
    "/oauth/revoke": ("revocation", REVOCATION_DENIED),
    "/oauth/introspect": ("introspection", INTROSPECTION_DENIED),
}
UNKNOWN_API_KEY = "unknown_api_key"
#: Refusals that answer 400 but are failed guesses of a credential, limited like 401s.
GUESSES = frozenset({UNKNOWN_API_KEY})


@dataclass(frozen=True, slots=True)
class Refused:
    """One refusal as the ledger recorded it."""

    endpoint: str
    status: int
    outcome: str
    reason: str
    address: str | None
    #: The client that authenticated (or ``legacy:<key id>`` for a key found by its hash).
    client: str | None = None
    #: The client id the request claimed, unverified; only when none authenticated.
    client_attempted: str | None = None
    #: The private detail (logged, never sent).
    detail: str | None = None

    @property
    def is_failed_credential(self) -> bool:
        """Tell whether this was a failed credential: a 401, or a guessed legacy key."""
        return self.status == 401 or self.reason in GUESSES


class RefusalLedger:
    """Count, log and signal every refusal at the token, revocation and introspection endpoints."""

    def __init__(
        self,
        metrics: Metrics,
        limits: RateLimits,
        usage: UsageAccumulator,
        clock: Callable[[], datetime],
        traffic: TrafficCounter | None = None,
    ) -> None:
        self._metrics = metrics
        self._traffic = traffic
        self._limits = limits
        self._usage = usage
        self._clock = clock

    def refuse(self, error: OAuthError, request: Request) -> Refused | None:
        """Record ``error`` answered to ``request``; None if its path is not an OAuth endpoint."""
        known = ENDPOINTS.get(request.path)
        if known is None:
            return None
        endpoint, event = known
        client = error.client_id
        entry = Refused(
            endpoint=endpoint,
            status=error.status,
            outcome=error.error,
            reason=error.reason,
            address=request.remote_addr,
            client=client,
            client_attempted=None if client else claimed_client_id(request),
            detail=error.detail,
        )
        self._metrics.refusals.labels(endpoint, entry.outcome, entry.reason).inc()
        if self._traffic is not None and endpoint == "token":
            self._traffic.refused(entry.reason, client)
        fields = asdict(entry)
        del fields["endpoint"]
        log_issuance(event, **fields)
        if entry.is_failed_credential and entry.address:
            self._limits.count_failure(entry.address)
        if entry.reason == UNKNOWN_API_KEY and self._limits.count_unknown_key():
            self._metrics.unknown_key_budget_spent.inc()
            log.warning(
                "the global budget of unknown API keys is spent (KEYSWAP_RATE_LIMIT_UNKNOWN_KEYS):"
                " only keys exchanged lately are let through until it frees up"
            )
        if client is not None and client.startswith(LEGACY_PREFIX):
            self._usage.record_refusal(client[len(LEGACY_PREFIX) :], entry.reason, self._clock())
        return entry
