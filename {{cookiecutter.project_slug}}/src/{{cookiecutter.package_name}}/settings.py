"""Runtime settings, read once from the environment and `st.secrets`, validated at start.

Environment variables win over `.streamlit/secrets.toml` keys of the same name, so a
container or a CI job can override a developer's local file. Every problem is
collected and reported together in one line, so a bad deployment fails fast with
a message that names the setting and the fix.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

SUPPORTED_DATABASES = ("postgresql", "postgresql+psycopg2")
# Without DATABASE_URL, the URLs are built from these (Kubernetes: a ConfigMap and a Secret).
DB_PARTS_REQUIRED = ("DB_HOST", "DB_NAME", "DB_USER")
DB_PARTS_OPTIONAL = ("DB_PASSWORD", "DB_PORT", "DB_REPLICA_HOST", "DB_DIRECT_HOST")
{%- if cookiecutter.auth == "oidc" %}
OIDC_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
{%- endif %}


class SettingsError(ValueError):
    """One or more settings are invalid; the message lists each of them."""


@dataclass(frozen=True)
class Settings:
    environment: str
    log_level: str
    database_url: str | None
    database_replica_url: str | None
    database_direct_url: str | None  # migrations: straight to the primary, past any pooler
    db_transaction_pooling: bool  # the hosts are PgBouncer in transaction mode
    data_dir: Path
    db_pool_size: int
    db_max_overflow: int
    db_pool_timeout_s: float
    db_pool_recycle_s: int
    db_statement_timeout_ms: int
    db_replica_max_lag_s: float
    db_replica_recheck_s: float
    cache_ttl_s: int
    cache_max_entries: int
    memory_limit_mib: int
    memory_warn_ratio: float
    memory_act_ratio: float
    memory_check_interval_s: float
    cgroup_root: Path
    show_system_page: bool
    seed_demo_data: bool
    app_instances: int  # containers/pods sharing the database: the connection budget check
{%- if cookiecutter.auth == "oidc" %}
    auth_allowed_domains: frozenset[str]
    auth_allowed_emails: frozenset[str]
    auth_admin_emails: frozenset[str]
    auth_email_verified_claim: str  # the claim that must be true before an e-mail counts
    oidc: dict[str, str] | None  # the [auth] secrets, when given as AUTH_* variables
{%- endif %}

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def sqlite_path(self) -> Path:
        """The embedded database used when no DATABASE_URL is configured."""
        return self.data_dir / "app.sqlite3"


def _secrets() -> Mapping[str, Any]:
    """`st.secrets` as a plain mapping; empty when there is no secrets file."""
    import streamlit as st

    try:
        return {key: st.secrets[key] for key in st.secrets}
    except (FileNotFoundError, st.errors.StreamlitSecretNotFoundError):
        return {}


class _Reader:
    """Reads typed values by name and collects every problem instead of stopping at one."""

    def __init__(self, source: Mapping[str, Any]) -> None:
        self._source = source
        self.errors: list[str] = []

    def _raw(self, name: str) -> str | None:
        value = self._source.get(name)
        if value is None or str(value).strip() == "":
            return None
        return str(value).strip()

    def _parse(self, name: str, default: Any, parse: Callable[[str], Any], rule: str) -> Any:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError:
            shown = str(default).lower() if isinstance(default, bool) else default  # as it is written
            self.errors.append(f"{name}={raw!r} {rule} (default {shown})")
            return default

    def integer(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        def parse(raw: str) -> int:
            value = int(raw)
            if value < minimum or (maximum is not None and value > maximum):
                raise ValueError
            return value

        upper = f" and at most {maximum}" if maximum is not None else ""
        return self._parse(name, default, parse, f"must be a whole number of at least {minimum}{upper}")

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        def parse(raw: str) -> float:
            value = float(raw)
            if not minimum <= value <= maximum:
                raise ValueError
            return value

        return self._parse(name, default, parse, f"must be a number between {minimum} and {maximum}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        def parse(raw: str) -> str:
            if raw.lower() not in choices:
                raise ValueError
            return raw.lower()

        return self._parse(name, default, parse, f"must be one of {', '.join(choices)}")

    def flag(self, name: str, default: bool) -> bool:
        truth = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}

        def parse(raw: str) -> bool:
            try:
                return truth[raw.lower()]
            except KeyError:
                raise ValueError(raw) from None

        return self._parse(name, default, parse, "must be true or false")

    def database_url(self, name: str) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        try:
            url = make_url(raw)
        except ArgumentError:
            self.errors.append(f"{name} is not a database URL (expected postgresql://user:pass@host/db)")
            return None
        if url.drivername not in SUPPORTED_DATABASES:
            supported = ", ".join(SUPPORTED_DATABASES)
            embedded = " (leave it unset for the embedded SQLite file in DATA_DIR)"
            hint = embedded if url.drivername.startswith("sqlite") else ""
            self.errors.append(f"{name} uses {url.drivername!r}; supported: {supported}{hint}")
            return None
        return raw

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def database_urls(self) -> tuple[str | None, str | None, str | None]:
        """(primary, replica, direct): DATABASE_URL and DATABASE_REPLICA_URL, else DB_* parts.

        The parts let Kubernetes pass the password from a Secret without assembling a URL
        from $(VAR) references, which only the kubelet expands.
        """
        if self._raw("DATABASE_URL") or self._raw("DATABASE_REPLICA_URL"):
            return self.database_url("DATABASE_URL"), self.database_url("DATABASE_REPLICA_URL"), None
        given = [name for name in (*DB_PARTS_REQUIRED, *DB_PARTS_OPTIONAL) if self._raw(name)]
        if not given:
            return None, None, None
        missing = [name for name in DB_PARTS_REQUIRED if not self._raw(name)]
        if missing:
            self.errors.append(
                f"database settings are partly given ({', '.join(given)}); also set {', '.join(missing)}"
                " or set DATABASE_URL instead"
            )
            return None, None, None
        port = self.integer("DB_PORT", 5432, minimum=1, maximum=65535)

        def url(host_name: str) -> str | None:
            host = self._raw(host_name)
            if host is None:
                return None
            user, password, database = self._raw("DB_USER"), self._raw("DB_PASSWORD"), self._raw("DB_NAME")
            parts = URL.create("postgresql+psycopg2", user, password, host, port, database)
            return parts.render_as_string(hide_password=False)

        return url("DB_HOST"), url("DB_REPLICA_HOST"), url("DB_DIRECT_HOST")
{%- if cookiecutter.auth == "oidc" %}

    def lower_set(self, name: str) -> frozenset[str]:
        """A comma-separated list, e.g. AUTH_ADMIN_EMAILS=ana@example.com,li@example.com."""
        return frozenset(item.strip().lower() for item in (self._raw(name) or "").split(",") if item.strip())

    def oidc(self) -> dict[str, str] | None:
        """Streamlit's [auth] secrets from AUTH_* variables (containers have no secrets.toml)."""
        values = {key: self._raw(f"AUTH_{key.upper()}") for key in OIDC_KEYS}
        given = {key: value for key, value in values.items() if value}
        if given and len(given) < len(OIDC_KEYS):
            missing = ", ".join(f"AUTH_{key.upper()}" for key in OIDC_KEYS if key not in given)
            self.errors.append(f"OIDC login is partly configured; also set {missing}")
        return given if len(given) == len(OIDC_KEYS) else None
{%- endif %}


