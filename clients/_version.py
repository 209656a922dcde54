"""The one version of keyswap: both distributions, ``keyswap`` and ``keyswap-client``, read it."""

__version__ = "0.1.0"
