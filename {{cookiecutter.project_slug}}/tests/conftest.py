"""Shared fixtures. Every test run gets its own embedded database in a temporary folder."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Settings are read once per process: point them at a scratch folder before any import.
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="app-test-data-")
for name in ("DATABASE_URL", "DATABASE_REPLICA_URL"):
    os.environ.pop(name, None)

import streamlit as st  # noqa: E402
from sqlalchemy import Engine, delete, event  # noqa: E402

from {{ cookiecutter.package_name }}.database.engines import get_database  # noqa: E402
from {{ cookiecutter.package_name }}.database.schema import activity_log  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAIN_SCRIPT = PROJECT_ROOT / "src" / "{{ cookiecutter.package_name }}" / "main.py"


class QueryLog:
    """Records every SQL statement an engine executes, to prove what the caches save."""

    def __init__(self, engine: Engine) -> None:
        self.statements: list[str] = []
        self._engine = engine
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        self.statements.append(" ".join(statement.split()))

    def count(self, fragment: str) -> int:
        return sum(fragment in statement for statement in self.statements)

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._record)


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    """Each test starts with empty caches and an empty activity log."""
    st.cache_data.clear()
    with get_database().write() as connection:
        connection.execute(delete(activity_log))
    yield
    st.cache_data.clear()


@pytest.fixture
def query_log() -> Iterator[QueryLog]:
    log = QueryLog(get_database().primary)
    yield log
    log.close()
