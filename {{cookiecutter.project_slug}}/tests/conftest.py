"""Shared fixtures.

By default every test run gets its own embedded SQLite database in a temporary folder.
Under `python -m tests.postgres_cluster run -- pytest` (`make test-postgres`) the same
tests run against a real PostgreSQL primary and replica, plus the Postgres-only ones.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .postgres_cluster import ENV_VAR, Cluster

# Settings are read once per process: point them at a scratch folder before any import.
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="app-test-data-")
{% if cookiecutter.auth == "oidc" -%}
os.environ.setdefault("AUTH_ALLOWED_DOMAINS", "example.com")
os.environ.setdefault("AUTH_ADMIN_EMAILS", "admin@example.com")
{% endif -%}
if os.environ.get(ENV_VAR):
    os.environ.setdefault("DB_REPLICA_RECHECK_S", "1")  # fault tests wait for recovery
else:
    for name in ("DATABASE_URL", "DATABASE_REPLICA_URL"):
        os.environ.pop(name, None)

import streamlit as st
import streamlit.logger
from sqlalchemy import Engine, delete, event
from streamlit.testing.v1 import AppTest

from {{ cookiecutter.package_name }}.database.engines import get_database
from {{ cookiecutter.package_name }}.database.migrate import upgrade
from {{ cookiecutter.package_name }}.database.schema import activity_log

# AppTest runs pages without a server; Streamlit warns about that on every run.
streamlit.logger.set_log_level("error")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAIN_SCRIPT = PROJECT_ROOT / "src" / "{{ cookiecutter.package_name }}" / "main.py"
{%- if cookiecutter.auth == "oidc" %}
ANALYST = {
    "is_logged_in": True,
    "email": "analyst@example.com",
    "email_verified": True,
    "name": "Ana Analyst",
}


def main_app(user: dict[str, object] | None = None, timeout: float = 60) -> AppTest:
    """The whole app, as `user` (by default a signed-in, allowed, non-admin analyst)."""
    app = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=timeout)
    app.user = dict(ANALYST if user is None else user)
    return app
{%- else %}


def main_app(timeout: float = 60) -> AppTest:
    """The whole app, as a new browser session."""
    return AppTest.from_file(str(MAIN_SCRIPT), default_timeout=timeout)
{%- endif %}


def run_app() -> AppTest:
    """A first run of the whole app, which must not raise."""
    app = main_app()
    app.run()
    assert not app.exception, app.exception
    return app


class QueryLog:
    """Records every SQL statement the app's engines execute, to prove what the caches save."""

    def __init__(self, *engines: Engine | None) -> None:
        self.statements: list[str] = []
        self._engines = [engine for engine in engines if engine is not None]
        for engine in self._engines:
            event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        self.statements.append(" ".join(statement.split()))

    def count(self, fragment: str) -> int:
        return sum(fragment in statement for statement in self.statements)

    def close(self) -> None:
        for engine in self._engines:
            event.remove(engine, "before_cursor_execute", self._record)


@pytest.fixture(scope="session", autouse=True)
def schema() -> None:
    """PostgreSQL is migrated like a deployment would be; SQLite migrates itself."""
    if os.environ.get(ENV_VAR):
        upgrade(get_database().primary, with_demo_data=True)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    found = Cluster.from_env()
    if found is None:
        pytest.skip(f"PostgreSQL tests need {ENV_VAR}: run `make test-postgres`")
    return found


@pytest.fixture(autouse=True)
def fresh_state(schema: None) -> Iterator[None]:
    """Each test starts with empty caches and an empty activity log."""
    st.cache_data.clear()
    with get_database().write() as connection:
        connection.execute(delete(activity_log))
    yield
    st.cache_data.clear()


@pytest.fixture
def query_log() -> Iterator[QueryLog]:
    database = get_database()
    log = QueryLog(database.primary, database.replica)
    yield log
    log.close()
