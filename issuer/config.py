"""Settings: the one reader of ``KEYSWAP_*`` environment variables (CONTRACT "Configuration").

``Settings.from_env()`` turns the environment into a frozen, typed value; a bad value
stops start-up with a message that names the variable. Tests build ``Settings`` directly.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from keyswap.jwks import (
    ALGORITHMS,
    DEFAULT_ALG,
    InvalidKeyEncryptionKey,
    Schedule,
    decode_kek,
    generate_kek,
)

from .errors import ConfigError as ConfigError  # re-exported

log = logging.getLogger(__name__)

DEFAULT_ISSUER = "http://127.0.0.1:8000"
DEFAULT_TOKEN_TTL = 300
DEFAULT_MAX_TOKEN_TTL = 3600
KEK_FILE_NAME = "kek"
#: Seconds allowed for clocks of the processes sharing one database to disagree.
KEY_CLOCK_SKEW = 1.0
#: The data directory holds the database (secret hashes, sealed keys, the audit log) and the
#: KEK: only its owner may enter it.
DATA_DIR_MODE = 0o700


@dataclass(frozen=True)
class ConsoleOidc:
    """The upstream OpenID provider operators sign in to the console with."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    #: The sign-in button's label ("Sign in with <name>").
    name: str = "OpenID provider"
    #: Operators of every tenant: these ``sub`` values, and members of ``group``.
    subjects: frozenset[str] = frozenset()
    group: str | None = None
    group_claim: str = "groups"


