"""The app through PgBouncer in transaction mode, as the prod overlay's CloudNativePG Poolers run it.

Two real PgBouncers (Debian's `pgbouncer`) stand in front of the test cluster, like
the `-pooler-rw` and `-pooler-ro` Services: same port, different hosts (127.0.0.1 and
127.0.0.2). The app reaches them through DB_HOST / DB_REPLICA_HOST with
DB_TRANSACTION_POOLING=true, and migrates through DB_DIRECT_HOST, past the pooler.
Runs under `make test-postgres`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from {{ cookiecutter.package_name }}.database.engines import Database, create_migration_engine, open_database
from {{ cookiecutter.package_name }}.database.upgrade import MIGRATION_LOCK_ID, upgrade
from {{ cookiecutter.package_name }}.settings import Settings, load_settings

from .postgres_cluster import Cluster, free_port

TIMEOUT_MS = 300
HOSTS = {"rw": "127.0.0.1", "ro": "127.0.0.2"}


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(path, os.X_OK)), None
    )
    if found is None:
        message = "pgbouncer is not installed (apt-get install pgbouncer)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


class Bouncer:
    """One PgBouncer in transaction mode in front of one server, run in the foreground."""

    def __init__(self, root: Path, name: str, listen: str, port: int, server_port: int) -> None:
        self.listen, self.port = listen, port
        self.config = root / f"{name}.ini"
        (root / "users.txt").write_text('"app" ""\n"postgres" ""\n')
        self.config.write_text(
            "[databases]\n"
            f"app = host=127.0.0.1 port={server_port} dbname=app\n"
            "[pgbouncer]\n"
            f"listen_addr = {listen}\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {root / 'users.txt'}\nadmin_users = postgres\n"
            # One server connection per pooler: every client transaction shares it.
            "pool_mode = transaction\ndefault_pool_size = 1\nmax_client_conn = 100\n"
            f"logfile = {root / name}.log\npidfile = {root / name}.pid\n"
        )
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            shutil.chown(root, "postgres")
            for path in root.iterdir():
                shutil.chown(path, "postgres")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            [*prefix, pgbouncer_binary(), str(self.config)], start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((self.listen, self.port), timeout=1):
                return
            time.sleep(0.1)
        pytest.fail(f"pgbouncer did not listen on {self.listen}:{self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # PgBouncer's immediate shutdown: clients drop
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def bouncers(cluster: Cluster) -> Iterator[dict[str, Bouncer]]:
    root = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    port = free_port()
    servers = {"rw": cluster.primary_port, "ro": cluster.replica_port}
    running = {role: Bouncer(root, role, HOSTS[role], port, servers[role]) for role in HOSTS}
    try:
        for bouncer in running.values():
            bouncer.start()
        yield running
    finally:
        for bouncer in running.values():
            bouncer.stop()
        shutil.rmtree(root, ignore_errors=True)


def pooled_settings(bouncers: dict[str, Bouncer], cluster: Cluster) -> Settings:
    settings = load_settings(
        {
            "DB_HOST": HOSTS["rw"],
            "DB_REPLICA_HOST": HOSTS["ro"],
            "DB_PORT": str(bouncers["rw"].port),
            "DB_NAME": "app",
            "DB_USER": "app",
            "DB_DIRECT_HOST": "127.0.0.1",
            "DB_TRANSACTION_POOLING": "true",
            "DB_STATEMENT_TIMEOUT_MS": str(TIMEOUT_MS),
            "DB_REPLICA_RECHECK_S": "3600",  # no background checks in the middle of the test
        }
    )
    # One DB_PORT serves every host in a cluster (5432); here the direct primary has its own.
    direct = make_url(settings.database_direct_url or "").set(port=cluster.primary_port)
    return replace(settings, database_direct_url=direct.render_as_string(hide_password=False))


@pytest.fixture
def database(bouncers: dict[str, Bouncer], cluster: Cluster) -> Iterator[Database]:
    opened = open_database(pooled_settings(bouncers, cluster))
    yield opened
    opened.dispose()


def test_reads_and_writes_go_through_the_poolers(database: Database, cluster: Cluster) -> None:
    with database.write() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS pooled_probe (note text)"))
        connection.execute(text("INSERT INTO pooled_probe VALUES ('through pgbouncer')"))
    with database.read(fresh=True) as connection:
        assert connection.scalar(text("SELECT pg_is_in_recovery()")) is False
        assert connection.scalar(text("SELECT inet_server_port()")) == cluster.primary_port
    deadline = time.monotonic() + 10
    while True:  # the replica replays the write within a moment
        with database.read() as connection:
            assert connection.scalar(text("SELECT pg_is_in_recovery()")) is True
            assert connection.scalar(text("SELECT inet_server_port()")) == cluster.replica_port
            if connection.scalar(text("SELECT count(*) FROM pooled_probe WHERE note = 'through pgbouncer'")):
                break
        assert time.monotonic() < deadline, "the write never reached the replica"
        time.sleep(0.2)


def test_statement_timeout_holds_per_transaction_and_does_not_leak(
    database: Database, bouncers: dict[str, Bouncer]
) -> None:
    for context in (database.write, database.read):
        with pytest.raises(OperationalError, match="statement timeout"), context() as connection:
            connection.execute(text("SELECT pg_sleep(2)"))
        with context() as connection:
            assert connection.scalar(text("SHOW statement_timeout")) == f"{TIMEOUT_MS}ms"
    # A client without the app's SET LOCAL gets the same server connection with no timeout:
    # the setting ended with the app's transaction.
    plain = psycopg2.connect(host=HOSTS["rw"], port=bouncers["rw"].port, user="app", dbname="app")
    with contextlib.closing(plain), plain.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"
    # Why not the startup parameter the direct engines use: PgBouncer refuses it.
    with pytest.raises(psycopg2.OperationalError, match="unsupported startup parameter"):
        psycopg2.connect(
            host=HOSTS["rw"],
            port=bouncers["rw"].port,
            user="app",
            dbname="app",
            options="-c statement_timeout=1",
        )


def test_pre_ping_survives_a_pooler_restart(database: Database, bouncers: dict[str, Bouncer]) -> None:
    for context in (database.write, database.read):
        with context() as connection:
            connection.execute(text("SELECT 1"))
    for bouncer in bouncers.values():  # every pooled client connection is cut
        bouncer.stop()
        bouncer.start()
    for context in (database.write, database.read):
        with context() as connection:
            assert connection.scalar(text("SELECT 1")) == 1
    assert database.router is not None and database.router.healthy, "a read fell back to the primary"


def test_migrations_take_their_lock_on_the_primary_directly(
    bouncers: dict[str, Bouncer], cluster: Cluster
) -> None:
    settings = pooled_settings(bouncers, cluster)
    engine = create_migration_engine(settings)
    assert engine.url.port == cluster.primary_port, "migrations must not go through the pooler"
    holder = psycopg2.connect(host="127.0.0.1", port=cluster.primary_port, user="postgres", dbname="app")
    holder.autocommit = True
    finished = threading.Event()
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        worker = threading.Thread(target=lambda: (upgrade(engine, with_demo_data=False), finished.set()))
        worker.start()
        time.sleep(1.5)
        assert not finished.is_set(), "the migration did not wait for the lock"
        with holder.cursor() as cursor:  # it waits on the primary itself, not in PgBouncer
            cursor.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name LIKE %s",
                ("%-primary",),
            )
            assert cursor.fetchone()[0] == 1
            cursor.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
        worker.join(timeout=30)
        assert finished.is_set()
    finally:
        holder.close()
        engine.dispose()
