"""PEP 517 backend of ``keyswap``: setuptools, told when it builds an editable install.

setuptools answers the same metadata for a wheel and for an editable install, but the two are
different things here (see setup.py): the wheel is the server alone and depends on
``keyswap-client``; the editable install is the whole development tree, ``clients/`` included.
Every editable hook marks its process before handing over to setuptools; setup.py reads the mark.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import build_meta
from setuptools.build_meta import (  # noqa: F401  (the hooks that need no change)
    build_sdist,
    build_wheel,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_wheel,
)

EDITABLE_MARK = "KEYSWAP_BUILD_EDITABLE"


def _editable() -> None:
    os.environ[EDITABLE_MARK] = "1"


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    _editable()
    return build_meta.get_requires_for_build_editable(config_settings)


def prepare_metadata_for_build_editable(
    metadata_directory: str, config_settings: dict[str, Any] | None = None
) -> str:
    _editable()
    return build_meta.prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    _editable()
    return build_meta.build_editable(wheel_directory, config_settings, metadata_directory)
