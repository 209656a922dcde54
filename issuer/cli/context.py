"""What commands share: the acting user's name and a transaction on the app's database."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from ..context import current_keyswap
from ..db import transaction


def actor() -> str:
    """Name the person running the command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


@contextmanager
def session() -> Iterator[Session]:
    """Open a transaction on the current app's database."""
    with transaction(current_keyswap().sessions) as db_session:
        yield db_session
