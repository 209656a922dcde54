"""The console's legacy migration page: states, calls per day, late callers, owners to move."""

from __future__ import annotations

import re

from keyswap.issuer.legacy.usage import usage_for

from ..e2e.test_token_exchange import _exchange, _key
from .conftest import Console


def test_legacy_page_shows_calls_late_callers_and_owners_without_a_client(
    console: Console,
) -> None:
    issuer = console.issuer
    api_key, key_id = _key(issuer, "billing-svc", tenant="acme")
    retired_key, retired_id = _key(issuer, "old-batch", sunset_at="2020-03-31T00:00:00Z")
    moved = issuer.create_client(user="migrated-svc", tenant="acme")
    _, moved_key = _key(issuer, "migrated-svc", new_owner=False)
    assert _exchange(issuer, api_key).status_code == 200
    assert _exchange(issuer, api_key).status_code == 200
    assert _exchange(issuer, retired_key).status_code == 400
    assert issuer.token(moved).status_code == 200
    usage_for(issuer.app).flush()  # the report's own counts are written coalesced too

    http = console.sign_in()
    page = http.get(console.url + "/legacy", timeout=10).text
    calls = page.split('id="calls-per-day"', 1)[1].split("</table>", 1)[0]
    assert re.search(rf"<code>{key_id}</code></td>.*<td class=\"hot\">2</td>", calls, re.S)
    assert re.search(rf"<code>{retired_id}</code></td>.*<td class=\"hot\">1</td>", calls, re.S)
    late = page.split('id="after-sunset"', 1)[1].split("</table>", 1)[0]
    assert retired_id in late and key_id not in late
    owners = page.split('id="owners-without-client"', 1)[1].split("</table>", 1)[0]
    assert "billing-svc" in owners and "old-batch" in owners
    assert "migrated-svc" not in owners and moved_key not in owners
    progress = page.split('data-chart="legacy-progress"', 1)[1].split("</svg>", 1)[0]
    assert 'data-series="legacy key calls"' in progress and 'data-count="2"' in progress
    assert 'data-series="token calls"' in progress
    assert 'data-label="active" data-count="2"' in page  # keys by state
    assert 'data-label="retired" data-count="1"' in page

    # A tenant admin of another tenant sees none of these keys.
    issuer.create_client(user="bob", tenant="globex")
    other = console.sign_in(tenant="globex").get(console.url + "/legacy", timeout=10).text
    assert key_id not in other and retired_id not in other
