"""Run the keyswap command line: ``python -m issuer.cli``."""

from . import main

main()
