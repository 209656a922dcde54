"""Unit tests of ``keyswap.issuer.config``: defaults per CONTRACT, bad values name the variable."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from keyswap.issuer.config import ConfigError, Settings, is_loopback_host
from keyswap.jwks import decode_kek, generate_kek


@pytest.fixture
def data_env(tmp_path: Path) -> dict[str, str]:
    """An environment with its data directory in a temporary directory and a fixed KEK."""
    return {"KEYSWAP_DATA_DIR": str(tmp_path / "data"), "KEYSWAP_KEY_ENCRYPTION_KEY": KEK}


KEK = generate_kek()


def test_defaults_follow_the_contract(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="keyswap.issuer.config"):
        settings = Settings.from_env({})
    data_dir = tmp_path / ".keyswap"
    assert settings.data_dir == Path(".keyswap")
    assert settings.database_url == f"sqlite:///{data_dir.resolve() / 'keyswap.db'}"
    assert settings.issuer == "http://127.0.0.1:8000"
    assert settings.fallback_audience == "http://127.0.0.1:8000"
    assert settings.max_token_ttl == 3600
    assert settings.default_token_ttl == 300
    assert settings.redis_url is None
    assert settings.signing_alg == "ES256"
    assert settings.key_rotation_period == 2592000
    assert settings.key_prepublish == 3600
    assert settings.rate_limit_client == "50/second"
    assert settings.rate_limit_address == "500/second"
    assert settings.rate_limit_failures == "20/minute"
    assert settings.trusted_proxies == 0
    assert settings.token_endpoint == "http://127.0.0.1:8000/oauth/token"
    assert settings.generated_kek_file == Path(".keyswap/kek")
    assert "generated a new key-encryption key" in caplog.text


def test_an_unset_variable_gives_the_field_default(data_env):
    settings = Settings.from_env(data_env)
    # Every field read from the environment has its dataclass default, written once.
    assert settings == Settings(
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        key_encryption_key=settings.key_encryption_key,
    )
    empty = {name: "" for name in ("KEYSWAP_CONSOLE", "KEYSWAP_STATUS_LIST_TTL", "KEYSWAP_ISSUER")}
    assert Settings.from_env({**data_env, **empty}) == settings


def test_generated_kek_is_mode_0600_and_reused(data_env, caplog):
    del data_env["KEYSWAP_KEY_ENCRYPTION_KEY"]
    first = Settings.from_env(data_env)
    kek_file = Path(data_env["KEYSWAP_DATA_DIR"]) / "kek"
    assert first.generated_kek_file == kek_file
    assert stat.S_IMODE(kek_file.stat().st_mode) == 0o600
    assert decode_kek(kek_file.read_text()) == first.key_encryption_key
    caplog.clear()
    second = Settings.from_env(data_env)
    assert second.key_encryption_key == first.key_encryption_key
    assert second.generated_kek_file is None
    assert "generated" not in caplog.text
    # The key itself never reaches the log.
    assert kek_file.read_text().strip() not in caplog.text


def test_kek_from_environment_writes_no_file(data_env):
    settings = Settings.from_env(data_env)
    assert settings.key_encryption_key == decode_kek(KEK)
    assert settings.generated_kek_file is None
    assert not (Path(data_env["KEYSWAP_DATA_DIR"]) / "kek").exists()
    assert KEK not in repr(settings)


def test_every_variable_is_read(data_env):
    settings = Settings.from_env(
        {
            **data_env,
            "KEYSWAP_DATABASE_URL": "postgresql://db.internal/keyswap",
            "KEYSWAP_ISSUER": "https://issuer.example/",
            "KEYSWAP_DEFAULT_AUDIENCE": "https://api.example",
            "KEYSWAP_MAX_TOKEN_TTL": "900",
            "KEYSWAP_REDIS_URL": "redis://127.0.0.1:6379/0",
            "KEYSWAP_SIGNING_ALG": "EdDSA",
            "KEYSWAP_KEY_ROTATION_PERIOD": "0",
            "KEYSWAP_KEY_PREPUBLISH": "60",
            "KEYSWAP_RATE_LIMIT_CLIENT": "off",
            "KEYSWAP_RATE_LIMIT_ADDRESS": "0",
            "KEYSWAP_RATE_LIMIT_FAILURES": "5/minute",
            "KEYSWAP_TRUSTED_PROXIES": "1",
            "KEYSWAP_KEY_REFRESH_INTERVAL": "2.5",
        }
    )
    assert settings.database_url == "postgresql://db.internal/keyswap"
    assert settings.issuer == "https://issuer.example"  # no trailing slash in iss
    assert settings.fallback_audience == "https://api.example"
    assert settings.max_token_ttl == 900
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.signing_alg == "EdDSA"
    assert settings.rotation_schedule.period is None
    assert settings.key_prepublish == 60
    assert (settings.rate_limit_client, settings.rate_limit_address) == ("off", "off")
    assert settings.rate_limit_failures == "5/minute"
    assert settings.trusted_proxies == 1
    assert settings.key_refresh_interval == 2.5


@pytest.mark.parametrize(("raw", "allowed"), [(None, False), ("0", False), ("1", True)])
def test_outbound_allow_private_is_off_unless_set(data_env, raw, allowed):
    env = data_env if raw is None else {**data_env, "KEYSWAP_OUTBOUND_ALLOW_PRIVATE": raw}
    assert Settings.from_env(env).outbound_allow_private is allowed


def test_default_token_ttl_is_clamped_to_a_lower_maximum(data_env):
    settings = Settings.from_env({**data_env, "KEYSWAP_MAX_TOKEN_TTL": "60"})
    assert settings.default_token_ttl == 60


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KEYSWAP_MAX_TOKEN_TTL", "an hour"),
        ("KEYSWAP_MAX_TOKEN_TTL", "0"),
        ("KEYSWAP_KEY_ROTATION_PERIOD", "-1"),
        ("KEYSWAP_KEY_PREPUBLISH", "1.5"),
        ("KEYSWAP_TRUSTED_PROXIES", "yes"),
        ("KEYSWAP_OUTBOUND_ALLOW_PRIVATE", "maybe"),
        ("KEYSWAP_KEY_REFRESH_INTERVAL", "-1"),
        ("KEYSWAP_KEY_REFRESH_INTERVAL", "soon"),
        ("KEYSWAP_RATE_LIMIT_CLIENT", "lots"),
        ("KEYSWAP_RATE_LIMIT_ADDRESS", "10 per fortnight"),
        ("KEYSWAP_RATE_LIMIT_FAILURES", "x/minute"),
        ("KEYSWAP_RATE_LIMIT_UNKNOWN_KEYS", "many"),
        ("KEYSWAP_STATUS_LIST_TTL", "0"),
        ("KEYSWAP_CONSOLE", "perhaps"),
        ("KEYSWAP_CONSOLE_SESSION_TTL", "59"),
        ("KEYSWAP_CONSOLE_LINK_TTL", "29"),
        ("KEYSWAP_CONSOLE_RETENTION_DAYS", "0"),
        ("KEYSWAP_SIGNING_ALG", "HS256"),
        ("KEYSWAP_KEY_ENCRYPTION_KEY", "too-short"),
        ("KEYSWAP_ISSUER", "http://issuer.example"),
        ("KEYSWAP_ISSUER", "http://10.0.0.1:8000"),
        ("KEYSWAP_ISSUER", "https://issuer.example/?tenant=a"),
        ("KEYSWAP_ISSUER", "https://issuer.example/#top"),
        ("KEYSWAP_ISSUER", "ftp://issuer.example"),
        ("KEYSWAP_ISSUER", "issuer.example"),
    ],
)
def test_bad_value_stops_start_up_naming_the_variable(data_env, name, value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**data_env, name: value})
    assert name in str(caught.value)


def test_bad_kek_file_names_the_file(data_env):
    del data_env["KEYSWAP_KEY_ENCRYPTION_KEY"]
    kek_file = Path(data_env["KEYSWAP_DATA_DIR"]) / "kek"
    kek_file.parent.mkdir(parents=True)
    kek_file.write_text("not a key\n")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(data_env)
    assert str(kek_file) in str(caught.value)


@pytest.mark.parametrize(
    "issuer",
    ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000", "http://127.0.0.2"],
)
def test_http_issuer_is_accepted_for_loopback_hosts(data_env, issuer):
    assert Settings.from_env({**data_env, "KEYSWAP_ISSUER": issuer}).issuer == issuer


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("127.10.0.1", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("localhost.example", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback_host(host, loopback):
    assert is_loopback_host(host) is loopback


def test_settings_are_frozen_and_with_changes_revalidates(data_env):
    settings = Settings.from_env(data_env)
    with pytest.raises(AttributeError):
        settings.issuer = "https://other.example"  # type: ignore[misc]
    assert settings.with_changes(max_token_ttl=60).max_token_ttl == 60
    with pytest.raises(ConfigError, match="KEYSWAP_ISSUER"):
        settings.with_changes(issuer="http://issuer.example")


def test_data_dir_is_created_owner_only_and_the_sqlite_file_0600(tmp_path):
    from keyswap.issuer.db import make_engine

    data_dir = tmp_path / "fresh" / "data"
    settings = Settings.from_env({"KEYSWAP_DATA_DIR": str(data_dir)})
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:  # SQLite opens (and WAL-initialises) the file
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.commit()
    finally:
        engine.dispose()
    for path in data_dir.iterdir():  # keyswap.db, its -wal/-shm files, kek
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_kek_file_readable_by_others_is_warned_about(data_env, caplog):
    del data_env["KEYSWAP_KEY_ENCRYPTION_KEY"]
    Settings.from_env(data_env)
    kek_file = Path(data_env["KEYSWAP_DATA_DIR"]) / "kek"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="keyswap.issuer.config"):
        Settings.from_env(data_env)
    assert "accessible by group or others" not in caplog.text
    kek_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="keyswap.issuer.config"):
        settings = Settings.from_env(data_env)
    assert settings.key_encryption_key == decode_kek(kek_file.read_text())
    assert f"{kek_file} is accessible by group or others (mode 0644)" in caplog.text
    assert f"chmod 600 {kek_file}" in caplog.text
    assert kek_file.read_text().strip() not in caplog.text


OIDC_ENV = {
    "KEYSWAP_CONSOLE_OIDC_ISSUER": "https://login.example/realms/ops/",
    "KEYSWAP_CONSOLE_OIDC_CLIENT_ID": "keyswap-console",
    "KEYSWAP_CONSOLE_OIDC_CLIENT_SECRET": "s3cret-value",
}


def test_console_oidc_is_off_unless_an_issuer_is_set(data_env):
    assert Settings.from_env(data_env).console_oidc is None


def test_console_oidc_reads_its_variables_and_hides_the_secret(data_env):
    settings = Settings.from_env(
        {
            **data_env,
            **OIDC_ENV,
            "KEYSWAP_CONSOLE_OIDC_NAME": "Ops SSO",
            "KEYSWAP_CONSOLE_OIDC_SUBJECTS": "alice  bob",
            "KEYSWAP_CONSOLE_OIDC_GROUP": "keyswap-operators",
            "KEYSWAP_CONSOLE_OIDC_GROUP_CLAIM": "roles",
        }
    )
    oidc = settings.console_oidc
    assert oidc is not None
    assert oidc.issuer == "https://login.example/realms/ops"
    assert (oidc.client_id, oidc.client_secret, oidc.name) == (
        "keyswap-console",
        "s3cret-value",
        "Ops SSO",
    )
    assert oidc.subjects == {"alice", "bob"}
    assert (oidc.group, oidc.group_claim) == ("keyswap-operators", "roles")
    assert "s3cret-value" not in repr(settings)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({}, "KEYSWAP_CONSOLE_OIDC_SUBJECTS"),  # nobody may sign in: a mistake
        (
            {
                "KEYSWAP_CONSOLE_OIDC_ISSUER": "http://login.example",
                "KEYSWAP_CONSOLE_OIDC_GROUP": "g",
            },
            "KEYSWAP_CONSOLE_OIDC_ISSUER",
        ),
        (
            {"KEYSWAP_CONSOLE_OIDC_CLIENT_ID": "", "KEYSWAP_CONSOLE_OIDC_GROUP": "g"},
            "KEYSWAP_CONSOLE_OIDC_CLIENT_ID",
        ),
    ],
)
def test_incomplete_console_oidc_stops_start_up_naming_the_variable(data_env, changes, named):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**data_env, **OIDC_ENV, **changes})
    assert named in str(caught.value)