def is_loopback_host(host: str | None) -> bool:
    """Tell whether ``host`` names this machine (``localhost`` or a loopback address)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_issuer(issuer: str) -> str:
    # RFC 8414 §2: the issuer is a URL using the "https" scheme with no query or fragment.
    # We allow plain http only on loopback so that `keyswap demo` works without TLS.
    parts = urlsplit(issuer)
    if parts.query or parts.fragment or not parts.hostname:
        raise ConfigError(f"KEYSWAP_ISSUER must be a URL without query or fragment: {issuer!r}")
    if parts.scheme == "https":
        return issuer.rstrip("/")
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return issuer.rstrip("/")
    raise ConfigError(
        f"KEYSWAP_ISSUER must use https (http is accepted only for loopback hosts): {issuer!r}"
    )


def _variable(name: str) -> str:
    """Return the environment variable of the field ``name`` (CONTRACT "Configuration")."""
    return f"KEYSWAP_{name.upper()}"


def _raw(env: Mapping[str, str], name: str) -> str | None:
    """Return the variable of field ``name``, or None if it is unset or empty."""
    return env.get(_variable(name)) or None


def _text(env: Mapping[str, str], name: str) -> Any:
    return _raw(env, name) or _default(name)


def _int(env: Mapping[str, str], name: str, *, minimum: int = 0) -> int:
    raw = _raw(env, name)
    if raw is None:
        return int(_default(name))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{_variable(name)} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{_variable(name)} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str) -> float:
    raw = _raw(env, name)
    if raw is None:
        return float(_default(name))
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{_variable(name)} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{_variable(name)} cannot be negative, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (_raw(env, name) or "").strip().lower()
    if raw == "":
        return bool(_default(name))
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{_variable(name)} must be 1 or 0, got {raw!r}")


def _limit(env: Mapping[str, str], name: str) -> str:
    raw = (_raw(env, name) or _default(name)).strip()
    if raw.lower() in {"0", "off", "none"}:
        return "off"
    try:
        from limits import parse_many

        parse_many(raw)
    except ValueError:
        raise ConfigError(
            f"{_variable(name)} must be a rate limit like '50/second' or '10/minute', or 'off': "
            f"{raw!r}"
        ) from None
    return raw


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server reads from its environment, typed and validated."""

    data_dir: Path
    database_url: str
    key_encryption_key: bytes = field(repr=False)
    issuer: str = DEFAULT_ISSUER
    default_audience: str = ""
    default_token_ttl: int = DEFAULT_TOKEN_TTL
    max_token_ttl: int = DEFAULT_MAX_TOKEN_TTL
    redis_url: str | None = None
    jwks_max_age: int = 300
    max_request_bytes: int = 16 * 1024
    signing_alg: str = DEFAULT_ALG
    #: How long a signing key signs before the next takes over; 0 turns automatic rotation off.
    key_rotation_period: int = 30 * 24 * 3600
    #: How long a new key is published before it signs (longer than verifiers cache the JWKS).
    key_prepublish: int = 3600
    #: How often a process re-reads the key table (and applies a due rotation step). Every
    #: process must use the same value: a new key signs only after twice this interval plus
    #: ``KEY_CLOCK_SKEW``, when every process has re-read the table and publishes it.
    key_refresh_interval: float = 10.0
    #: Limit strings of the `limits` library ("50/second", "10/minute"); "0" or "off" disables one.
    rate_limit_client: str = "50/second"
    rate_limit_address: str = "500/second"
    rate_limit_failures: str = "20/minute"
    #: Unknown legacy API keys across every address (a global budget against guessing).
    rate_limit_unknown_keys: str = "5000/hour"
    #: How many reverse proxies in front set X-Forwarded-For / -Proto (0: trust none).
    trusted_proxies: int = 0
    #: Whether outbound fetches (client jwks_uri) may reach loopback, private or link-local
    #: addresses; off in production, on for tests and demos.
    outbound_allow_private: bool = False
    #: The total time one outbound fetch may take, headers and body included.
    outbound_deadline: float = 5.0
    #: Seconds verifiers may cache a status list (its ``ttl``).
    status_list_ttl: int = 60
    #: Whether ``/console`` (the operator console) is served; ``keyswap demo`` turns it on.
    console: bool = False
    #: How long a console sign-in lasts, and how long a one-time login link stays usable.
    console_session_ttl: int = 8 * 3600
    console_link_ttl: int = 300
    #: Days the console's per-minute and per-hour traffic counts are kept.
    console_retention_days: int = 14
    #: Sign-in to the console through an upstream OpenID provider, when configured.
    console_oidc: ConsoleOidc | None = None
    #: The KEK file this start generated, if it did (start-up refuses to use it on a
    #: database that already has keys, rather than silently starting a second key set).
    generated_kek_file: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "issuer", _check_issuer(self.issuer))
        if len(self.key_encryption_key) != 32:
            raise ConfigError("KEYSWAP_KEY_ENCRYPTION_KEY must decode to 32 bytes")
        if self.default_token_ttl > self.max_token_ttl:
            object.__setattr__(self, "default_token_ttl", self.max_token_ttl)
        if self.signing_alg not in ALGORITHMS:
            raise ConfigError(
                f"KEYSWAP_SIGNING_ALG must be one of {', '.join(ALGORITHMS)}: {self.signing_alg!r}"
            )

    @property
    def fallback_audience(self) -> str:
        """Return ``aud`` for credentials without audiences: the setting, else the issuer."""
        return self.default_audience or self.issuer

    @property
    def rotation_schedule(self) -> Schedule:
        """Return the automatic rotation policy."""
        period = timedelta(seconds=self.key_rotation_period) if self.key_rotation_period else None
        return Schedule(
            period=period,
            prepublish=timedelta(seconds=self.key_prepublish),
            settle=timedelta(seconds=2 * self.key_refresh_interval + KEY_CLOCK_SKEW),
        )

    @property
    def token_endpoint(self) -> str:
        """Return the absolute URL of the token endpoint."""
        return f"{self.issuer}/oauth/token"

    def with_changes(self, **changes: object) -> Settings:
        """Return a copy with some fields replaced (used by tests and the CLI)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default ``os.environ``), generating the KEK if absent.

        Field ``name`` is read from ``KEYSWAP_<NAME>``; a variable that is unset or empty
        gives the field's default, so each default is written once, on the field.
        """
        env = os.environ if env is None else env
        data_dir = Path(env.get("KEYSWAP_DATA_DIR") or "./.keyswap").expanduser()
        database_url = env.get("KEYSWAP_DATABASE_URL") or ""
        if not database_url:
            make_data_dir(data_dir)
            database_url = f"sqlite:///{data_dir.resolve() / 'keyswap.db'}"
        kek, generated = _load_kek(env, data_dir)
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            key_encryption_key=kek,
            generated_kek_file=generated,
            issuer=_text(env, "issuer"),
            default_audience=_text(env, "default_audience"),
            max_token_ttl=_int(env, "max_token_ttl", minimum=1),
            redis_url=_text(env, "redis_url"),
            signing_alg=_text(env, "signing_alg"),
            key_rotation_period=_int(env, "key_rotation_period"),
            key_prepublish=_int(env, "key_prepublish"),
            rate_limit_client=_limit(env, "rate_limit_client"),
            rate_limit_address=_limit(env, "rate_limit_address"),
            rate_limit_failures=_limit(env, "rate_limit_failures"),
            rate_limit_unknown_keys=_limit(env, "rate_limit_unknown_keys"),
            trusted_proxies=_int(env, "trusted_proxies"),
            key_refresh_interval=_float(env, "key_refresh_interval"),
            outbound_allow_private=_flag(env, "outbound_allow_private"),
            status_list_ttl=_int(env, "status_list_ttl", minimum=1),
            console=_flag(env, "console"),
            console_session_ttl=_int(env, "console_session_ttl", minimum=60),
            console_link_ttl=_int(env, "console_link_ttl", minimum=30),
            console_retention_days=_int(env, "console_retention_days", minimum=1),
            console_oidc=_console_oidc(env),
        )


