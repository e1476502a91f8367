"""Backups and restore of the generated compose stack: the recovery drill, for real.

The generated project's own compose.yaml, images and `make` targets run under podman
(podman-compose, stand-in base images as in test_containers.py): a PostgreSQL primary
archiving WAL with pgBackRest, a streaming replica, the db-backup service and the app.
Rows are written through the app's own write path inside the app container, then a
bad DELETE is undone with `make restore TARGET=...`, from the local backup volume and
from S3-compatible object storage (moto_server with TLS on this machine, as the
off-host copy). Bad input must stop `make restore` with one line and touch nothing.
`pytest -s` prints backup and restore times, WAL archive lag and WAL volume per day.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.main import cookiecutter

from . import images
from .conftest import BIN_DIR, TEMPLATE_DIR, free_port, run
from .tooling import find_tool, render_project

PACKAGE = "streamlit_dashboard"
BUCKET = "st-prod-backups"

# Runs in the app container: rows through the app's write path (Database.write() for
# sales, queries.record_activity for the audit trail). Prints the new sale ids.
WRITE = f"""
import json, sys
from datetime import date
from sqlalchemy import insert
from {PACKAGE}.database.engines import get_database
from {PACKAGE}.database.schema import sales
from {PACKAGE}.queries import record_activity
tag, count = sys.argv[1], int(sys.argv[2])
rows = [dict(day=date(2026, 11, 27), region="Drill", product=f"{{tag}}-{{i}}", units=i, revenue=i * 1.5)
        for i in range(count)]
with get_database().write() as connection:
    ids = connection.execute(insert(sales).returning(sales.c.id), rows).scalars().all()
for i in range(count):
    record_activity("drill", "drill-write", {{"tag": tag, "i": i}}, note=f"{{tag}}-{{i}}")
print(json.dumps(ids))
"""

# Runs in the app container: what each database holds, read with the app's settings.
STATE = """
import json, os
import sqlalchemy as sa
result = {}
for role, variable in (("primary", "DATABASE_URL"), ("replica", "DATABASE_REPLICA_URL")):
    with sa.create_engine(os.environ[variable]).connect() as connection:
        scalar = lambda sql: connection.execute(sa.text(sql)).scalar()
        result[role] = {
            "sales": scalar("select count(*) from sales"),
            "sale_ids": scalar("select md5(string_agg(id::text, ',' order by id)) from sales"),
            "notes": scalar("select coalesce(json_agg(note order by id), '[]') from activity_log"
                            " where session_id = 'drill'"),
            "in_recovery": scalar("select pg_is_in_recovery()"),
        }
