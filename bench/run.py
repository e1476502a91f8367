"""Benchmark: the generated app against a naive Streamlit app, under concurrent real sessions.

    .venv/bin/python bench/run.py --quick                  # `make bench-quick`: prints the table
    .venv/bin/python bench/run.py --out docs               # `make bench`: docs/benchmarks.md + docs/img/

Renders the template with its defaults into the build folder, installs it into its own
virtualenv, starts a throwaway PostgreSQL primary + streaming replica (the rendered
project's `tests/postgres_cluster.py`), applies its migrations with the demo data, then
for each app (naive first, then generated), on the same database:

1. start the server, warm it up with one session (one pass over every interaction),
   truncate `activity_log`, reset `pg_stat_statements` on both servers;
2. run N concurrent sessions x K interactions (bench/driver.py, Streamlit's websocket
   protocol) while a sampler reads `pg_stat_activity` on both servers and the server's
   RSS every 100 ms;
3. read `pg_stat_statements` (role `app`, database `app`) on both servers, stop the server.

A last run reruns the generated app 1,000+ times in waves of fresh sessions and fits the
RSS slope after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import driver
import report

REPO = Path(__file__).resolve().parent.parent
SLUG = "streamlit-dashboard"
PACKAGE = "streamlit_dashboard"
SAMPLE_INTERVAL_S = 0.1
MIB = 1024 * 1024
T0 = time.monotonic()


def log(message: str) -> None:
    print(f"{time.monotonic() - T0:6.1f}s {message}")


# --- setup -------------------------------------------------------------------------
def render(build: Path) -> tuple[Path, list[str]]:
    """Render the template's defaults into build/render; install it once into its .venv."""
    out = build / "render"
    project = out / SLUG
    subprocess.run(
        [
            str(REPO / ".venv/bin/cookiecutter"),
            str(REPO),
            "--no-input",
            "--overwrite-if-exists",
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    venv_python = project / ".venv/bin/python"
    stamp = project / ".venv/.bench-installed"
    wanted = hashlib.sha256((project / "pyproject.toml").read_bytes()).hexdigest()
    if not venv_python.exists():
        subprocess.run(["python3", "-m", "venv", str(project / ".venv")], check=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        log("installing the rendered project into its .venv ...")
        pip = subprocess.run(
            [str(venv_python), "-m", "pip", "install", "--quiet", "-e", str(project)],
            capture_output=True,
            text=True,
        )
        if pip.returncode:
            sys.exit(f"pip install failed:\n{pip.stdout}{pip.stderr}")
        stamp.write_text(wanted)
    notes: list[str] = []
    return project, notes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Databases:
    """Superuser connections to the primary and the replica, for resets and sampling."""

    def __init__(self, cluster) -> None:  # type: ignore[no-untyped-def]
        self.cluster = cluster
        self.ports = {"primary": cluster.primary_port, "replica": cluster.replica_port}

    def connect(self, node: str):  # type: ignore[no-untyped-def]
        connection = psycopg2.connect(
            host="127.0.0.1", port=self.ports[node], user="postgres", dbname="app", application_name="bench"
        )
        connection.autocommit = True
        return connection

    def execute(self, node: str, sql: str) -> list[tuple]:
        with contextlib.closing(self.connect(node)) as connection, connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def reset_statements(self) -> None:
        for node in self.ports:
            self.execute(node, "SELECT pg_stat_statements_reset()")

    def statements(self) -> dict[str, list[tuple[str, int]]]:
        sql = (
            "SELECT s.query, s.calls FROM pg_stat_statements s"
            " JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid"
            " WHERE r.rolname = 'app' AND d.datname = 'app' ORDER BY s.calls DESC"
        )
        return {node: [(q, int(c)) for q, c in self.execute(node, sql)] for node in self.ports}


class Sampler(threading.Thread):
    """Every 100 ms: client connections of role `app` on each server, and the server's RSS."""

    def __init__(self, databases: Databases, pid: int, t0: float) -> None:
        super().__init__(daemon=True)
        self.connections = {node: databases.connect(node) for node in databases.ports}
        self.process = psutil.Process(pid)
        self.t0 = t0
        self.samples: list[tuple[float, int, int, float]] = []  # t, primary, replica, rss MiB
        self._halt = threading.Event()

    def sample(self) -> tuple[float, int, int, float]:
        counts = []
        for connection in self.connections.values():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE usename = 'app' AND backend_type = 'client backend'"
                )
                counts.append(int(cursor.fetchone()[0]))
        rss = self.process.memory_info().rss / MIB
        return (time.monotonic() - self.t0, counts[0], counts[1], rss)

    def run(self) -> None:
        while not self._halt.wait(SAMPLE_INTERVAL_S):
            with contextlib.suppress(psutil.Error, psycopg2.Error):
                self.samples.append(self.sample())

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        for connection in self.connections.values():
            connection.close()


@dataclass
class Server:
    name: str
    command: list[str]
    cwd: Path
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [*self.command, "--server.port", str(self.port), "--server.address", "127.0.0.1"]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log}")
            url = f"http://127.0.0.1:{self.port}/_stcore/health"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not healthy within 60 s; see {self.log}")

    def rss_mib(self) -> float:
        assert self.process is not None
        return psutil.Process(self.process.pid).memory_info().rss / MIB

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@contextlib.contextmanager
def database(project: Path) -> Iterator[tuple[Databases, dict[str, str]]]:
    """A throwaway primary + replica, migrated with the demo data; the apps' environment."""
    sys.path.insert(0, str(project))
    from tests.postgres_cluster import Cluster  # the rendered project's, not the template's tests

    cluster_root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    log("starting PostgreSQL primary + replica ...")
    cluster = Cluster.create(cluster_root)
    try:
        env = {**os.environ, **cluster.environment(), "PYTHONUNBUFFERED": "1"}
        env.pop("TEST_POSTGRES_CLUSTER", None)
        subprocess.run(
            [str(project / ".venv/bin/python"), "-m", f"{PACKAGE}.database.migrate", "--demo-data"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
        )
        log("migrated, demo data in")
        yield Databases(cluster), env
    finally:
        cluster.destroy()
        shutil.rmtree(cluster_root, ignore_errors=True)


def naive_server(python: str, build: Path, env: dict[str, str], log_file: Path, *flags: str) -> Server:
    """bench/naive_app.py served by plain `streamlit run`, as its author would."""
    return Server(
        "naive",
        [python, "-m", "streamlit", "run", str(REPO / "bench/naive_app.py"), "--server.headless", "true",
         "--browser.gatherUsageStats", "false", *flags],
        build,
        env,
        log_file,
    )  # fmt: skip


# --- runs --------------------------------------------------------------------------
def warm_up(port: int) -> None:
    results, _ = asyncio.run(driver.run_sessions(port, 1, len(driver.CYCLE), (0.0, 0.0), seed=999, ramp_s=0))
    failed = [r for r in results if r.status != "ok"]
    if failed:
        raise RuntimeError(f"warm-up failed on port {port}: {failed}")


def measure_app(server: Server, databases: Databases, args: argparse.Namespace) -> dict:
    log(f"[{server.name}] starting on :{server.port}")
    server.start()
    try:
        warm_up(server.port)
        # One session alone: the floor the concurrent run's latencies are compared with.
        alone, _ = asyncio.run(driver.run_sessions(server.port, 1, 2 * len(driver.CYCLE), (0.1, 0.2), seed=7))
        time.sleep(1)
        rss_warm = server.rss_mib()
        databases.execute("primary", "TRUNCATE activity_log")
        time.sleep(0.5)  # the replica replays the truncate
        databases.reset_statements()
        assert server.process is not None
        t0 = time.monotonic()
        sampler = Sampler(databases, server.process.pid, t0)
        sampler.start()
        log(
            f"[{server.name}] {args.sessions} sessions x {args.interactions} interactions, "
            f"think {args.think_min}-{args.think_max} s",
        )
        results, reruns = asyncio.run(
            driver.run_sessions(
                server.port, args.sessions, args.interactions, (args.think_min, args.think_max), seed=1
            )
        )
        elapsed = time.monotonic() - t0
        time.sleep(1)  # let the last connections close before the final sample
        sampler.stop()
        statements = databases.statements()
        rss_end = server.rss_mib()
    finally:
        server.stop()
    log(f"[{server.name}] done in {elapsed:.0f} s, {reruns} reruns")
    return {
        "name": server.name,
        "interactions": [
            {
                "session": r.session,
                "index": r.index,
                "kind": r.kind,
                "t": r.started - t0,
                "latency_s": r.latency_s,
                "status": r.status,
            }
            for r in results
        ],
        "reruns": reruns,
        "alone": [{"kind": r.kind, "latency_s": r.latency_s} for r in alone if r.latency_s is not None],
        "elapsed_s": elapsed,
        "samples": sampler.samples,
        "statements": statements,
        "rss_warm_mib": rss_warm,
        "rss_end_mib": rss_end,
    }


def memory_run(server: Server, args: argparse.Namespace) -> dict:
    """Waves of fresh sessions without think time until `memory_reruns` reruns; RSS per wave."""
    log(f"[memory] {server.name} on :{server.port}, {args.memory_reruns}+ reruns")
    server.start()
    points: list[tuple[int, float]] = []
    total = 0
    started = time.monotonic()
    try:
        warm_up(server.port)
        points.append((0, server.rss_mib()))
        sessions, interactions = args.memory_sessions, args.memory_interactions
        wave = 0
        while total < args.memory_reruns:
            wave += 1
            _, reruns = asyncio.run(
                driver.run_sessions(
                    server.port, sessions, interactions, (0.0, 0.0), seed=100 + wave, ramp_s=0
                )
            )
            total += reruns
            time.sleep(0.5)
            points.append((total, server.rss_mib()))
            log(
                f"[memory] wave {wave}: {total} reruns, RSS {points[-1][1]:.1f} MiB, "
                f"{time.monotonic() - started:.0f} s"
            )
    finally:
        server.stop()
    # Warm-up: the first waves fill caches, pools and allocator arenas; fit the rest.
    skip = max(1, len(points) // 4)
    fitted = points[skip:]
    slope = statistics.linear_regression([p[0] for p in fitted], [p[1] for p in fitted]).slope * 100
    return {"points": points, "reruns": total, "slope_mib_per_100": slope, "fitted_from": fitted[0][0]}


def versions(project: Path, databases: Databases) -> dict[str, str]:
    python = str(project / ".venv/bin/python")
    code = (
        "import sys, streamlit, sqlalchemy;"
        " print(sys.version.split()[0], streamlit.__version__, sqlalchemy.__version__)"
    )
    py, st, sa = subprocess.run(
        [python, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    pg = databases.execute("primary", "SHOW server_version")[0][0]
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "python": py,
        "streamlit": st,
        "sqlalchemy": sa,
        "postgres": pg,
        "nproc": str(os.cpu_count()),
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller run, under 3 minutes")
    parser.add_argument("--sessions", type=int)
    parser.add_argument("--interactions", type=int)
    parser.add_argument("--think-min", type=float, help="seconds between interactions, min")
    parser.add_argument("--think-max", type=float, help="seconds between interactions, max")
    parser.add_argument("--memory-reruns", type=int)
    parser.add_argument("--memory-sessions", type=int)
    parser.add_argument("--memory-interactions", type=int)
    parser.add_argument("--build", type=Path, default=REPO / "build/bench")
    parser.add_argument("--out", type=Path, help="write benchmarks.md and img/ here (default: the build dir)")
    args = parser.parse_args()
    args.sessions = args.sessions or (8 if args.quick else 20)
    args.interactions = args.interactions or (10 if args.quick else 20)
    args.memory_reruns = args.memory_reruns or (300 if args.quick else 1200)
    args.memory_sessions = args.memory_sessions or (5 if args.quick else 10)
    args.memory_interactions = args.memory_interactions or (15 if args.quick else 25)
    if args.quick:
        args.think_min, args.think_max = args.think_min or 0.5, args.think_max or 2.0
    args.think_min = 1.0 if args.think_min is None else args.think_min
    args.think_max = 3.0 if args.think_max is None else args.think_max
    command = os.environ.get("BENCH_COMMAND") or shlex.join(["python", "bench/run.py", *sys.argv[1:]])

    build = args.build.resolve()
    build.mkdir(parents=True, exist_ok=True)
    out = (args.out or build).resolve()
    log("rendering the template ...")
    project, notes = render(build)
    python = str(project / ".venv/bin/python")
    with database(project) as (databases, env):
        logs = build / "logs"
        naive = naive_server(python, build, env, logs / "naive.log")
        generated = Server("generated", [python, "-m", PACKAGE], project, env, logs / "generated.log")
        runs = [measure_app(naive, databases, args), measure_app(generated, databases, args)]
        memory = memory_run(
            Server("generated", [python, "-m", PACKAGE], project, env, logs / "generated-memory.log"), args
        )
        info = versions(project, databases)

    raw = {
        "args": vars(args) | {"build": str(args.build), "out": str(out)},
        "command": command,
        "info": info,
        "notes": notes,
        "runs": runs,
        "memory": memory,
    }
    (build / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    log("writing the report ...")
    markdown = report.write(out, runs, memory, info, args, command, notes)
    print()
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
