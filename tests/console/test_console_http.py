"""The console over HTTP: sign-in by one-time link, sessions, CSRF, headers, tenant reach."""

from __future__ import annotations

import pytest
import requests

from keyswap.issuer import create_app

from .conftest import Console, csrf_of, post_form, redeem

PAGES = ["/", "/legacy", "/principals", "/keys", "/audit"]
ACTIONS = [
    "/tenants/acme/suspend",
    "/users/alice/deactivate",
    "/users/alice/revoke-tokens",
    "/clients/c1/disable",
    "/clients/c1/rotate-secret",
    "/keys/rotate",
    "/keys/k1/revoke",
    "/logout",
]


@pytest.mark.parametrize("path", PAGES)
def test_console_pages_answer_401_without_a_session(console: Console, path: str) -> None:
    response = requests.get(console.url + path, timeout=10)
    assert response.status_code == 401
    assert "keyswap console link" in response.text
    assert "alice" not in response.text


@pytest.mark.parametrize("path", ACTIONS)
def test_console_actions_answer_401_without_a_session(console: Console, path: str) -> None:
    response = requests.post(console.url + path, data={"reason": "x"}, timeout=10)
    assert response.status_code == 401


def test_console_is_not_served_unless_enabled(live_issuer) -> None:
    response = requests.get(live_issuer.url + "/console/", timeout=10)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")


def test_login_link_signs_in_once_and_sets_a_strict_cookie(console: Console) -> None:
    http = requests.Session()
    link = console.link()
    answer = redeem(http, link)
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/console/")
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/console" in cookie
    assert "Secure" not in cookie  # a loopback issuer: plain http
    assert http.get(console.url + "/", timeout=10).status_code == 200

    again = redeem(requests.Session(), link)
    assert again.status_code == 403
    assert "already used or has expired" in again.text


def test_login_link_expires_after_a_few_minutes(console: Console) -> None:
    link = console.link()
    console.clock.advance(301)
    assert redeem(requests.Session(), link).status_code == 403


def test_unknown_login_link_is_refused(console: Console) -> None:
    link = console.link()
    forged = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
    assert redeem(requests.Session(), forged).status_code == 403


def test_session_expires(console: Console) -> None:
    http = console.sign_in()
    assert http.get(console.url + "/principals", timeout=10).status_code == 200
    console.clock.advance(8 * 3600 + 1)
    assert http.get(console.url + "/principals", timeout=10).status_code == 401


def test_sign_out_ends_the_session(console: Console) -> None:
    http = console.sign_in()
    answer = post_form(http, console.url + "/", console.url + "/logout")
    assert answer.status_code == 303
    assert http.get(console.url + "/", timeout=10).status_code == 401


def test_console_pages_carry_a_csp_admitting_only_their_own_styles(console: Console) -> None:
    http = console.sign_in()
    for path in PAGES:
        response = http.get(console.url + path, timeout=10)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "style-src 'self'" in csp
        assert "script-src" not in csp  # no script at all: default-src 'none' covers it
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"
        assert "<script" not in response.text
        assert "http://" not in response.text.replace(console.issuer.url, "")  # nothing remote
    css = requests.get(console.url + "/static/console.css", timeout=10)
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")


def test_form_without_csrf_token_is_refused_and_changes_nothing(console: Console) -> None:
    creds = console.issuer.create_client(user="alice")
    http = console.sign_in()
    answer = http.post(console.url + "/users/alice/deactivate", data={"reason": "left"}, timeout=10)
    assert answer.status_code == 400
    assert "CSRF" in answer.text
    assert console.issuer.token(creds).status_code == 200


def test_action_without_reason_is_refused_and_changes_nothing(console: Console) -> None:
    creds = console.issuer.create_client(user="alice")
    http = console.sign_in()
    answer = post_form(
        http, console.url + "/principals", console.url + "/users/alice/deactivate", reason=" "
    )
    assert answer.status_code == 422
    assert console.issuer.token(creds).status_code == 200


def test_deactivate_from_console_refuses_the_next_token_and_audits_the_reason(
    console: Console,
) -> None:
    creds = console.issuer.create_client(user="alice")
    http = console.sign_in()
    answer = post_form(
        http,
        console.url + "/principals",
        console.url + "/users/alice/deactivate",
        reason="left the company (ticket 42)",
    )
    assert answer.status_code == 303
    refused = console.issuer.token(creds)
    assert refused.status_code == 400
    assert refused.json()["error_description"] == "the user associated with this key is deactivated"
    audit = http.get(console.url + "/audit", params={"subject": "user:alice"}, timeout=10)
    assert "left the company (ticket 42)" in audit.text
    assert "user.deactivated" in audit.text