print(json.dumps(result))
"""

# Runs in the app container: the app's own cached readers, as a page would call them.
SERVED = f"""
import json
from {PACKAGE} import queries
first, last = queries.sales_date_bounds()
frame = queries.daily_sales(first, last)
activity = queries.recent_activity(1000, session_id="drill")
print(json.dumps({{"units": int(frame["units"].sum()), "notes": sorted(activity["note"].tolist())}}))
"""


def report(label: str, value: str) -> None:
    print(f"\n[backups] {label}: {value}", flush=True)


@dataclass
class Stack:
    project: Path
    compose: list[str]
    env: dict[str, str]
    name: str

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"

    def app_python(self, script: str, *args: str) -> Any:
        out = images.podman("exec", self.container("app"), "python", "-c", script, *args).stdout
        return json.loads(out.strip().splitlines()[-1])

    def state(self) -> dict[str, Any]:
        return self.app_python(STATE)

    def psql(self, sql: str) -> str:
        return images.podman(
            "exec", self.container("db-primary"), "psql", "-XqtA", "-U", "app", "-d", "app", "-c", sql
        ).stdout.strip()

    def make(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        command = ["make", *args, f"COMPOSE={' '.join(self.compose)}"]
        if check:
            return run(command, cwd=self.project, timeout=900, **{**self.env, **env})
        return subprocess.run(
            command,
            cwd=self.project,
            env={**os.environ, "MAKEFLAGS": "", **self.env, **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def wait_app_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check = subprocess.run(
                ["podman", "healthcheck", "run", self.container("app")], capture_output=True, text=True
            )
            if check.returncode == 0:
                return
            time.sleep(2)
        logs = subprocess.run(["podman", "logs", "--tail", "30", self.container("app")], capture_output=True)
        pytest.fail(f"app not healthy after {timeout:.0f} s\n{logs.stdout.decode()}{logs.stderr.decode()}")

    def metrics(self) -> str:
        return images.podman(
            "exec", self.container("db-backup"), "cat", "/var/lib/backup-metrics/metrics.txt"
        ).stdout


class TlsProxy:
    """TLS in front of moto_server's plain HTTP, for pgBackRest, which speaks only HTTPS to S3.

    moto's own `--ssl` (werkzeug) closes connections without a TLS close_notify, which
    OpenSSL 3 in pgBackRest reports as "unexpected eof". asyncio's TLS transport closes
    cleanly. Listens on all interfaces: containers reach it through their network's gateway.
    """

    def __init__(self, backend_port: int, certificate: Path, key: Path) -> None:
        self.port = free_port()
        self._backend_port = backend_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(certificate, key)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> TlsProxy:
        self._thread.start()
        start = asyncio.start_server(self._handle, "0.0.0.0", self.port, ssl=self._context)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", self._backend_port)
        except OSError:
            client_writer.close()
            return

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, backend_writer), pipe(backend_reader, client_writer))


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto_server behind TLS, with IAM checks on: only the access key made here may use the bucket."""
    boto3 = pytest.importorskip("boto3")
    moto = shutil.which("moto_server", path=str(BIN_DIR))
    assert moto, "moto_server is missing (tests/requirements.txt: moto[server])"
    folder = tmp_path_factory.mktemp("moto")
    certificate, key = folder / "cert.pem", folder / "key.pem"
    run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=s3.test",
         "-keyout", str(key), "-out", str(certificate)],
        cwd=folder,
    )  # fmt: skip
    port = free_port()
    # The first 3 requests (create user, key and policy) need no signature; all later ones do.
    # S3_IGNORE_SUBDOMAIN_BUCKETNAME: "host.containers.internal" is a host, not bucket "host".
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3", "S3_IGNORE_SUBDOMAIN_BUCKETNAME": "true"}
    with (folder / "moto.log").open("w") as output:
        server = subprocess.Popen(
            [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=output, stderr=subprocess.STDOUT, env=env
        )
    try:
        options = {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"}
        iam = boto3.client("iam", aws_access_key_id="setup", aws_secret_access_key="setup", **options)
        deadline = time.monotonic() + 30
        while True:
            try:
                iam.create_user(UserName="backup")
                break
            except Exception:  # not listening yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        access = iam.create_access_key(UserName="backup")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="backup", PolicyName="backups", PolicyDocument=json.dumps(policy))
        client = boto3.client(
            "s3",
            aws_access_key_id=access["AccessKeyId"],
            aws_secret_access_key=access["SecretAccessKey"],
            **options,
        )
        client.create_bucket(Bucket=BUCKET)
        with TlsProxy(port, certificate, key) as proxy:
            yield {
                "BACKUP_S3_ENDPOINT": f"https://host.containers.internal:{proxy.port}",
                "BACKUP_S3_BUCKET": BUCKET,
                "BACKUP_S3_KEY": access["AccessKeyId"],
                "BACKUP_S3_KEY_SECRET": access["SecretAccessKey"],
                # The certificate is self-signed; real object storage keeps the default (y).
                "BACKUP_S3_VERIFY_TLS": "n",
                "_client": client,  # type: ignore[dict-item]
            }
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, s3: dict[str, Any]) -> Iterator[Stack]:
    images.require_podman()
    podman_compose = shutil.which("podman-compose", path=f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}")
    assert podman_compose, "podman-compose is missing (tests/requirements.txt)"
    project = Path(
        cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            extra_context={"python_version": images.PYTHON_VERSION},
            output_dir=str(tmp_path_factory.mktemp("backups")),
        )
    )
    base = images.python_base()
    suffix = uuid.uuid4().hex[:8]
    app_image = f"localhost/st-prod-test/backups-app:{suffix}"
    db_image = f"localhost/st-prod-test/backups-db:{suffix}"
    name = f"stprodbk{suffix}"
    env = {
        "PYTHON_IMAGE": base,
        "POSTGRES_IMAGE": images.stand_in("postgres"),
        "APP_IMAGE": app_image,
        "DB_IMAGE": db_image,
        "APP_NOFILE": images.compose_nofile(),
        "POSTGRES_PRIMARY_PORT": str(free_port()),
        "POSTGRES_REPLICA_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
        **{key: value for key, value in s3.items() if key.startswith("BACKUP_")},
    }
    compose = [podman_compose, "-p", name]
    try:
        started = time.monotonic()
        images.podman(
            "build", *images.BUILD_FLAGS, "--build-arg", f"PYTHON_IMAGE={base}", "-t", app_image, str(project)
        )
        images.podman(
            "build", *images.BUILD_FLAGS, "--build-arg", f"POSTGRES_IMAGE={env['POSTGRES_IMAGE']}",
            "-t", db_image, "-f", str(project / "docker/postgres/Dockerfile"), str(project / "docker"),
        )  # fmt: skip
        report("images built", f"{time.monotonic() - started:.0f} s")
        for tier in (["db-primary"], ["db-replica", "db-backup"], ["app"]):
            run([*compose, "up", "--detach", "--no-deps", *tier], cwd=project, timeout=300, **env)
            if tier == ["db-primary"]:
                _wait_ready(f"{name}_db-primary_1")
        stack = Stack(project, compose, env, name)
        stack.wait_app_healthy()
        report("stack up", f"{time.monotonic() - started:.0f} s")
        yield stack
    finally:
        subprocess.run(
            [*compose, "down", "--volumes"], cwd=project, env={**os.environ, **env}, capture_output=True
        )
        listing = images.podman("ps", "--all", "--filter", f"label=io.podman.compose.project={name}", "-q")
        for container in listing.stdout.split():
            subprocess.run(["podman", "rm", "--force", container], capture_output=True)
        volumes = images.podman("volume", "ls", "-q", "--filter", f"label=io.podman.compose.project={name}")
        for volume in volumes.stdout.split():
            subprocess.run(["podman", "volume", "rm", "--force", volume], capture_output=True)
        subprocess.run(["podman", "network", "rm", "--force", f"{name}_default"], capture_output=True)
        for tag in (app_image, db_image):
            subprocess.run(["podman", "rmi", "--force", tag], capture_output=True)


