"""keyswap benchmarks: run on demand, print a table, write JSON to ``bench/results/``.

Never imported by the test suite's assertions: performance goals live here, not in tests.
"""
