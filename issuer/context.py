"""The server context: the one ``Keyswap`` wiring an app shares across requests.

``create_app`` builds it eagerly and keeps it at ``app.extensions["keyswap"]``; views reach
it through ``current_keyswap()``. Protocol code (grants, policy, storage, tokens) never
does: it takes what it needs from the server it is registered on. This module imports no
other keyswap module at run time, so views and the factory import it without a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, cast

from flask import current_app, g

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from keyswap.jwks import Sealer

    from .config import Settings
    from .console.traffic import TrafficCounter
    from .db import LiveReads
    from .hashing import SecretHasher
    from .keyring import KeyRing
    from .ledger import RefusalLedger
    from .legacy.usage import UsageAccumulator
    from .maintenance import Maintenance
    from .metadata import Discovery
    from .metrics import Metrics
    from .ratelimit import RateLimits
    from .server import KeyswapServer
    from .status_publisher import StatusListPublisher


@dataclass(frozen=True)
class Keyswap:
    """Everything one app instance shares across requests."""

    settings: Settings
    #: The one clock: token times, secret and key expiry, status lists, and every time an
    #: operation stamps (status changes, revocation cutoffs), whoever calls it (tests move it).
    clock: Callable[[], datetime]
    engine: Engine
    #: The request path's reads, on an autocommit engine of their own.
    reads: LiveReads
    sessions: sessionmaker[Session]
    sealer: Sealer
    hasher: SecretHasher
    keyring: KeyRing
    #: Rotation steps and key re-reads; ``keyswap serve`` starts it in each worker.
    maintenance: Maintenance
    server: KeyswapServer
    metrics: Metrics
    discovery: Discovery
    limits: RateLimits
    ledger: RefusalLedger
    #: Legacy key use and refusal counts, written coalesced.
    usage: UsageAccumulator
    #: Signed status lists, rebuilt from the database at most once per interval.
    status_lists: StatusListPublisher
    #: Issued and refused token requests per minute, for the console's charts.
    traffic: TrafficCounter

    def dispose(self) -> None:
        """Close both engines' pooled connections (before a fork, and when done)."""
        self.reads.dispose()
        self.engine.dispose()


def current_keyswap() -> Keyswap:
    """Return the wiring of the current app."""
    return cast(Keyswap, current_app.extensions["keyswap"])


def request_session() -> Session:
    """Return this request's database session, opening it on first use."""
    session = g.get("_keyswap_session")
    if session is None:
        session = current_keyswap().sessions()
        g._keyswap_session = session
    return cast("Session", session)


def close_session(_exc: BaseException | None) -> None:
    """Close this request's session, if one was opened (a teardown handler)."""
    session = g.pop("_keyswap_session", None)
    if session is not None:
        session.close()