def _wait_ready(container: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["podman", "healthcheck", "run", container], capture_output=True).returncode == 0:
            return
        time.sleep(1)
    pytest.fail(f"{container} not ready after {timeout:.0f} s")


def _wait_for_backups(stack: Stack, repos: set[str], timeout: float = 300) -> None:
    """The db-backup service takes its first backup on start: wait until it is in every repo."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = set(
            re.findall(r'^backup_last_success_timestamp_seconds\{repo="(\d)"\}', stack.metrics(), re.M)
        )
        if repos <= found:
            return
        time.sleep(3)
    logs = subprocess.run(
        ["podman", "logs", "--tail", "30", stack.container("db-backup")], capture_output=True
    )
    pytest.fail(f"no first backup in repos {repos}\n{logs.stdout.decode()}{logs.stderr.decode()}")


def _wait_replica_caught_up(stack: Stack, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = stack.state()
        except AssertionError:
            state = None  # the replica is still copying or starting
        if (
            state
            and state["replica"]["sale_ids"] == state["primary"]["sale_ids"]
            and (state["replica"]["notes"] == state["primary"]["notes"])
        ):
            return state
        if time.monotonic() > deadline:
            pytest.fail(f"the replica did not catch up with the primary: {state}")
        time.sleep(2)


def _db_now(stack: Stack) -> str:
    return stack.psql("select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")


def _drill(stack: Stack, tag: str, *, repo: str) -> None:
    """Writes, a point in time, more writes and a DELETE of every sale; restore to that point."""
    before_ids = stack.app_python(WRITE, f"{tag}-before", "20")
    stack.make("backup")
    stack.app_python(WRITE, f"{tag}-more", "15")
    expected = _wait_replica_caught_up(stack)["primary"]
    time.sleep(1.1)
    target = _db_now(stack)
    time.sleep(1.1)
    stack.app_python(WRITE, f"{tag}-after", "5")
    deleted = stack.psql("with gone as (delete from sales returning 1) select count(*) from gone")
    assert int(deleted) == expected["sales"] + 5 and stack.state()["primary"]["sales"] == 0

    restore = stack.make("restore", f"TARGET={target}", f"REPO={repo}", "CONFIRM=yes")
    timing = re.search(r"restore: done in (\d+) s", restore.stdout)
    report(
        f"make restore from repo{repo} (PITR, demo data {expected['sales']} sales)",
        f"{timing and timing.group(1)} s",
    )

    state = _wait_replica_caught_up(stack)
    primary = state["primary"]
    assert primary["in_recovery"] is False and state["replica"]["in_recovery"] is True
    assert primary["sales"] == expected["sales"], "sales before the target must all be back"
    assert primary["sale_ids"] == expected["sale_ids"], "exactly the sales of the target time"
    assert primary["notes"] == expected["notes"], "the audit trail up to the target, nothing after"
    assert f"{tag}-before-0" in primary["notes"] and f"{tag}-more-14" in primary["notes"]
    assert not [note for note in primary["notes"] if note.startswith(f"{tag}-after")]
    assert len(before_ids) == 20
    streaming = stack.psql("select count(*) from pg_stat_replication where state = 'streaming'")
    assert streaming == "1", "the replica streams from the restored primary"

    stack.wait_app_healthy()
    served = stack.app_python(SERVED)
    assert served["notes"] == sorted(expected["notes"]), "the app serves the restored audit trail"
    assert served["units"] > 0
    # New writes reach the replica, which stays a standby (nothing of the restore's target left).
    stack.app_python(WRITE, f"{tag}-afterwards", "1")
    state = _wait_replica_caught_up(stack)
    assert state["replica"]["in_recovery"] is True and f"{tag}-afterwards-0" in state["replica"]["notes"]


def test_recovery_drill_from_the_backup_volume(stack: Stack) -> None:
    _wait_for_backups(stack, {"1", "2"})
    listing = stack.make("backups").stdout
    assert re.search(r"^\d{8}-\d{6}F\s+full\s+repo1\s", listing, re.M), listing
    assert re.search(r"^\d{8}-\d{6}F\s+full\s+repo2\s", listing, re.M), listing
    assert "Restorable from" in listing
    _drill(stack, "local", repo="1")


def test_bad_input_stops_with_one_line_and_changes_nothing(stack: Stack, s3: dict[str, str]) -> None:
    stack.app_python(WRITE, "untouched", "3")
    before = stack.state()["primary"]
    cases = {
        "no confirmation": ({}, ["TARGET=" + _db_now(stack)[:19]], "not confirmed, nothing changed"),
        "target before the first backup": (
            {},
            ["TARGET=2000-01-01 00:00:00", "CONFIRM=yes"],
            "before the oldest backup",
        ),
        "not a time": ({}, ["TARGET=yesterday-ish", "CONFIRM=yes"], "is not a time"),
        "unreachable bucket": (
            {"BACKUP_S3_ENDPOINT": "https://host.containers.internal:9"},
            ["REPO=2", "CONFIRM=yes"],
            "cannot read backup repo2",
        ),
        "wrong keys": (
            {"BACKUP_S3_KEY_SECRET": "wrong-secret"},
            ["REPO=2", "CONFIRM=yes"],
            "cannot read backup repo2",
        ),
    }
    for case, (env, args, expected) in cases.items():
        result = stack.make("restore", *args, check=False, **env)
        assert result.returncode != 0, f"{case}: make restore went on\n{result.stdout}"
        errors = [line for line in result.stderr.splitlines() if line.startswith("restore:")]
        report(f"bad input, {case}", errors[0] if errors else result.stderr[-300:])
        assert len(errors) == 1 and expected in errors[0], f"{case}: {result.stderr}"
        assert len(errors[0]) < 400, f"{case}: not one short line"
        assert stack.state()["primary"] == before, f"{case}: the database changed"
    # The running stack is untouched: the app still serves, and takes writes.
    stack.wait_app_healthy(timeout=30)
    stack.app_python(WRITE, "still-writable", "1")


def test_recovery_drill_from_object_storage(stack: Stack, s3: dict[str, Any]) -> None:
    """The off-host copy: backups and WAL in the bucket, and a restore that reads only the bucket."""
    client = s3["_client"]

    def keys(prefix: str) -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    assert keys("streamlit-dashboard/backup/app/backup.info"), "no backup in the bucket"
    wal = [key for key in keys("streamlit-dashboard/archive/app/") if re.search(r"/[0-9A-F]{24}-", key)]
    assert wal, "no WAL in the bucket"
    _drill(stack, "s3", repo="2")


def test_dump_and_load_move_the_rows(stack: Stack, tmp_path: Path) -> None:
    """`make dump` / `make load`: the logical path for moving data between environments."""
    stack.app_python(WRITE, "dumped", "4")
    expected = stack.state()["primary"]
    dump = tmp_path / "app.pgdump"
    stack.make("dump", f"DUMP={dump}")
    assert dump.stat().st_size > 0
    stack.psql("delete from activity_log; delete from sales")
    refused = stack.make("load", f"DUMP={dump}", check=False)
    assert refused.returncode != 0 and "CONFIRM=yes" in refused.stderr
    stack.make("load", f"DUMP={dump}", "CONFIRM=yes")
    loaded = stack.state()["primary"]
    assert (loaded["sales"], loaded["sale_ids"], loaded["notes"]) == (
        expected["sales"],
        expected["sale_ids"],
        expected["notes"],
    )


def test_kubernetes_prod_archives_wal_and_backs_up_nightly(tmp_path: Path) -> None:
    """The prod overlay wires the Cluster, the plugin's ObjectStore, the ScheduledBackup and the
    Secret together by name (kustomize does not rewrite names inside custom resources)."""
    project = render_project(tmp_path)
    rendered = run([find_tool("kubectl"), "kustomize", "deploy/overlays/prod"], project).stdout
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(rendered) if doc}
    cluster = docs[("Cluster", "streamlit-dashboard-db")]
    (plugin,) = cluster["spec"]["plugins"]
    assert plugin["name"] == "barman-cloud.cloudnative-pg.io" and plugin["isWALArchiver"] is True
    store = docs[("ObjectStore", plugin["parameters"]["barmanObjectName"])]
    assert store["metadata"]["namespace"] == cluster["metadata"]["namespace"]
    assert store["spec"]["configuration"]["destinationPath"].startswith("s3://")
    credentials = store["spec"]["configuration"]["s3Credentials"]
    for ref in (credentials["accessKeyId"], credentials["secretAccessKey"]):
        assert ref["key"] in docs[("Secret", ref["name"])]["data"], ref
    (scheduled,) = [doc for (kind, _), doc in docs.items() if kind == "ScheduledBackup"]
    assert scheduled["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert scheduled["spec"]["method"] == "plugin"
    assert scheduled["spec"]["pluginConfiguration"]["name"] == plugin["name"]
    assert len(scheduled["spec"]["schedule"].split()) == 6, "CloudNativePG schedules start with seconds"
    dev = run([find_tool("kubectl"), "kustomize", "deploy/overlays/dev"], project).stdout
    assert "ScheduledBackup" not in dev and "barman-cloud" not in dev
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    ignored = run(["git", "check-ignore", "deploy/overlays/prod/backup-secrets.env"], project)
    assert ignored.stdout.strip() == "deploy/overlays/prod/backup-secrets.env"


# --- Figures (printed with -s; measured, never asserted against a time) -------------------------

# Runs in the app container: audit rows through queries.record_activity at `rate` per second
# (0 = as fast as 4 threads go) for `seconds`. Prints how many were written.
LOAD = f"""
import sys, threading, time
from {PACKAGE}.queries import record_activity
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
threads = 1 if rate else 4
written = [0] * threads
def work(index):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        record_activity(f"load-{{index}}", "load", {{"n": written[index]}}, note="x" * 40)
        written[index] += 1
        if rate:
            time.sleep(1 / rate)
workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
[worker.start() for worker in workers]
[worker.join() for worker in workers]
print(sum(written))
"""
LAG = (
    "select coalesce(extract(epoch from now() - min(modification)), 0)::numeric(8,1), count(*)"
    " from pg_ls_archive_statusdir() where name like '%.ready'"
)
SEGMENT_MB = 16


def _archive(stack: Stack) -> tuple[int, int]:
    """Bytes and WAL segment files in repo1's archive."""
    script = "find /var/lib/pgbackrest/archive -type f -name '0*-*' -printf '%s\\n'"
    sizes = images.podman("exec", stack.container("db-backup"), "sh", "-c", script).stdout.split()
    return sum(map(int, sizes)), len(sizes)


def _write_load(stack: Stack, rate: float, seconds: float) -> dict[str, float]:
    start_lsn = stack.psql("select pg_current_wal_lsn()")
    load = subprocess.Popen(
        ["podman", "exec", stack.container("app"), "python", "-c", LOAD, str(rate), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    worst_lag, most_waiting = 0.0, 0
    while load.poll() is None:
        lag, waiting = stack.psql(LAG).split("|")
        worst_lag, most_waiting = max(worst_lag, float(lag)), max(most_waiting, int(waiting))
        time.sleep(1)
    rows = int(load.communicate()[0].strip().splitlines()[-1])
    wal = int(float(stack.psql(f"select pg_wal_lsn_diff(pg_current_wal_lsn(), '{start_lsn}')")))
    return {"rows_s": rows / seconds, "wal_b_s": wal / seconds, "lag_s": worst_lag, "waiting": most_waiting}


def test_figures_wal_archive_lag_and_disk_per_day(stack: Stack) -> None:
    seconds = 60.0
    for label, rate in (("benchmark rate, 2 audit rows/s", 2.0), ("saturated, 4 writers", 0.0)):
        bytes_before, files_before = _archive(stack)
        figures = _write_load(stack, rate, seconds)
        stack.make("backup")  # pgBackRest switches and archives the last segment first
        bytes_after, files_after = _archive(stack)
        segment_size = (bytes_after - bytes_before) / max(files_after - files_before, 1)
        per_day_wal = figures["wal_b_s"] * 86400
        # archive_timeout (300 s) closes a segment at least every 5 minutes of writes.
        segments = max(per_day_wal / (SEGMENT_MB * 2**20), 86400 / 300)
        report(
            f"write load ({label})",
            f"{figures['rows_s']:.1f} rows/s, WAL {figures['wal_b_s'] / 1024:.1f} KiB/s; archive lag max "
            f"{figures['lag_s']:.1f} s, at most {figures['waiting']} segment(s) waiting",
        )
        report(
            f"extra disk per day ({label})",
            f"{per_day_wal / 2**30:.2f} GiB of WAL -> about {segments:.0f} segments of "
            f"{segment_size / 2**20:.2f} MiB archived (zstd) = {segments * segment_size / 2**30:.2f} GiB "
            "per repository per day, plus one full backup",
        )


def test_figures_backup_and_restore_at_size(stack: Stack) -> None:
    """Base backup and restore times with BACKUP_FIGURES_MB of generated sales (default 128)."""
    target_mb = int(os.environ.get("BACKUP_FIGURES_MB", "128"))
    started = time.monotonic()
    # About 110 bytes per row with its index entries.
    rows = target_mb * 2**20 // 110
    stack.psql(
        "insert into sales (day, region, product, units, revenue) select date '2026-01-01' + (i % 300),"
        f" 'Gen', 'Bulk-' || (i % 1000), i % 50, (i % 50) * 9.5 from generate_series(1, {rows}) i"
    )
    size = int(stack.psql("select pg_database_size(current_database())"))
    report(
        "generated rows",
        f"{rows} rows, database {size / 2**20:.0f} MiB in {time.monotonic() - started:.0f} s",
    )
    backup = stack.make("backup").stdout
    for repo, seconds in re.findall(r"backup: repo(\d) done in (\d+) s", backup):
        report(f"base backup at {size / 2**20:.0f} MiB, repo{repo}", f"{seconds} s")
    restore = stack.make("restore", "REPO=1", "CONFIRM=yes").stdout
    primary = re.search(r"primary restored and promoted in (\d+) s", restore)
    total = re.search(r"restore: done in (\d+) s", restore)
    report(
        f"make restore at {size / 2**20:.0f} MiB (latest, repo1)",
        f"primary {primary and primary.group(1)} s; with the replica rebuilt and a fresh backup "
        f"{total and total.group(1)} s",
    )
    state = _wait_replica_caught_up(stack, timeout=600)
    assert state["primary"]["sales"] >= rows
