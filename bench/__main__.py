"""Run a benchmark: ``python -m bench [NAME] [OPTIONS]`` (``python -m bench --help`` lists them).

Each benchmark is a module ``bench.NAME`` with a ``main(argv) -> int``; without a name the
full suite (``bench.suite``) runs.
"""

from __future__ import annotations

import importlib
import sys

#: Name -> one-line description; each is the module ``bench.<name>``.
BENCHMARKS = {
    "suite": "the full suite: token endpoint, exchange, introspection, JWKS vs the ES256 limit",
    "exchange": "legacy key exchange latency with 100 and 100,000 imported keys",
    "verify": "keyswap.clients.Verifier verifications/s next to PyJWT's raw jwt.decode",
    "scale": "token issuance with 1 client vs 100,000 clients in the database",
    "status": "status lists: bytes for 10k/100k/1M tokens, verifier and issuance cost",
    "soak": "one server worker under load for N minutes: RSS start/end/max and slope",
}


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        for name, text in BENCHMARKS.items():
            print(f"  {name:<10} {text}")
        return 0
    name, rest = (argv[0], argv[1:]) if argv and not argv[0].startswith("-") else ("suite", argv)
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