def load_settings(source: Mapping[str, Any] | None = None) -> Settings:
    """Build settings from `source` (default: st.secrets overlaid by the environment)."""
    if source is None:
        source = {**_secrets(), **os.environ}
    read = _Reader(source)
    memory_limit_mib = read.integer("MEMORY_LIMIT_MIB", {{ cookiecutter.memory_limit_mib }}, minimum=128)
    database_url, database_replica_url, database_direct_url = read.database_urls()
    settings = Settings(
        environment=read.choice("APP_ENV", "production", ("production", "development")),
        log_level=read.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
        database_url=database_url,
        database_replica_url=database_replica_url,
        database_direct_url=database_direct_url,
        db_transaction_pooling=read.flag("DB_TRANSACTION_POOLING", False),
        data_dir=Path(read.text("DATA_DIR", "data")),
        db_pool_size=read.integer("DB_POOL_SIZE", 5, minimum=1, maximum=100),
        db_max_overflow=read.integer("DB_MAX_OVERFLOW", 5, minimum=0, maximum=100),
        db_pool_timeout_s=read.number("DB_POOL_TIMEOUT", 10.0, minimum=0.1, maximum=300),
        db_pool_recycle_s=read.integer("DB_POOL_RECYCLE", 1800, minimum=-1),
        db_statement_timeout_ms=read.integer("DB_STATEMENT_TIMEOUT_MS", 15000, minimum=0),
        db_replica_max_lag_s=read.number("DB_REPLICA_MAX_LAG_S", 30.0, minimum=0, maximum=86400),
        db_replica_recheck_s=read.number("DB_REPLICA_RECHECK_S", 10.0, minimum=0.1, maximum=3600),
        cache_ttl_s=read.integer("CACHE_TTL_S", 300, minimum=1),
        cache_max_entries=read.integer("CACHE_MAX_ENTRIES", 64, minimum=1),
        memory_limit_mib=memory_limit_mib,
        memory_warn_ratio=read.number("MEMORY_WARN_RATIO", 0.70, minimum=0.1, maximum=1.0),
        # Above 1 the guard never acts (it still warns and reports): for measuring without it.
        memory_act_ratio=read.number("MEMORY_ACT_RATIO", 0.85, minimum=0.1, maximum=2.0),
        memory_check_interval_s=read.number("MEMORY_CHECK_INTERVAL_S", 5.0, minimum=0.1, maximum=600),
        cgroup_root=Path(read.text("CGROUP_ROOT", "/sys/fs/cgroup")),
        show_system_page=read.flag("SHOW_SYSTEM_PAGE", False),
        seed_demo_data=read.flag("SEED_DEMO_DATA", False),
        app_instances=read.integer("APP_INSTANCES", 1, minimum=1, maximum=1000),
{%- if cookiecutter.auth == "oidc" %}
        auth_allowed_domains=read.lower_set("AUTH_ALLOWED_DOMAINS"),
        auth_allowed_emails=read.lower_set("AUTH_ALLOWED_EMAILS"),
        auth_admin_emails=read.lower_set("AUTH_ADMIN_EMAILS"),
        auth_email_verified_claim=read.text("AUTH_EMAIL_VERIFIED_CLAIM", "email_verified"),
        oidc=read.oidc(),
{%- endif %}
    )
    if settings.database_replica_url and not settings.database_url:
        read.errors.append("DATABASE_REPLICA_URL is set but DATABASE_URL is not; set both or neither")
    if settings.db_transaction_pooling and settings.database_url and not settings.database_direct_url:
        read.errors.append(
            "DB_TRANSACTION_POOLING=true needs DB_DIRECT_HOST, the primary without the pooler"
            " (with the DB_* settings: DATABASE_URL has no direct host)"
        )
    if settings.memory_warn_ratio >= settings.memory_act_ratio:
        read.errors.append("MEMORY_WARN_RATIO must be below MEMORY_ACT_RATIO")
    if read.errors:
        raise SettingsError("; ".join(read.errors))
    return settings


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings; validated on first use."""
    return load_settings()
