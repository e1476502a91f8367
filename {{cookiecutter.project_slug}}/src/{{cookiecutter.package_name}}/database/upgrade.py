"""Bring a database's schema to the newest Alembic revision, under a lock on PostgreSQL.

Used by the migration command (`migrate.py`) and by the engines for the embedded
SQLite file; it needs only an engine, so it imports neither of them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, text

from .seed import seed_demo_data

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Several pods may start at once; on PostgreSQL they take turns on this lock.
MIGRATION_LOCK_ID = 7_215_305
log = logging.getLogger(__name__)


def upgrade(engine: Engine, *, with_demo_data: bool) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            _take_lock(connection)
        config.attributes["connection"] = connection
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(config, "head")
        after = MigrationContext.configure(connection).get_current_revision()
        if after != before:
            log.info("schema upgraded from=%s to=%s", before or "empty", after)
        if with_demo_data:
            inserted = seed_demo_data(connection)
            if inserted:
                log.info("seeded demo data rows=%d", inserted)


def _take_lock(connection: Connection) -> None:
    """The transaction's advisory lock; says so when another instance holds it."""
    params = {"id": MIGRATION_LOCK_ID}
    if connection.execute(text("SELECT pg_try_advisory_xact_lock(:id)"), params).scalar():
        return
    log.info("migration lock held by another instance, waiting")
    started = time.monotonic()
    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), params)
    log.info("migration lock acquired waited=%.1fs", time.monotonic() - started)