@cache
def _defaults() -> dict[str, Any]:
    return {f.name: f.default for f in fields(Settings) if f.default is not MISSING}


def _default(name: str) -> Any:
    """Return the default of ``Settings.<name>``, the one place it is written."""
    return _defaults()[name]


def _console_oidc(env: Mapping[str, str]) -> ConsoleOidc | None:
    """Read ``KEYSWAP_CONSOLE_OIDC_*``: None unless an issuer is set; then it must be complete."""
    issuer = env.get("KEYSWAP_CONSOLE_OIDC_ISSUER") or ""
    if not issuer:
        return None
    parts = urlsplit(issuer)
    # OIDC Discovery §4.3: the issuer is an https URL (http only on this machine, for tests).
    if (
        parts.query
        or parts.fragment
        or not (
            parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))
        )
    ):
        raise ConfigError(f"KEYSWAP_CONSOLE_OIDC_ISSUER must be an https URL: {issuer!r}")
    client_id = env.get("KEYSWAP_CONSOLE_OIDC_CLIENT_ID") or ""
    if not client_id:
        raise ConfigError("KEYSWAP_CONSOLE_OIDC_CLIENT_ID is required with an OIDC issuer")
    subjects = frozenset((env.get("KEYSWAP_CONSOLE_OIDC_SUBJECTS") or "").split())
    group = env.get("KEYSWAP_CONSOLE_OIDC_GROUP") or None
    if not subjects and not group:
        raise ConfigError(
            "KEYSWAP_CONSOLE_OIDC_SUBJECTS or KEYSWAP_CONSOLE_OIDC_GROUP must name who may "
            "sign in through the OpenID provider"
        )
    return ConsoleOidc(
        issuer=issuer.rstrip("/"),
        client_id=client_id,
        client_secret=env.get("KEYSWAP_CONSOLE_OIDC_CLIENT_SECRET") or "",
        name=env.get("KEYSWAP_CONSOLE_OIDC_NAME") or "OpenID provider",
        subjects=subjects,
        group=group,
        group_claim=env.get("KEYSWAP_CONSOLE_OIDC_GROUP_CLAIM") or "groups",
    )


def make_data_dir(data_dir: Path) -> None:
    """Create the data directory, owner-only (0700), if it does not exist yet.

    An existing directory keeps its mode: changing an operator's choice silently is worse
    than the warning the KEK file check gives.
    """
    data_dir.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)


def _warn_if_exposed(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "the key-encryption key file %s is accessible by group or others (mode %04o); "
            "anyone who reads it can unseal the signing keys: chmod 600 %s",
            path,
            mode,
            path,
        )


def _load_kek(env: Mapping[str, str], data_dir: Path) -> tuple[bytes, Path | None]:
    """Return the KEK, and the file it was generated into if this call generated it."""
    raw = env.get("KEYSWAP_KEY_ENCRYPTION_KEY")
    if raw:
        try:
            return decode_kek(raw), None
        except InvalidKeyEncryptionKey as exc:
            raise ConfigError(f"KEYSWAP_KEY_ENCRYPTION_KEY: {exc}") from None
    path = data_dir / KEK_FILE_NAME
    if path.exists():
        _warn_if_exposed(path)
        try:
            return decode_kek(path.read_text()), None
        except InvalidKeyEncryptionKey as exc:
            raise ConfigError(f"{path}: {exc}") from None
    make_data_dir(data_dir)
    text = generate_kek()
    # O_EXCL: two processes starting together must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return decode_kek(path.read_text()), None
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    log.warning(
        "KEYSWAP_KEY_ENCRYPTION_KEY is not set: generated a new key-encryption key in %s "
        "(mode 0600). Back it up, or set KEYSWAP_KEY_ENCRYPTION_KEY in production: without it "
        "the signing keys and client secrets in the database cannot be used.",
        path,
    )
    return decode_kek(text), path
