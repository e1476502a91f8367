"""SQLAlchemy engines: created once per process, writes to the primary, reads to the replica.

Streamlit reruns the page script on every interaction; an engine built inside the
script would open a new pool each time. `get_database()` is an `st.cache_resource`,
so every session of the process shares one bounded pool per database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import streamlit as st
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from ..metrics import POOLS, QUERY_DURATION
from ..settings import Settings, get_settings
from .errors import DatabaseBusyError, DatabaseUnavailableError
from .replica import ReplicaRouter
from .upgrade import upgrade

APPLICATION_NAME = "{{ cookiecutter.project_slug }}"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Database:
    """The engines of one process. Pages use the helpers in `queries`, not this."""

    primary: Engine
    router: ReplicaRouter | None = None

    @property
    def replica(self) -> Engine | None:
        return self.router.replica if self.router else None

    @contextmanager
    def read(self, *, fresh: bool = False) -> Iterator[Connection]:
        """A connection for queries: the replica when there is one and it is healthy.

        `fresh=True` reads from the primary, for a user who must see their own write
        before the replica has replayed it.
        """
        engine = self.primary if fresh or self.router is None else self.router.reader()
        try:
            connection = _connect(engine)
        except DatabaseUnavailableError:
            if self.router is None or engine is self.primary:
                raise
            self.router.mark_down("connection failed")
            connection = _connect(self.primary)
        with connection:
            yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction on the primary, committed on success, rolled back on error."""
        with _connect(self.primary) as connection, connection.begin():
            yield connection

    def dispose(self) -> None:
        for engine in (self.primary, self.replica):
            if engine is not None:
                engine.dispose()


def _connect(engine: Engine) -> Connection:
    try:
        return engine.connect()
    except PoolTimeoutError as error:
        log.warning("pool exhausted database=%s", masked(engine.url))
        raise DatabaseBusyError("no database connection became free in time") from error
    except OperationalError as error:
        log.warning("connection failed database=%s error=%s", masked(engine.url), type(error.orig).__name__)
        raise DatabaseUnavailableError("the database cannot be reached") from error


def _postgres_engine(
    url: str, settings: Settings, role: str, *, pooled: bool = False, bounded: bool = True
) -> Engine:
    at_start = bounded and not pooled  # behind a transaction pooler: per transaction instead
    timeout = {"options": f"-c statement_timeout={settings.db_statement_timeout_ms}"} if at_start else {}
    engine = create_engine(
        url,
        # A hot standby takes no writes and every loader is one statement: a transaction
        # per read would only add a BEGIN and a ROLLBACK round trip to each cache miss.
        # Behind a transaction pooler the timeout needs a transaction to live in.
        isolation_level="AUTOCOMMIT" if role == "replica" and not pooled else None,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_recycle=settings.db_pool_recycle_s,
        pool_pre_ping=True,  # a restarted server costs one reconnect, not a user-facing error
        connect_args={
            "application_name": f"{APPLICATION_NAME}-{role}",
            "connect_timeout": 5,
            # Bounds what one slow query can hold, server side.
            **timeout,
        },
    )
    if bounded and pooled:
        _timeout_per_transaction(engine, settings.db_statement_timeout_ms)
    return engine


def _timeout_per_transaction(engine: Engine, timeout_ms: int) -> None:
    """statement_timeout for each transaction, for PgBouncer in transaction mode.

    PgBouncer refuses the `options` startup parameter (CloudNativePG's Poolers drop it
    silently), and a session-level SET would stay on a server connection that other
    clients get next. SET LOCAL ends with the transaction, on the connection that ran it.
    """

    @event.listens_for(engine, "begin")
    def _set_timeout(conn: Connection) -> None:
        # The raw cursor: executing through `conn` here would begin the transaction again.
        cursor = conn.connection.cursor()
        try:
            cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        finally:
            cursor.close()


def _sqlite_engine(settings: Settings) -> Engine:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{settings.sqlite_path}",
        connect_args={"check_same_thread": False, "timeout": settings.db_pool_timeout_s},
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def _instrument(engine: Engine, role: str, settings: Settings) -> None:
    """Pool gauges and a query duration histogram, labelled by the engine's role."""
    POOLS.track(role, engine, settings.db_max_overflow)
    duration = QUERY_DURATION.labels(role)

    @event.listens_for(engine, "before_cursor_execute")
    def _started(conn: Connection, *_args: Any) -> None:
        conn.info.setdefault("query_started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _finished(conn: Connection, *_args: Any) -> None:
        duration.observe(time.perf_counter() - conn.info["query_started"].pop())

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        started = context.connection.info.get("query_started") if context.connection else None
        if started:
            started.pop()


def create_primary_engine(settings: Settings) -> Engine:
    if settings.database_url is None:
        return _sqlite_engine(settings)
    pooled = settings.db_transaction_pooling
    return _postgres_engine(settings.database_url, settings, "primary", pooled=pooled)


def create_migration_engine(settings: Settings) -> Engine:
    """The primary without a pooler in between (DB_DIRECT_HOST), for the migration lock.

    No statement timeout: waiting for another pod's migration, or a long ALTER, is not
    a slow page. The startupProbe bounds the whole start instead.
    """
    if settings.database_url is None:
        return _sqlite_engine(settings)
    url = settings.database_direct_url or settings.database_url
    return _postgres_engine(url, settings, "primary", bounded=False)


def open_database(settings: Settings) -> Database:
    primary = create_primary_engine(settings)
    _instrument(primary, "primary", settings)
    if settings.database_url is None:
        # The embedded file is the zero-setup demo: bring it up to date on first use.
        upgrade(primary, with_demo_data=True)
        log.info("database ready primary=sqlite path=%s", settings.sqlite_path)
        return Database(primary=primary)
    router = None
    if settings.database_replica_url:
        pooled = settings.db_transaction_pooling
        replica = _postgres_engine(settings.database_replica_url, settings, "replica", pooled=pooled)
        _instrument(replica, "replica", settings)
        router = ReplicaRouter(primary, replica, settings.db_replica_max_lag_s, settings.db_replica_recheck_s)
    log.info(
        "database ready primary=%s replica=%s",
        masked(settings.database_url),
        masked(settings.database_replica_url) if settings.database_replica_url else "none",
    )
    return Database(primary=primary, router=router)


def masked(url: str | URL) -> str:
    """The URL with its password replaced by ***, safe for logs."""
    return make_url(url).render_as_string(hide_password=True)


@st.cache_resource(show_spinner=False)
def get_database() -> Database:
    """The process-wide engines, created on first use and shared by every session."""
    return open_database(get_settings())
