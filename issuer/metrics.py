"""Prometheus metrics: issuance by grant, refusals by endpoint and reason, token latency.

Metrics live in a registry owned by the app (none at import time). Served with
several workers, ``PROMETHEUS_MULTIPROC_DIR`` (set by ``keyswap serve``) makes
``render`` aggregate every worker's values.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The counters and histograms keyswap records."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tokens_issued = Counter(
            "keyswap_tokens_issued_total",
            "Access tokens issued, by grant type.",
            ["grant_type"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "keyswap_refusals_total",
            "Requests refused at the token, revocation and introspection endpoints "
            "(429 and 503 included), by endpoint, wire error and reason.",
            ["endpoint", "outcome", "reason"],
            registry=self.registry,
        )
        self.unknown_key_budget_spent = Counter(
            "keyswap_unknown_key_budget_spent_total",
            "Times the global budget of unknown legacy API keys was spent (alert on any).",
            registry=self.registry,
        )
        self.token_latency = Histogram(
            "keyswap_token_request_seconds",
            "Time to answer a token request, refusals included.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        """Return the text exposition of every metric (all workers' under multiprocess)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
