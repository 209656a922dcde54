"""Retry an HTTP call to the issuer: exponential backoff with full jitter, ``Retry-After`` honoured.

Retried: connection failures and timeouts, 429 and every 5xx. Never retried: any other
status, since a 4xx other than 429 is the issuer's considered answer (RFC 6749 §5.2) and
asking again cannot change it. The wait before retry *n* (from 0) is the server's
``Retry-After`` (RFC 9110 §10.2.3: seconds or an HTTP-date), capped at ``max_retry_after``;
without one it is uniform in ``[0, min(max_backoff, backoff * 2**n)]`` ("full jitter", which
spreads a fleet of clients that failed together). Attempts and total time are both bounded.

urllib3's ``Retry`` covers part of this, but it does not retry POST by default, adds jitter
instead of drawing the whole wait, and reports exhaustion as ``MaxRetryError`` without the
final response, whose ``error_description`` the caller must see; hence this small loop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on the issuer."""

    #: Tries in all, the first included.
    attempts: int = 4
    #: Base of the exponential backoff, in seconds.
    backoff: float = 0.25
    #: Ceiling of one backoff wait (before jitter draws below it).
    max_backoff: float = 4.0
    #: Ceiling of a wait asked for by ``Retry-After``.
    max_retry_after: float = 30.0
    #: Ceiling of the whole call, waits included; no retry starts that would pass it.
    deadline: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")


#: Try once, never wait.
NO_RETRY = RetryPolicy(attempts=1)


def is_retryable(status: int) -> bool:
    """Tell whether a response status is worth another try (429 and 5xx)."""
    return status == 429 or status >= 500


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for, or None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 §5.6.7: an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def send_with_retries(
    send: Callable[[], requests.Response],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> requests.Response:
    """Call ``send`` until it answers something not retryable, or the policy runs out.

    Returns the last response, which is a 429 or 5xx when retries ran out on one. Re-raises
    the last ``requests.ConnectionError`` or ``requests.Timeout`` when they ran out on that.
    """
    draw = rng or random.Random()
    started = time.monotonic()
    for attempt in range(1, policy.attempts + 1):
        response: requests.Response | None = None
        error: requests.RequestException | None = None
        try:
            response = send()
        except (requests.ConnectionError, requests.Timeout) as exc:
            error = exc
        else:
            if not is_retryable(response.status_code):
                return response
        asked = None if response is None else parse_retry_after(response.headers.get("Retry-After"))
        if asked is not None:
            wait = min(asked, policy.max_retry_after)
        else:
            wait = draw.uniform(0.0, min(policy.max_backoff, policy.backoff * 2 ** (attempt - 1)))
        if attempt == policy.attempts or time.monotonic() - started + wait > policy.deadline:
            if error is not None:
                raise error
            assert response is not None
            return response
        if response is not None:
            response.close()  # hand the connection back to the pool before waiting
        sleep(wait)
    raise AssertionError("unreachable")  # the last attempt always returns or raises
