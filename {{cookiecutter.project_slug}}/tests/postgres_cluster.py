"""A throwaway PostgreSQL primary + streaming replica for the test suite.

Uses the server binaries installed on the machine (no containers), on free loopback
ports in a temporary folder:

    python -m tests.postgres_cluster run -- python -m pytest

starts both servers, runs the command with DATABASE_URL, DATABASE_REPLICA_URL and
TEST_POSTGRES_CLUSTER set, then removes everything. Tests use `Cluster.from_env()`
to stop the replica or restart the primary mid-run.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

ENV_VAR = "TEST_POSTGRES_CLUSTER"
DATABASE = "app"
USER = "app"


def find_bindir() -> Path:
    """The newest installed server's binaries: PG_BINDIR, pg_config, or Debian's layout."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if candidates:
        return Path(candidates[-1])
    if shutil.which("pg_config"):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        return Path(bindir.stdout.strip())
    raise RuntimeError("no PostgreSQL server found: install it or set PG_BINDIR")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    bindir: Path
    primary_port: int
    replica_port: int

    # --- addresses -------------------------------------------------------------
    def url(self, port: int, database: str = DATABASE, user: str = USER) -> str:
        return f"postgresql+psycopg2://{user}@127.0.0.1:{port}/{database}"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port)

    # --- process control -------------------------------------------------------
    def _as_postgres(self, *command: str) -> None:
        # The server refuses to run as root; the machine's postgres user runs it then.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, text=True)

    def _pg_ctl(self, node: str, *args: str) -> None:
        data = self.root / node
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(data), "-l", f"{data}.log", "-w", *args)

    def stop(self, node: str) -> None:
        self._pg_ctl(node, "stop", "-m", "fast")

    def start(self, node: str) -> None:
        self._pg_ctl(node, "start")

    def restart(self, node: str) -> None:
        self._pg_ctl(node, "restart", "-m", "fast")

    # --- life cycle ------------------------------------------------------------
    @classmethod
    def new(cls, root: Path) -> Cluster:
        """Addresses only; `start_servers()` creates and starts them."""
        return cls(root, find_bindir(), free_port(), free_port())

    @classmethod
    def create(cls, root: Path) -> Cluster:
        """A started primary + replica in `root` (the caller calls `destroy()`)."""
        cluster = cls.new(root)
        try:
            cluster.start_servers()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    def start_servers(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._init_primary()
        self.start("primary")
        self._psql("-c", f"CREATE ROLE {USER} LOGIN", "-c", f"CREATE DATABASE {DATABASE} OWNER {USER}")
        self._psql("-d", DATABASE, "-c", "CREATE EXTENSION pg_stat_statements")
        self._as_postgres(
            str(self.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary_port),
            "-U", "postgres", "-D", str(self.root / "replica"), "-R", "-X", "stream",
            "--checkpoint=fast",  # do not wait up to a checkpoint interval for the backup to start
        )  # fmt: skip
        self._configure("replica", self.replica_port)
        self.start("replica")
        (self.root / "cluster.json").write_text(json.dumps(asdict(self), default=str))

    def _psql(self, *args: str) -> None:
        psql = str(self.bindir / "psql")
        self._as_postgres(psql, "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres", *args)

    def _init_primary(self) -> None:
        self._as_postgres(
            str(self.bindir / "initdb"), "-D", str(self.root / "primary"), "-U", "postgres",
            "--auth=trust", "--no-sync",
        )  # fmt: skip
        self._configure("primary", self.primary_port)
        with (self.root / "primary" / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")

    def _configure(self, node: str, port: int) -> None:
        settings = {
            "port": port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "wal_level": "replica",
            "max_wal_senders": 5,
            "max_connections": 200,
            "shared_preload_libraries": "'pg_stat_statements'",
            "pg_stat_statements.track": "all",
            "fsync": "off",  # throwaway data: speed over durability
        }
        with (self.root / node / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def destroy(self) -> None:
        for node in ("replica", "primary"):
            with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
                self.stop(node)
        shutil.rmtree(self.root, ignore_errors=True)

    @classmethod
    def from_env(cls) -> Cluster | None:
        root = os.environ.get(ENV_VAR)
        if not root:
            return None
        data = json.loads((Path(root) / "cluster.json").read_text())
        return cls(Path(data["root"]), Path(data["bindir"]), data["primary_port"], data["replica_port"])

    def environment(self) -> dict[str, str]:
        return {
            ENV_VAR: str(self.root),
            "DATABASE_URL": self.primary_url,
            "DATABASE_REPLICA_URL": self.replica_url,
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["run"])
    parser.add_argument("command", nargs=argparse.REMAINDER, help="command to run, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    # A CI timeout or Ctrl-C must still stop the servers: turn SIGTERM into an exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cluster = Cluster.new(Path(tempfile.mkdtemp(prefix="pg-cluster-")))
    process = None
    try:
        cluster.start_servers()
        print(f"postgres primary :{cluster.primary_port}, replica :{cluster.replica_port}", flush=True)
        process = subprocess.Popen(command, env={**os.environ, **cluster.environment()})
        return process.wait()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the cleanup
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
