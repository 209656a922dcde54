"""The console in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium).

Never a downloaded browser: the tests launch the system Chromium and skip, saying why,
only when there is none (``.ci/run`` installs it). Each test saves screenshots of the
pages it visits under its tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

from .conftest import CHROMIUM, Console

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)


def sign_in(page: Page, console: Console, tenant: str | None = None) -> str:
    """Sign ``page`` in with a fresh one-time link; return the link."""
    link = console.link(tenant)
    page.goto(link)
    page.click("#sign-in")
    page.wait_for_url(console.url + "/")
    return link


def shoot(page: Page, tmp_path: Path, name: str) -> Path:
    """Save a full-page screenshot under the test's output."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path


def test_sign_in_with_a_one_time_link_and_every_page_renders(
    page, browser, console: Console, tmp_path: Path
) -> None:
    console.issuer.create_client(user="alice", tenant="acme")
    link = sign_in(page, console)
    assert page.locator("h1").inner_text() == "Overview"
    for path, title in [
        ("/", "Overview"),
        ("/legacy", "Legacy migration"),
        ("/principals", "Principals"),
        ("/keys", "Signing keys"),
        ("/audit", "Audit log"),
    ]:
        page.goto(console.url + path)
        assert page.locator("h1").inner_text() == title
        shoot(page, tmp_path, title.lower().replace(" ", "-"))

    other = browser.new_context().new_page()
    other.goto(link)
    other.click("#sign-in")
    assert "already used or has expired" in other.content()
    other.goto(console.url + "/principals")
    assert "keyswap console link" in other.content()
    shoot(other, tmp_path, "link-used-twice")
    other.context.close()


def test_overview_chart_shows_a_refusal_caused_a_moment_earlier(
    page, console: Console, tmp_path: Path
) -> None:
    creds = console.issuer.create_client(user="alice", tenant="acme")
    assert console.issuer.token(creds).status_code == 200
    console.issuer.set_user_status("alice", "deactivated")
    assert console.issuer.token(creds).status_code == 400
    sign_in(page, console)
    refused = page.locator('svg[data-chart="per-minute"] circle[data-series="refused"]')
    assert refused.count() == 1
    assert refused.get_attribute("data-count") == "1"
    issued = page.locator('svg[data-chart="per-minute"] circle[data-series="issued"]')
    assert issued.get_attribute("data-count") == "1"
    bar = page.locator('svg[data-chart="refusals-by-reason"] g[data-label="owner_deactivated"]')
    assert bar.get_attribute("data-count") == "1"
    assert creds.client_id in page.locator("#top-refused").inner_text()
    shoot(page, tmp_path, "overview-with-refusal")


def test_deactivate_from_principals_refuses_the_next_token_and_audits_the_reason(
    page, console: Console, tmp_path: Path
) -> None:
    creds = console.issuer.create_client(user="alice", tenant="acme")
    assert console.issuer.token(creds).status_code == 200
    sign_in(page, console)
    page.goto(console.url + "/principals")
    row = page.locator('tr[data-user="alice"]')
    row.locator("summary").click()
    form = row.locator("form", has=page.locator("button", has_text="Deactivate"))
    form.locator('input[name="reason"]').fill("left the company, ticket HR-7")
    form.locator("button").click()
    page.wait_for_url(console.url + "/principals")
    assert "user alice: deactivated" in page.locator(".flash").inner_text()
    assert row.locator(".state").inner_text() == "deactivated"
    shoot(page, tmp_path, "principals-after-deactivate")

    refused = console.issuer.token(creds)
    assert refused.status_code == 400
    assert refused.json()["error_description"] == "the user associated with this key is deactivated"

    page.goto(console.url + "/audit")
    page.fill('input[name="subject"]', "user:alice")
    page.click("form.filters button")
    rows = page.locator("#audit tbody tr")
    assert rows.first.locator(".reason").inner_text() == "left the company, ticket HR-7"
    assert "user.deactivated" in rows.first.inner_text()
    shoot(page, tmp_path, "audit-with-reason")


def test_tenant_admin_cannot_see_another_tenant(page, console: Console, tmp_path: Path) -> None:
    console.issuer.create_client(user="alice", tenant="acme")
    bob = console.issuer.create_client(user="bob", tenant="globex")
    sign_in(page, console, tenant="acme")
    page.goto(console.url + "/principals")
    text = page.locator("main").inner_text()
    assert "alice" in text
    assert "bob" not in text and "globex" not in text and bob.client_id not in text
    assert page.locator("header nav a", has_text="Keys").count() == 0
    shoot(page, tmp_path, "principals-tenant-admin")
    page.goto(console.url + "/audit")
    assert page.locator("h1").inner_text() == "Not allowed"
    shoot(page, tmp_path, "audit-refused-to-tenant-admin")


def test_form_posted_without_its_csrf_token_is_refused(
    page, console: Console, tmp_path: Path
) -> None:
    creds = console.issuer.create_client(user="alice", tenant="acme")
    sign_in(page, console)
    page.goto(console.url + "/principals")
    row = page.locator('tr[data-user="alice"]')
    row.locator("summary").click()
    form = row.locator("form", has=page.locator("button", has_text="Deactivate"))
    form.locator('input[name="csrf_token"]').evaluate("input => input.remove()")
    form.locator('input[name="reason"]').fill("no token")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        form.locator("button").click()
    assert answer.value.status == 400
    assert "CSRF" in page.content()
    shoot(page, tmp_path, "csrf-refused")
    assert console.issuer.token(creds).status_code == 200
