"""What commands share: the acting user, the app's clock and a transaction on its database."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.orm import Session

from ..context import current_keyswap
from ..db import transaction


def actor() -> str:
    """Name the person running the command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def now() -> datetime:
    """Return the time by the app's clock: the one its servers stamp and judge tokens with."""
    return current_keyswap().clock()


@contextmanager
def session() -> Iterator[Session]:
    """Open a transaction on the current app's database."""
    with transaction(current_keyswap().sessions) as db_session:
        yield db_session
