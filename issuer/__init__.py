"""keyswap's authorization server: build it with ``create_app``."""

from .app import create_app

__all__ = ["create_app"]
