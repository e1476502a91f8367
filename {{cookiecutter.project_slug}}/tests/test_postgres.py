"""Against a real PostgreSQL primary and streaming replica (`make test-postgres`).

Each test prints the figures it measured; run with `-s` to see them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from unittest.mock import MagicMock

import psycopg2
import pytest
import streamlit as st
from prometheus_client import REGISTRY
from sqlalchemy import text
from streamlit import config
from streamlit.runtime import Runtime
from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.runtime.scriptrunner.script_cache import ScriptCache
from streamlit.testing.v1 import AppTest, app_test
from streamlit.testing.v1.util import build_mock_config_get_option

from {{ cookiecutter.package_name }} import queries
from {{ cookiecutter.package_name }}.database.engines import APPLICATION_NAME, get_database, open_database
from {{ cookiecutter.package_name }}.queries import record_activity
from {{ cookiecutter.package_name }}.settings import get_settings

from .conftest import PROJECT_ROOT, QueryLog, main_app, run_app
from .postgres_cluster import Cluster

REGIONS = ("East", "North", "South", "West")
REGION_SETS = [list(combo) for size in (1, 2, 3, 4) for combo in itertools.combinations(REGIONS, size)]
PERIODS = [(date(2025, month, 1), date(2025, month, 28)) for month in range(1, 13)]
SALES_QUERY_PATTERN = "%sum(sales.units)%"


def superuser(cluster: Cluster, port: int, database: str = "app") -> psycopg2.extensions.connection:
    connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname=database)
    connection.autocommit = True  # no transaction block: CREATE DATABASE and friends work too
    return connection


def scalar(cluster: Cluster, port: int, sql: str, *params: object, database: str = "app") -> object:
    # closing(), not `with connection`: psycopg2's own context manager opens a transaction
    # and leaves the connection open.
    with contextlib.closing(superuser(cluster, port, database)) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def apply_filters(app: AppTest, regions: list[str], period: tuple[date, date] | None = None) -> None:
    app.multiselect[0].set_value(regions)
    if period is not None:
        app.date_input[0].set_value(period)
    app.button[0].click().run()
    assert not app.exception, app.exception
    assert not app.error, [error.value for error in app.error]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def fallbacks() -> float:
    return REGISTRY.get_sample_value("app_db_replica_fallbacks_total") or 0.0


@pytest.fixture
def replica_log(cluster: Cluster) -> Iterator[QueryLog]:
    replica = get_database().replica
    assert replica is not None
    log = QueryLog(replica)
    yield log
    log.close()


def test_writes_go_to_the_primary_and_reads_come_back_through_the_replica(cluster: Cluster) -> None:
    database = get_database()
    record_activity("pg-1", "note", {"source": "test"}, note="replicated row")
    with database.write() as connection:
        assert connection.scalar(text("SELECT pg_is_in_recovery()")) is False

    def replicated() -> bool:
        with database.read() as connection:
            assert connection.scalar(text("SELECT pg_is_in_recovery()")) is True
            count = connection.scalar(text("SELECT count(*) FROM activity_log WHERE note = 'replicated row'"))
            return count == 1

    wait_for(replicated, timeout=10, what="the write to reach the replica")


@pytest.fixture
def concurrent_app_tests(monkeypatch: pytest.MonkeyPatch, cluster: Cluster) -> None:
    """Let AppTest instances run at the same time, as sessions of one server do.

    Around every run AppTest swaps two process-wide things in and out: a stand-in
    Runtime, and a patched `config.get_option` that turns on its test bookkeeping.
    Runs that overlap would undo each other's swaps, so set both once for the whole
    test and make the per-run swaps touch nothing shared. Each run also compiles the
    page script anew, and CPython 3.11's compiler is not safe to run from several
    threads at once: share one script cache, as a server does, and fill it (and load
    whatever the pages import lazily) with one session on this thread before the others.
    """
    shared = MagicMock(spec=Runtime)
    shared.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    shared.cache_storage_manager = MemoryCacheStorageManager()
    monkeypatch.setattr(Runtime, "_instance", shared)
    monkeypatch.setattr(app_test, "Runtime", type("PerRunRuntime", (Runtime,), {"_instance": None}))
    monkeypatch.setattr(config, "get_option", build_mock_config_get_option({"global.appTest": True}))
    monkeypatch.setattr(app_test, "patch_config_options", lambda _overrides: contextlib.nullcontext())
    script_cache = ScriptCache()
    monkeypatch.setattr(app_test, "ScriptCache", lambda: script_cache)
    apply_filters(run_app(), REGION_SETS[0], PERIODS[-1])


@pytest.mark.usefixtures("concurrent_app_tests")
def test_concurrent_sessions_never_exceed_the_pool(cluster: Cluster) -> None:
    settings = get_settings()
    limit = settings.db_pool_size + settings.db_max_overflow
    servers = {"primary": cluster.primary_port, "replica": cluster.replica_port}
    peak = dict.fromkeys(servers, 0)
    done = threading.Event()

    def sample() -> None:
        connections = {role: superuser(cluster, port) for role, port in servers.items()}
        while not done.is_set():
            for role, connection in connections.items():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                        (f"{APPLICATION_NAME}-{role}",),
                    )
                    peak[role] = max(peak[role], cursor.fetchone()[0])
            time.sleep(0.02)
        for connection in connections.values():
            connection.close()

    def session(number: int) -> None:
        app = run_app()
        for rerun in range(10):
            index = number + rerun
            apply_filters(app, REGION_SETS[index % len(REGION_SETS)], PERIODS[index % len(PERIODS)])

    st.cache_data.clear()
    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=20) as sessions:
            list(sessions.map(session, range(20)))
    finally:
        done.set()
        sampler.join()
    elapsed = time.monotonic() - started
    print(f"\n20 sessions x 10 reruns in {elapsed:.1f}s; peak connections {peak}, limit {limit}")
    assert 0 < peak["primary"] <= limit
    assert 0 < peak["replica"] <= limit


@pytest.mark.usefixtures("concurrent_app_tests")
def test_cached_query_runs_once_per_parameter_set_across_sessions(cluster: Cluster) -> None:
    st.cache_data.clear()
    scalar(cluster, cluster.replica_port, "SELECT pg_stat_statements_reset()")
    scalar(cluster, cluster.primary_port, "SELECT pg_stat_statements_reset()")
    periods = PERIODS[:3]

    def session(number: int) -> None:
        app = run_app()
        for rerun in range(5):
            index = number + rerun  # regions change too: they are picked in memory, not queried
            apply_filters(app, REGION_SETS[index % len(REGION_SETS)], periods[index % len(periods)])

    with ThreadPoolExecutor(max_workers=10) as sessions:
        list(sessions.map(session, range(10)))
    calls = sum(
        int(
            scalar(
                cluster, port, "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE %s",
                SALES_QUERY_PATTERN,
            )
        )
        for port in (cluster.primary_port, cluster.replica_port)
    )  # fmt: skip
    distinct = len(periods) + 1  # plus the default period every new session starts with
    print(f"\n10 sessions x 5 reruns: sales query executed {calls} times for {distinct} periods")
    assert 1 <= calls <= distinct
    # Replica reads run in autocommit: no BEGIN / ROLLBACK round trips around them.
    transaction_control = scalar(
        cluster, cluster.replica_port,
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
        " WHERE r.rolname = 'app' AND s.query IN ('BEGIN', 'COMMIT', 'ROLLBACK')",
    )  # fmt: skip
    assert transaction_control == 0


def test_reads_fall_back_to_the_primary_while_the_replica_is_down(
    cluster: Cluster, replica_log: QueryLog
) -> None:
    router = get_database().router
    assert router is not None
    app = run_app()
    before = fallbacks()
    cluster.stop("replica")
    try:
        for _ in range(3):  # several reruns during one incident
            st.cache_data.clear()
            app.run()
            assert not app.exception and not app.error
            assert len(app.metric) == 3
        assert not router.healthy
        assert fallbacks() == before + 1  # counted (and logged) once per incident
    finally:
        cluster.start("replica")
    wait_for(lambda: router.reader() is router.replica and router.healthy, timeout=20, what="recovery")
    served_by_replica = len(replica_log.statements)
    st.cache_data.clear()
    app.run()
    assert not app.exception
    assert len(replica_log.statements) > served_by_replica


def test_a_primary_restart_is_invisible_to_the_next_rerun(cluster: Cluster) -> None:
    app = run_app()
    apply_filters(app, ["North"])  # a write: the primary pool now holds a connection
    cluster.restart("primary")
    apply_filters(app, ["South"])  # pre-ping replaces the dead connection
    with get_database().write() as connection:
        actions = connection.scalar(text("SELECT count(*) FROM activity_log WHERE action = 'apply_filters'"))
    assert actions == 2


def test_an_exhausted_pool_shows_a_clear_error_in_time(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = replace(get_settings(), db_pool_size=1, db_max_overflow=0, db_pool_timeout_s=2.0)
    small = open_database(settings)
    assert small.replica is not None
    monkeypatch.setattr(queries, "get_database", lambda: small)
    st.cache_data.clear()
    held = small.replica.connect()  # the only connection of the read pool
    try:
        app = main_app()
        started = time.monotonic()
        app.run()
        elapsed = time.monotonic() - started
    finally:
        held.close()
        small.dispose()
    print(f"\npool exhausted: error shown after {elapsed:.2f}s (pool timeout 2s)")
    assert not app.exception
    assert [error.value for error in app.error] == ["The database is busy, try again in a moment."]
    assert elapsed <= settings.db_pool_timeout_s + 1


def test_sessions_are_bounded_and_named_on_the_server(cluster: Cluster) -> None:
    settings = get_settings()
    database = get_database()
    for role, engine in (("primary", database.primary), ("replica", database.replica)):
        assert engine is not None
        with engine.connect() as connection:
            timeout_ms = connection.scalar(
                text("SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'")
            )
            name = connection.scalar(text("SHOW application_name"))
        assert timeout_ms == settings.db_statement_timeout_ms
        assert name == f"{APPLICATION_NAME}-{role}"


def test_migrations_insert_demo_rows_only_when_asked(cluster: Cluster) -> None:
    with contextlib.closing(superuser(cluster, cluster.primary_port)) as admin, admin.cursor() as cursor:
        cursor.execute("DROP DATABASE IF EXISTS seed_check")
        cursor.execute("CREATE DATABASE seed_check OWNER app")

    seed_check_url = cluster.url(cluster.primary_port, "seed_check")

    def migrate(seed: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DATABASE_URL": seed_check_url, "SEED_DEMO_DATA": seed}
        env.pop("DATABASE_REPLICA_URL", None)
        command = [sys.executable, "-m", "{{ cookiecutter.package_name }}.database.migrate"]
        return subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)

    def sales_rows() -> int:
        return int(scalar(cluster, cluster.primary_port, "SELECT count(*) FROM sales", database="seed_check"))

    bad = migrate("maybe")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "{{ cookiecutter.project_slug }}: invalid configuration: "
        "SEED_DEMO_DATA='maybe' must be true or false (default false)"
    ]
    assert migrate("false").returncode == 0
    assert sales_rows() == 0  # production: the schema, no made-up sales
    assert migrate("true").returncode == 0
    assert sales_rows() > 0
