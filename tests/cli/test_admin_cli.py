"""``keyswap --help``, ``db upgrade``, ``tenants`` and ``users`` through the CLI runner."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from keyswap.issuer.cli import cli
from keyswap.issuer.context import Keyswap
from keyswap.issuer.db import Base

from ..conftest import make_settings
from .invoke import misused, ok, refused, run

GROUPS = ["db", "tenants", "users", "clients", "tokens", "keys", "legacy"]
#: Commands that run a server in the foreground and print no result to format.
SERVERS = {"serve", "shim"}


def _walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _walk(sub, [*path, name])
    else:
        yield path, command


#: Every leaf command, e.g. ["clients", "create"]; read from the CLI so none is missed.
COMMANDS = [path for path, _ in _walk(cli, [])]


def test_root_help_lists_every_group_and_exits_0(runner):
    outcome = run(runner, "--help", as_json=False)
    assert outcome.code == 0
    for name in [*GROUPS, "audit", "serve", "demo"]:
        assert name in outcome.stdout


@pytest.mark.parametrize("group", GROUPS)
def test_group_help_exits_0(runner, group):
    outcome = run(runner, group, "--help", as_json=False)
    assert outcome.code == 0
    assert "Usage:" in outcome.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_command_help_exits_0(runner, command):
    outcome = run(runner, *command, "--help", as_json=False)
    assert outcome.code == 0
    assert "Usage:" in outcome.stdout


def test_version_names_keyswap_and_its_distribution_version(runner):
    from importlib.metadata import version

    outcome = run(runner, "--version", as_json=False)
    assert outcome.code == 0
    assert outcome.stdout == f"keyswap {version('keyswap')}\n"
    assert "Flask" not in outcome.stdout


def test_unknown_command_is_a_usage_error(runner):
    assert "No such command" in misused(runner, "frobnicate")


def test_db_upgrade_creates_every_table_on_a_fresh_database(databases, kek, tmp_path):
    from keyswap.issuer import create_app

    app = create_app(make_settings(databases.create(), kek, tmp_path))
    keyswap: Keyswap = app.extensions["keyswap"]
    try:
        assert inspect(keyswap.engine).get_table_names() == []
        first = ok(app.test_cli_runner(), "db", "upgrade")
        assert first["status"] == "upgraded"
        tables = set(inspect(keyswap.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        # Idempotent: a second run finds nothing to do and succeeds.
        assert ok(app.test_cli_runner(), "db", "upgrade")["status"] == "upgraded"
    finally:
        keyswap.dispose()


def test_db_upgrade_never_prints_the_database_password(databases, kek, tmp_path):
    from keyswap.issuer import create_app

    if not databases.is_postgres:
        pytest.skip("needs PostgreSQL: SQLite URLs carry no password")
    # The test server trusts local connections, so any password is accepted.
    url = make_url(databases.create()).set(password="s3cret-pw")
    app = create_app(make_settings(url.render_as_string(hide_password=False), kek, tmp_path))
    try:
        outcome = run(app.test_cli_runner(), "db", "upgrade")
        assert outcome.code == 0, outcome.stderr
        assert "s3cret-pw" not in outcome.stdout + outcome.stderr
        assert outcome.data["database"].endswith(url.database or "")
    finally:
        app.extensions["keyswap"].dispose()


def test_tenants_create_suspend_activate_report_status(runner):
    created = ok(runner, "tenants", "create", "globex")
    assert (created["name"], created["status"]) == ("globex", "active")
    suspended = ok(runner, "tenants", "suspend", "globex", "--reason", "unpaid")
    assert suspended["status"] == "suspended"
    assert suspended["changed_at"] >= created["changed_at"]
    assert ok(runner, "tenants", "activate", "globex")["status"] == "active"


def test_tenants_list_shows_every_tenant_with_its_status(runner):
    assert ok(runner, "tenants", "list") == []
    ok(runner, "tenants", "create", "globex")
    ok(runner, "users", "create", "alice", "--tenant", "acme")
    ok(runner, "tenants", "suspend", "globex")
    listed = ok(runner, "tenants", "list")
    assert [(t["name"], t["status"]) for t in listed] == [
        ("acme", "active"),
        ("globex", "suspended"),
    ]
    text = run(runner, "tenants", "list", as_json=False)
    assert text.code == 0
    assert "globex" in text.stdout and "suspended" in text.stdout


def test_tenants_create_duplicate_name_is_a_domain_error(runner):
    ok(runner, "tenants", "create", "globex")
    assert refused(runner, "tenants", "create", "globex") == (
        "a tenant named 'globex' already exists"
    )


def test_tenants_suspend_unknown_tenant_is_a_domain_error(runner):
    assert refused(runner, "tenants", "suspend", "nowhere") == "no tenant named 'nowhere'"
    assert refused(runner, "tenants", "activate", "nowhere") == "no tenant named 'nowhere'"


def test_tenants_create_bad_name_is_a_domain_error(runner):
    assert "tenant name ' bad' must be" in refused(runner, "tenants", "create", " bad")


def test_domain_error_without_json_goes_to_stderr_as_text(runner):
    outcome = run(runner, "tenants", "suspend", "nowhere", as_json=False)
    assert outcome.code == 1
    assert outcome.stdout == ""
    assert outcome.stderr == "Error: no tenant named 'nowhere'\n"


def test_users_create_in_default_tenant_as_user(runner):
    user = ok(runner, "users", "create", "alice")
    assert user["name"] == "alice"
    assert user["tenant"] == "default"
    assert user["kind"] == "user"
    assert user["status"] == "active"
    assert user["id"].startswith("usr_")


def test_users_create_service_account_in_named_tenant_creates_the_tenant(runner):
    user = ok(runner, "users", "create", "billing-svc", "--tenant", "acme", "--service-account")
    assert (user["tenant"], user["kind"]) == ("acme", "service_account")
    assert user["id"].startswith("svc_")
    # The tenant now exists: creating it again is a conflict.
    assert "already exists" in refused(runner, "tenants", "create", "acme")


def test_users_list_shows_users_with_tenant_kind_and_status(runner):
    assert ok(runner, "users", "list") == []
    alice = ok(runner, "users", "create", "alice")
    ok(runner, "users", "create", "billing-svc", "--tenant", "acme", "--service-account")
    ok(runner, "users", "delete", "alice")
    listed = ok(runner, "users", "list")
    assert [(u["name"], u["tenant"], u["kind"], u["status"]) for u in listed] == [
        ("alice", "default", "user", "deleted"),  # a tombstone is still listed
        ("billing-svc", "acme", "service_account", "active"),
    ]
    assert listed[0]["id"] == alice["id"]
    assert [u["name"] for u in ok(runner, "users", "list", "--tenant", "acme")] == ["billing-svc"]


def test_users_create_duplicate_name_is_a_domain_error(runner):
    ok(runner, "users", "create", "alice")
    assert refused(runner, "users", "create", "alice", "--tenant", "other") == (
        "a user named 'alice' already exists"
    )


@pytest.mark.parametrize("verb", ["deactivate", "suspend", "activate", "delete"])
def test_users_status_change_of_unknown_user_is_a_domain_error(runner, verb):
    assert refused(runner, "users", verb, "nobody") == "no user named 'nobody'"


@pytest.mark.parametrize(
    ("verb", "status"),
    [("deactivate", "deactivated"), ("suspend", "suspended"), ("delete", "deleted")],
)
def test_users_status_change_then_activate(runner, verb, status):
    ok(runner, "users", "create", "alice")
    assert ok(runner, "users", verb, "alice", "--reason", "left")["status"] == status
    if status == "deleted":
        assert refused(runner, "users", "activate", "alice") == (
            "user 'alice' is deleted; deletion is final"
        )
    else:
        assert ok(runner, "users", "activate", "alice")["status"] == "active"


def test_user_status_is_visible_over_http(live_issuer, runner):
    creds = live_issuer.create_client(user="alice")
    ok(runner, "users", "suspend", "alice")
    refused_token = live_issuer.token(creds)
    assert refused_token.status_code == 400
    assert refused_token.json() == {
        "error": "invalid_grant",
        "error_description": "the user associated with this key is suspended",
    }
    ok(runner, "users", "activate", "alice")
    assert live_issuer.token(creds).status_code == 200


def test_tenant_status_is_visible_over_http(live_issuer, runner):
    creds = live_issuer.create_client(user="alice", tenant="globex")
    ok(runner, "tenants", "suspend", "globex")
    body = live_issuer.token(creds).json()
    assert body["error"] == "invalid_grant"
    assert body["error_description"] == "the tenant globex associated with this key is suspended"
    ok(runner, "tenants", "activate", "globex")
    assert live_issuer.token(creds).status_code == 200


def test_every_command_accepts_json():
    # The --json flag is on every command (CONTRACT "Command line"), but for the servers.
    commands = {" ".join(path): cmd for path, cmd in _walk(cli, [])}
    missing = {name for name, cmd in commands.items() if "--json" not in _options(cmd)}
    assert missing <= SERVERS
    assert {"clients create", "keys rotate", "audit", "db upgrade"} <= commands.keys()


def _options(command: object) -> set[str]:
    params = getattr(command, "params", [])
    return {opt for param in params for opt in getattr(param, "opts", [])}