def test_revoke_tokens_from_console_cuts_off_at_the_app_clock(console: Console) -> None:
    console.clock.advance(3600)  # the app's clock is an hour ahead of the wall clock
    rs = console.issuer.create_client(user="orders-api", can_introspect=True)
    creds = console.issuer.create_client(user="alice")
    earlier = console.issuer.token(creds).json()["access_token"]
    http = console.sign_in()
    answer = post_form(
        http,
        console.url + "/principals",
        console.url + "/users/alice/revoke-tokens",
        reason="laptop stolen",
    )
    assert answer.status_code == 303
    # Issued an hour after the wall clock's "now": a wall-clock cutoff would leave it active.
    introspected = requests.post(
        f"{console.issuer.url}/oauth/introspect",
        data={"token": earlier},
        auth=(rs.client_id, str(rs.client_secret)),
        timeout=10,
    )
    assert introspected.json() == {"active": False}


def test_rotated_secret_is_shown_once_and_works(console: Console) -> None:
    creds = console.issuer.create_client(user="alice")
    http = console.sign_in()
    page = post_form(
        http,
        console.url + "/principals",
        console.url + f"/clients/{creds.client_id}/rotate-secret",
        reason="yearly rotation",
        grace="0",
    )
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    secret = page.text.split('id="new-secret" class="secret">', 1)[1].split("<", 1)[0]
    fresh = requests.post(
        console.issuer.token_url,
        data={"grant_type": "client_credentials"},
        auth=(creds.client_id, secret),
        timeout=10,
    )
    assert fresh.status_code == 200
    assert secret not in http.get(console.url + "/principals", timeout=10).text


def test_tenant_admin_sees_and_changes_only_their_tenant(console: Console) -> None:
    console.issuer.create_client(user="alice", tenant="acme")
    other = console.issuer.create_client(user="bob", tenant="globex")
    http = console.sign_in(tenant="acme")
    page = http.get(console.url + "/principals", timeout=10).text
    assert "alice" in page
    assert "bob" not in page and "globex" not in page
    for path in ("/keys", "/audit"):
        assert http.get(console.url + path, timeout=10).status_code == 403
    answer = post_form(
        http, console.url + "/principals", console.url + "/users/bob/deactivate", reason="x"
    )
    assert answer.status_code == 404
    assert console.issuer.token(other).status_code == 200


def test_link_for_an_unknown_tenant_is_refused(console: Console) -> None:
    from ..cli.invoke import run

    outcome = run(console.issuer.app.test_cli_runner(), "console", "link", "--tenant", "nope")
    assert outcome.code == 1
    assert "no tenant named 'nope'" in outcome.stderr


def test_session_cookie_is_secure_off_loopback(console: Console) -> None:
    settings = console.issuer.keyswap.settings.with_changes(issuer="https://keyswap.example")
    app = create_app(settings)
    try:
        link = console.link().replace(console.issuer.url, "https://keyswap.example")
        client = app.test_client()
        path = link.replace("https://keyswap.example", "")
        page = client.get(path, base_url="https://keyswap.example")
        answer = client.post(
            "/console/login",
            data={"csrf_token": csrf_of(page.text), "secret": path.rsplit("/", 1)[1]},
            base_url="https://keyswap.example",
        )
        assert answer.status_code == 303
        assert "Secure" in answer.headers["Set-Cookie"]
    finally:
        app.extensions["keyswap"].dispose()


def test_keys_page_rotates_and_revokes_only_with_confirmation_and_reason(console: Console) -> None:
    from sqlalchemy import select

    from keyswap.issuer.db import transaction
    from keyswap.issuer.models import AuditEvent, KeyState, SigningKey

    http = console.sign_in()
    keys = console.url + "/keys"
    assert post_form(http, keys, keys + "/rotate", alg="ES256").status_code == 303
    with transaction(console.issuer.keyswap.sessions) as session:
        waiting = session.scalars(select(SigningKey.kid).where(SigningKey.state == KeyState.NEXT))
        kid = waiting.one()
    assert kid[:16] in http.get(keys, timeout=10).text
    unconfirmed = post_form(http, keys, f"{keys}/{kid}/revoke", reason="leaked in a log")
    assert unconfirmed.status_code == 422
    answer = post_form(http, keys, f"{keys}/{kid}/revoke", reason="leaked in a log", confirm="on")
    assert answer.status_code == 303
    with transaction(console.issuer.keyswap.sessions) as session:
        assert session.get(SigningKey, kid).state is KeyState.REVOKED  # type: ignore[union-attr]
        event = session.scalars(
            select(AuditEvent).where(
                AuditEvent.subject == f"key:{kid}", AuditEvent.action == "key.revoked"
            )
        ).one()
        assert event.reason == "leaked in a log"
        assert event.actor.startswith("console:")
