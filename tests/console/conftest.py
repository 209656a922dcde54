"""Console fixtures: an issuer serving /console, one-time links, signed-in HTTP sessions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

from keyswap.issuer.db import utcnow

from ..cli.invoke import run
from ..conftest import LiveIssuer

#: Debian's Chromium, which the browser tests drive (never a downloaded browser build).
CHROMIUM = "/usr/bin/chromium"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Clock:
    """The console issuer's clock, which tests move."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.offset += timedelta(seconds=seconds)


@dataclass
class Console:
    """An issuer with the console on, and helpers to sign in to it."""

    issuer: LiveIssuer
    clock: Clock

    @property
    def url(self) -> str:
        """Return the console's base URL."""
        return self.issuer.url + "/console"

    def link(self, tenant: str | None = None) -> str:
        """Make a one-time login link with ``keyswap console link``; return its URL."""
        args = ["console", "link"] + (["--tenant", tenant] if tenant else [])
        outcome = run(self.issuer.app.test_cli_runner(), *args)
        assert outcome.code == 0, outcome.stderr
        return str(outcome.data["url"])

    def sign_in(self, tenant: str | None = None) -> requests.Session:
        """Return an HTTP session signed in with a fresh link."""
        http = requests.Session()
        response = redeem(http, self.link(tenant))
        assert response.status_code == 303, response.text
        return http


def csrf_of(html: str) -> str:
    """Return the CSRF token of the first form in ``html``."""
    match = CSRF_FIELD.search(html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def redeem(http: requests.Session, url: str) -> requests.Response:
    """Open a login link and press its button; return the POST's answer (not followed)."""
    page = http.get(url, timeout=10)
    assert page.status_code == 200, page.text
    secret = url.rsplit("/", 1)[1]
    return http.post(
        url.rsplit("/", 1)[0],
        data={"csrf_token": csrf_of(page.text), "secret": secret},
        allow_redirects=False,
        timeout=10,
    )


def post_form(http: requests.Session, page_url: str, action: str, **form: Any) -> requests.Response:
    """POST ``form`` to ``action`` with the CSRF token of ``page_url`` (not followed)."""
    page = http.get(page_url, timeout=10)
    return http.post(
        action, data={"csrf_token": csrf_of(page.text), **form}, allow_redirects=False, timeout=10
    )


@pytest.fixture
def console(isolated_issuer: Callable[..., LiveIssuer]) -> Console:
    """Return an issuer on its own database with the console on and a movable clock."""
    clock = Clock()
    return Console(isolated_issuer(clock=clock, console=True), clock)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Start headless Chromium once for this module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """Return a page in a fresh browser context (no cookies)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()
