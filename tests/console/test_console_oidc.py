"""Console sign-in through a real OpenID provider: node-oidc-provider, driven in Chromium.

The provider runs as a Node process (``oidc_provider/provider.mjs``, its packages put in
a cache directory by ``npm ci``) with its development login, where any login name becomes
the subject. It is reached as ``localhost`` while the console is ``127.0.0.1``: two sites,
so the browser treats the redirect back as cross-site, as it would in production, and
withholds the SameSite=Strict session cookie from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pytest
import requests

from keyswap.issuer.config import ConsoleOidc

from ..conftest import LiveIssuer
from .conftest import CHROMIUM, Clock, Console

if TYPE_CHECKING:
    from playwright.sync_api import Page

HERE = Path(__file__).parent / "oidc_provider"
CLIENT_ID = "keyswap-console"
GROUP = "keyswap-operators"


@contextmanager
def socket_closed_port() -> Iterator[int]:
    """Hold a loopback port that nothing listens on (connections are refused)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def provider_modules() -> Path:
    """Return a node_modules root holding oidc-provider, installing it once per lock file."""
    lock = (HERE / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("KEYSWAP_TEST_NODE_CACHE") or Path.home() / ".cache/keyswap-tests")
    root = cache / f"oidc-provider-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not (root / "node_modules/oidc-provider/package.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=cache))
        for name in ("package.json", "package-lock.json"):
            shutil.copy(HERE / name, work / name)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=work,
            check=True,
            capture_output=True,
            timeout=600,
        )
        try:
            work.rename(root)
        except OSError:  # another run installed it first
            shutil.rmtree(work)
    return root / "node_modules"


def read_json_line(stream: IO[str]) -> dict[str, object]:
    """Read the provider's next JSON line from ``stream``."""
    line = stream.readline()
    assert line, "the OpenID provider exited"
    answer: dict[str, object] = json.loads(line)
    return answer


@dataclass
class Provider:
    """A running node-oidc-provider and the console that trusts it."""

    issuer: str
    console: Console
    secret: str


@pytest.fixture
def provider(isolated_issuer: Callable[..., LiveIssuer]) -> Iterator[Provider]:
    """Start the provider, then a console configured to sign in through it."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm run the OpenID provider: apt-get install nodejs npm")
    process = subprocess.Popen(
        ["node", str(HERE / "provider.mjs")],
        env={**os.environ, "OIDC_PROVIDER_DIR": str(provider_modules())},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout and process.stdin
        port = read_json_line(process.stdout)["port"]
        issuer = f"http://localhost:{port}"
        secret = os.urandom(16).hex()
        clock = Clock()
        live = isolated_issuer(
            clock=clock,
            console=True,
            console_oidc=ConsoleOidc(
                issuer=issuer,
                client_id=CLIENT_ID,
                client_secret=secret,
                name="Test IdP",
                subjects=frozenset({"alice"}),
                group=GROUP,
            ),
        )
        config = {
            "issuer": issuer,
            "client_id": CLIENT_ID,
            "client_secret": secret,
            "redirect_uri": live.url + "/console/oidc/callback",
        }
        process.stdin.write(json.dumps(config) + "\n")
        process.stdin.flush()
        assert read_json_line(process.stdout) == {"ready": True}
        yield Provider(issuer, Console(live, clock), secret)
    finally:
        process.terminate()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream:
                stream.close()


def sign_in_at_provider(page: Page, console: Console, login: str) -> None:
    """From the console's sign-in page, sign in at the provider as ``login`` and consent."""
    page.goto(console.url + "/")
    page.click("#sign-in-oidc")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.click("button[type=submit]")  # the consent prompt's "Continue"


needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)


@needs_chromium
def test_an_allow_listed_subject_signs_in_through_the_provider(
    page, provider: Provider, tmp_path: Path
) -> None:
    console = provider.console
    page.goto(console.url + "/")
    assert page.locator("#sign-in-oidc").inner_text() == "Sign in with Test IdP"
    sign_in_at_provider(page, console, "alice")
    page.wait_for_url(console.url + "/")
    assert page.locator("h1").inner_text() == "Overview"
    assert "console:oidc:alice" in page.locator("header").inner_text()
    page.screenshot(path=str(tmp_path / "oidc-overview.png"), full_page=True)

    page.goto(console.url + "/audit?action=console.signed_in")
    row = page.locator("table tbody tr").first.inner_text()
    assert "oidc:alice" in row


@needs_chromium
def test_a_member_of_the_operators_group_signs_in(page, provider: Provider) -> None:
    console = provider.console
    sign_in_at_provider(page, console, "team-bob")
    page.wait_for_url(console.url + "/")
    assert "console:oidc:team-bob" in page.locator("header").inner_text()


@needs_chromium
def test_a_subject_not_allowed_is_refused_and_gets_no_session(
    page, provider: Provider, tmp_path: Path
) -> None:
    console = provider.console
    sign_in_at_provider(page, console, "mallory")
    page.wait_for_selector("h1:has-text('Not an operator')")
    assert "signed you in as mallory" in page.locator("main").inner_text()
    page.screenshot(path=str(tmp_path / "oidc-refused.png"), full_page=True)

    answer = page.goto(console.url + "/principals")
    assert answer is not None and answer.status == 401
    cookies = page.context.cookies(console.url)
    assert all("mallory" not in c["value"] for c in cookies)


def test_a_callback_with_a_state_this_browser_did_not_start_is_refused(
    provider: Provider,
) -> None:
    console = provider.console
    http = requests.Session()
    start = http.get(console.url + "/oidc/login", allow_redirects=False, timeout=10)
    assert start.status_code == 302
    assert start.headers["Location"].startswith(provider.issuer + "/auth?")
    assert "code_challenge_method=S256" in start.headers["Location"]
    assert "nonce=" in start.headers["Location"]

    forged = http.get(
        console.url + "/oidc/callback",
        params={"code": "stolen", "state": "not-the-one"},
        timeout=10,
    )
    assert forged.status_code == 403
    assert "Sign-in not completed" in forged.text
    assert http.get(console.url + "/", timeout=10).status_code == 401


def test_an_unreachable_provider_is_a_502_page(
    isolated_issuer: Callable[..., LiveIssuer],
) -> None:
    with socket_closed_port() as port:
        live = isolated_issuer(
            console=True,
            console_oidc=ConsoleOidc(
                issuer=f"http://127.0.0.1:{port}",
                client_id=CLIENT_ID,
                client_secret="s",
                subjects=frozenset({"alice"}),
            ),
        )
        answer = requests.get(live.url + "/console/oidc/login", allow_redirects=False, timeout=30)
    assert answer.status_code == 502
    assert "could not be reached" in answer.text


def test_the_provider_routes_are_404_when_none_is_configured(console: Console) -> None:
    for path in ("/oidc/login", "/oidc/callback?code=x&state=y"):
        assert requests.get(console.url + path, timeout=10).status_code == 404
    assert "sign-in-oidc" not in requests.get(console.url + "/", timeout=10).text
