"""Read the issuer's Prometheus counters over HTTP, as a scraper would."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families


def metric_total(issuer_url: str, name: str, **labels: str) -> float:
    """Return the sum of ``name``'s samples at ``issuer_url``/metrics whose labels match."""
    text = requests.get(f"{issuer_url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
