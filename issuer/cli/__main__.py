"""Run the keyswap command line: ``python -m keyswap.issuer.cli``."""

from . import main

main()
