"""The app Deployment of `kubectl kustomize deploy/overlays/{dev,prod}`, run by `podman kube play`.

The pod spec runs as rendered against a real PostgreSQL primary and streaming replica,
and the test proves what the kubelet would enforce: user, read-only root, emptyDir
volumes, memory limit, migrations, the three probes, a browser session, SIGTERM.

What the test substitutes, and why (nothing else in the pod spec changes):
- the image: the test's own build on the stand-in base (no registry here);
- the Deployment's and the Secret's names get a unique suffix: podman's pods and
  secrets are machine-wide, a cluster's live in a namespace;
- the Secret is handed to podman as a podman secret in the form `secretKeyRef` reads
  (a JSON map of base64 values), with the rendered Secret's own values: podman 4.3
  turns a Secret document into a podman secret it then cannot read back;
- `hostAliases` point the CloudNativePG Service names (-rw, -ro, -r, and the prod
  overlay's Pooler Services) at the test's servers, which listen on the host side of
  a podman network of the test's own (its gateway, and a second address on the same
  bridge for the replica): there is no cluster DNS;
- podman 4.3 publishes every containerPort on the host port of the same number (the
  kubelet publishes none without `hostPort`): the test gives each a `hostPort` on a
  free loopback port, so pods of one Deployment can run side by side. The test itself
  reaches the pod on its own IP and containerPort, as the kubelet's probes do;
- podman 4.3 ignores `terminationGracePeriodSeconds` (its stop timeout stays 10 s), so
  the test stops the pod as the kubelet does: SIGTERM, then SIGKILL after the grace
  period (`podman stop --time`). It has no `preStop` either; that sleep only waits for
  endpoints to drop the pod, which no one routes here.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import glob
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import psycopg2
import pytest
import yaml
from playwright.sync_api import expect, sync_playwright

from . import images
from .conftest import free_port, run
from .tooling import find_tool, render_project

SLUG = "streamlit-dashboard"
OVERLAYS = ["dev", "prod"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DB_PORT = 5432  # the CloudNativePG Services' port, as the ConfigMap says
MIB = 1024 * 1024

Doc = dict[str, Any]


def report(label: str, value: str) -> None:
    print(f"\n[kube play] {label}: {value}", flush=True)


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    assert not check or result.returncode == 0, f"podman {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


# --- The host side: a podman network and PostgreSQL on it ---------------------------------------


@dataclass
class Network:
    name: str
    subnet: str
    gateway: str  # the primary listens here
    second: str  # the replica listens here: the same bridge, another address
    interface: str
    poolers: dict[str, str]  # PgBouncer for the prod overlay's Poolers, by type: more addresses

    @property
    def added(self) -> list[str]:
        return [self.second, *self.poolers.values()]


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    images.require_podman()
    if os.geteuid() != 0:  # rootful podman's bridge, and addresses added to it
        message = "the kube play tests need root (rootful podman and `ip addr add`)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so they must run")
        pytest.skip(message)
    name = f"st-prod-kube-{uuid.uuid4().hex[:8]}"
    podman("network", "create", name)
    anchor = f"{name}-anchor"
    added: list[str] = []
    try:
        info = json.loads(podman("network", "inspect", name).stdout)[0]
        subnet = info["subnets"][0]
        hosts = [str(host) for host in ipaddress.ip_network(subnet["subnet"]).hosts()]
        poolers = {"rw": hosts[-2], "ro": hosts[-3]}
        net = Network(
            name, subnet["subnet"], subnet["gateway"], hosts[-1], info["network_interface"], poolers
        )
        # The bridge (and the gateway address on it) exists only while a container uses it.
        podman(
            "run",
            "--detach",
            "--rm",
            "--network",
            name,
            "--name",
            anchor,
            images.python_base(),
            "sleep",
            "3600",
        )
        prefix = ipaddress.ip_network(net.subnet).prefixlen
        for address in net.added:
            subprocess.run(["ip", "addr", "add", f"{address}/{prefix}", "dev", net.interface], check=True)
            added.append(f"{address}/{prefix}")
        yield net
    finally:
        for address in added:
            subprocess.run(
                ["ip", "addr", "del", address, "dev", info["network_interface"]], capture_output=True
            )
        podman("rm", "--force", "--time", "0", anchor, check=False)
        podman("network", "rm", "--force", name, check=False)


def postgres_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if candidates:
        return Path(candidates[-1])
    if shutil.which("pg_config") is None:
        pytest.fail("no PostgreSQL server: run scripts/install-system-deps.sh")
    return Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())


def as_postgres(*command: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, text=True)


@dataclass
class Servers:
    """A primary on the network's gateway and a streaming replica on its second address."""

    root: Path
    bindir: Path
    network: Network

    def connect(self, host: str, database: str = "app") -> Any:
        connection = psycopg2.connect(host=host, port=DB_PORT, user="postgres", dbname=database)
        connection.autocommit = True
        return connection

    def scalar(self, sql: str, *params: object, host: str | None = None, database: str = "app") -> Any:
        connection = self.connect(host or self.network.gateway, database)
        with contextlib.closing(connection), connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
            return row[0] if row else None

    def pg_ctl(self, node: str, *args: str) -> None:
        data = self.root / node
        as_postgres(str(self.bindir / "pg_ctl"), "-D", str(data), "-l", f"{data}.log", "-w", *args)

    def configure(self, node: str, address: str) -> None:
        settings = {
            "port": DB_PORT,
            "listen_addresses": f"'{address}'",
            "unix_socket_directories": "''",
            "wal_level": "replica",
            "max_wal_senders": 5,
            "fsync": "off",
        }
        with (self.root / node / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        net = self.network
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        initdb = self.bindir / "initdb"
        as_postgres(
            str(initdb), "-D", str(self.root / "primary"), "-U", "postgres", "--auth=trust", "--no-sync"
        )
        self.configure("primary", net.gateway)
        with (self.root / "primary" / "pg_hba.conf").open("a") as hba:
            # The test's own superuser sessions come from the host's addresses; pods log in
            # with the Secret's password, as they would against CloudNativePG.
            for address in (net.gateway, net.second):
                hba.write(
                    f"host all postgres {address}/32 trust\nhost replication postgres {address}/32 trust\n"
                )
            hba.write(f"host all all {net.subnet} scram-sha-256\n")
        self.pg_ctl("primary", "start")
        as_postgres(
            str(self.bindir / "pg_basebackup"), "-h", net.gateway, "-p", str(DB_PORT), "-U", "postgres",
            "-D", str(self.root / "replica"), "-R", "-X", "stream", "--checkpoint=fast",
        )  # fmt: skip
        self.configure("replica", net.second)
        self.pg_ctl("replica", "start")

    def fresh_database(self, user: str, password: str, database: str) -> None:
        """The database CloudNativePG's initdb bootstrap creates: owned by the app's login."""
        connection = self.connect(self.network.gateway, "postgres")
        with contextlib.closing(connection), connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            cursor.execute(f'DROP ROLE IF EXISTS "{user}"')
            cursor.execute(f'CREATE ROLE "{user}" LOGIN PASSWORD %s', (password,))
            cursor.execute(f'CREATE DATABASE "{database}" OWNER "{user}"')
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the replica has replayed the new database
            with contextlib.suppress(psycopg2.OperationalError):
                self.scalar("SELECT 1", host=self.network.second)
                return
            time.sleep(0.2)
        pytest.fail("the replica did not replay the new database")

    def stop(self) -> None:
        for node in ("replica", "primary"):
            with contextlib.suppress(subprocess.CalledProcessError):
                self.pg_ctl(node, "stop", "-m", "fast")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def servers(network: Network) -> Iterator[Servers]:
    root = Path(tempfile.mkdtemp(prefix="st-prod-kube-pg-"))
    servers = Servers(root, postgres_bindir(), network)
    try:
        servers.start()
        assert servers.scalar("SELECT pg_is_in_recovery()", host=network.second, database="postgres") is True
        yield servers
    finally:
        servers.stop()


@contextlib.contextmanager
def pgbouncers(network: Network, login: dict[str, str], database: str) -> Iterator[dict[str, Path]]:
    """What the prod overlay's Poolers run: PgBouncer in transaction mode on port 5432, one per
    type, in front of the primary (rw) and the replica (ro). Yields each one's log file."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.access(binary, os.X_OK):
        pytest.fail("pgbouncer is not installed: run scripts/install-system-deps.sh")
    root = Path(tempfile.mkdtemp(prefix="st-prod-kube-pgbouncer-"))
    servers = {"rw": network.gateway, "ro": network.second}
    (root / "users.txt").write_text(f'"{login["username"]}" "{login["password"]}"\n')
    processes = []
    try:
        for kind, listen in network.poolers.items():
            (root / f"{kind}.ini").write_text(
                f"[databases]\n{database} = host={servers[kind]} port={DB_PORT} dbname={database}\n"
                f"[pgbouncer]\nlisten_addr = {listen}\nlisten_port = {DB_PORT}\nunix_socket_dir =\n"
                f"auth_type = scram-sha-256\nauth_file = {root / 'users.txt'}\npool_mode = transaction\n"
                f"logfile = {root / kind}.log\npidfile = {root / kind}.pid\n"
            )
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            for path in (root, *root.iterdir()):
                shutil.chown(path, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        for kind, listen in network.poolers.items():
            processes.append(
                subprocess.Popen(
                    [*prefix, binary, "--quiet", str(root / f"{kind}.ini")], start_new_session=True
                )
            )
            deadline = time.monotonic() + 10
            while subprocess.run(["pg_isready", "-q", "-h", listen, "-p", str(DB_PORT)]).returncode == 2:
                assert time.monotonic() < deadline, f"pgbouncer on {listen} did not start"
                time.sleep(0.1)
        yield {kind: root / f"{kind}.log" for kind in network.poolers}
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


# --- The render, its image and its manifests ----------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_project(tmp_path_factory.mktemp("kube-play"), python_version=images.PYTHON_VERSION)


def build_image(project: Path) -> str:
    tag = f"localhost/st-prod-test/kube-play:{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    images.podman(
        "build",
        *images.BUILD_FLAGS,
        "--build-arg",
        f"PYTHON_IMAGE={images.python_base()}",
        "-t",
        tag,
        str(project),
    )
    report("image build", f"{time.monotonic() - started:.0f} s")
    return tag


@pytest.fixture(scope="module")
def app_image(project: Path) -> Iterator[str]:
    images.require_podman()
    tag = build_image(project)
    yield tag
    podman("rmi", "--force", tag, check=False)


def kustomize(project: Path, overlay: str) -> list[Doc]:
    output = run([find_tool("kubectl"), "kustomize", f"deploy/overlays/{overlay}"], project).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [doc for doc in docs if doc["kind"] == kind and name in (None, doc["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def app_container(pod_spec: Doc) -> Doc:
    return next(container for container in pod_spec["containers"] if container["name"] == "app")


def secret_values(secret: Doc) -> dict[str, str]:
    data = {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
    return {**data, **secret.get("stringData", {})}


def mebibytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


@dataclass
class Pod:
    """One `podman kube play` of the app Deployment, and what the test needs to drive it."""

    spec: Doc  # the pod spec that ran
    config: dict[str, str]  # the app ConfigMap's data
    login: dict[str, str]  # the Secret's values
    file: Path
    secret: str
    container: str = ""
    ip: str = ""

    @property
    def app(self) -> Doc:
        return app_container(self.spec)

    def port(self, name_or_number: str | int) -> int:
        if isinstance(name_or_number, int):
            return name_or_number
        return next(p["containerPort"] for p in self.app["ports"] if p["name"] == name_or_number)

    def url(self, path: str = "/", port: str | int = "http") -> str:
        return f"http://{self.ip}:{self.port(port)}{path}"

    def exec(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.container, *command, check=check)

    def logs(self) -> str:
        result = podman("logs", self.container, check=False)
        return result.stdout + result.stderr


def prepare(docs: list[Doc], image: str, network: Network, workdir: Path, name: str) -> Pod:
    """The app Deployment with the test's substitutions (module docstring), written for kube play."""
    played = copy.deepcopy(find(docs, "Deployment", SLUG))
    played["metadata"]["name"] = name
    spec = played["spec"]["template"]["spec"]
    app_container(spec)["image"] = image
    for port in app_container(spec).get("ports", []):  # see the module docstring
        port.update(hostIP="127.0.0.1", hostPort=free_port())
    cluster = find(docs, "Cluster")["metadata"]["name"]
    aliases = {network.gateway: [f"{cluster}-rw"], network.second: [f"{cluster}-ro", f"{cluster}-r"]}
    for pooler in (doc for doc in docs if doc["kind"] == "Pooler"):
        aliases[network.poolers[pooler["spec"]["type"]]] = [pooler["metadata"]["name"]]
    spec["hostAliases"] = [{"ip": ip, "hostnames": names} for ip, names in aliases.items()]
    secret_name = f"{name}-db-credentials"
    secrets = set()
    for variable in app_container(spec).get("env", []):
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            secrets.add(ref["name"])
            ref["name"] = secret_name
    assert len(secrets) == 1, f"the app reads one Secret, not {secrets}"
    login = secret_values(find(docs, "Secret", secrets.pop()))
    config_names = [source["configMapRef"]["name"] for source in app_container(spec).get("envFrom", [])]
    config_maps = [find(docs, "ConfigMap", config) for config in config_names]
    file = workdir / f"{name}.yaml"
    file.write_text(yaml.safe_dump_all([*config_maps, played]))
    config = {key: value for config_map in config_maps for key, value in config_map["data"].items()}
    return Pod(spec, config, login, file, secret_name)


def play(pod: Pod, network: Network) -> None:
    # The form podman's secretKeyRef reads: a JSON object of base64-encoded values.
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in pod.login.items()}
    subprocess.run(
        ["podman", "secret", "create", pod.secret, "-"], input=json.dumps(encoded), text=True, check=True,
        capture_output=True,
    )  # fmt: skip
    podman("kube", "play", "--network", network.name, str(pod.file))
    name = pod.file.stem
    pods = podman("pod", "ps", "--filter", f"name=^{name}-pod", "--format", "{{.Name}}").stdout.split()
    assert len(pods) == 1, pods
    pod.container = f"{pods[0]}-app"
    networks = json.loads(
        podman("inspect", "--format", "{{json .NetworkSettings.Networks}}", pod.container).stdout
    )
    pod.ip = networks[network.name]["IPAddress"]


def remove(pod: Pod) -> None:
    podman("kube", "down", str(pod.file), check=False)
    podman("secret", "rm", pod.secret, check=False)


@contextlib.contextmanager
def running(pod: Pod, network: Network) -> Iterator[Pod]:
    try:
        play(pod, network)
        yield pod
    finally:
        remove(pod)


# --- Probes, as the kubelet runs them -------------------------------------------------------------


def probe_once(pod: Pod, probe: Doc) -> tuple[bool, str]:
    """One httpGet probe: the pod's IP, the probe's path and port, its timeoutSeconds; 200-399 passes."""
    action = probe["httpGet"]
    url = pod.url(action.get("path", "/"), action["port"])
    try:
        with urllib.request.urlopen(url, timeout=probe.get("timeoutSeconds", 1)) as response:
            return 200 <= response.status < 400, f"{url} {response.status}"
    except urllib.error.HTTPError as error:
        return 200 <= error.code < 400, f"{url} {error.code}"
    except OSError as error:
        return False, f"{url} {error}"


def wait_started(pod: Pod) -> float:
    """The startupProbe, every periodSeconds until it passes or failureThreshold runs out; seconds taken."""
    probe = pod.app["startupProbe"]
    started = time.monotonic()
    outcome = ""
    for _ in range(probe.get("failureThreshold", 3)):
        passed, outcome = probe_once(pod, probe)
        if passed:
            return time.monotonic() - started
        state = podman("inspect", "--format", "{{.State.Status}}", pod.container, check=False).stdout.strip()
        assert state == "running", f"the app container is {state}:\n{pod.logs()[-3000:]}"
        time.sleep(probe.get("periodSeconds", 10))
    pytest.fail(
        f"startupProbe never passed (last: {outcome}); the kubelet would restart it\n{pod.logs()[-3000:]}"
    )


def metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{name}(?:\{{[^}}]*\}})?\s+(\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def stop_as_the_kubelet_does(pod: Pod) -> tuple[float, int]:
    """SIGTERM, SIGKILL after terminationGracePeriodSeconds: (seconds taken, exit code)."""
    grace = pod.spec["terminationGracePeriodSeconds"]
    started = time.monotonic()
    podman("stop", "--time", str(grace), pod.container, timeout=grace + 30)
    taken = time.monotonic() - started
    code = int(podman("inspect", "--format", "{{.State.ExitCode}}", pod.container).stdout.strip())
    return taken, code


def browse(url: str) -> None:
    """A Streamlit session in Chromium: the dashboard renders and a rerun writes the audit log."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(url)
            expect(page.get_by_role("heading", name="Sales")).to_be_visible(timeout=60_000)
            page.get_by_role("button", name="Refresh data").click(timeout=90_000)  # a busy machine
            page.wait_for_timeout(2_000)
            expect(page.get_by_test_id("stException")).to_have_count(0)
        finally:
            browser.close()


# --- The tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_pod_runs_under_podman_kube_play(
    overlay: str, project: Path, app_image: str, network: Network, servers: Servers, tmp_path: Path
) -> None:
    docs = kustomize(project, overlay)
    name = f"st-prod-kube-{overlay}-{uuid.uuid4().hex[:8]}"
    pod = prepare(docs, app_image, network, tmp_path, name)
    login, config = pod.login, pod.config
    servers.fresh_database(login["username"], login["password"], config["DB_NAME"])
    poolers = any(doc["kind"] == "Pooler" for doc in docs)
    bouncers = pgbouncers(network, login, config["DB_NAME"]) if poolers else contextlib.nullcontext({})
    with bouncers as pooler_logs, running(pod, network):
        taken = wait_started(pod)
        report(f"{overlay}: startupProbe passed after", f"{taken:.1f} s")
        for kind in ("readinessProbe", "livenessProbe"):
            passed, outcome = probe_once(pod, pod.app[kind])
            assert passed, f"{kind}: {outcome}"

        # The manifest's user, read-only root and emptyDir volumes.
        context = {**pod.spec.get("securityContext", {}), **pod.app.get("securityContext", {})}
        # PID 1 is the server (the entrypoint exec's it): its real, effective, saved and fs ids.
        status = dict(line.split(":", 1) for line in pod.exec("cat", "/proc/1/status").stdout.splitlines())
        assert set(status["Uid"].split()) == {str(context["runAsUser"])}, status["Uid"]
        assert set(status["Gid"].split()) == {str(context["runAsGroup"])}, status["Gid"]
        assert context["readOnlyRootFilesystem"] is True
        denied = pod.exec("touch", "/app/written", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied
        mounts = {mount["Destination"]: mount for mount in json.loads(
            podman("inspect", "--format", "{{json .Mounts}}", pod.container).stdout
        )}  # fmt: skip
        volumes = {volume["name"]: volume for volume in pod.spec["volumes"]}
        for mount in pod.app["volumeMounts"]:
            assert "emptyDir" in volumes[mount["name"]], mount
            assert mount["mountPath"] in mounts, f"{mount['mountPath']} is not mounted: {sorted(mounts)}"
            pod.exec("touch", f"{mount['mountPath']}/written")

        # The memory limit, from the cgroup inside and from the app's own metrics.
        limit = mebibytes(pod.app["resources"]["limits"]["memory"]) * MIB
        cgroup = pod.exec(
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        ).stdout.strip()
        assert int(cgroup) == limit
        assert pod.exec("printenv", "MEMORY_LIMIT_MIB").stdout.strip() == str(limit // MIB)
        assert metric(http_get(pod.url("/metrics")), "app_memory_limit_bytes") == limit
        report(f"{overlay}: memory limit", f"{limit // MIB} MiB in the cgroup and in /metrics")

        # Migrations ran the way the manifests say: the entrypoint, before the server.
        logs = pod.logs()
        assert "entrypoint: applying database migrations" in logs
        assert "migrations applied" in logs, logs
        assert servers.scalar("SELECT version_num FROM alembic_version")
        seeded = servers.scalar("SELECT count(*) FROM sales")
        assert (seeded > 0) == (config.get("SEED_DEMO_DATA") == "true"), seeded

        # A browser session through the pod's port: reads from the replica, writes to the primary.
        browse(pod.url("/"))
        assert servers.scalar("SELECT count(*) FROM activity_log") > 0
        replica_sessions = servers.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", f"{SLUG}-replica",
            host=network.second,
        )  # fmt: skip
        assert replica_sessions > 0, "the app never connected to the replica behind the -ro/-r name"
        for kind, log in pooler_logs.items():  # the prod overlay: through PgBouncer, both ways
            assert f"login attempt: db={config['DB_NAME']} user={login['username']}" in log.read_text(), kind
        passed, outcome = probe_once(pod, pod.app["livenessProbe"])
        assert passed, f"livenessProbe after the session: {outcome}"

        taken, code = stop_as_the_kubelet_does(pod)
        grace = pod.spec["terminationGracePeriodSeconds"]
        report(f"{overlay}: stopped on SIGTERM in", f"{taken:.1f} s (grace {grace} s, exit code {code})")
        assert code != 137, "SIGKILLed: the server ignored SIGTERM for the whole grace period"
        assert taken < grace


# --- Upgrades ----------------------------------------------------------------------------------------

NEW_REVISION = '''"""A table the upgrade test adds.

Revision ID: {revision}
Revises: {down}
"""

import sqlalchemy as sa
from alembic import op

revision: str = "{revision}"
down_revision: str | None = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("upgrade_probe", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("upgrade_probe")
'''


class ServiceStandIn:
    """What the Service does for a browser: each new connection goes to the pod that is ready now."""

    def __init__(self) -> None:
        self.target: tuple[str, int] | None = None
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target or ("127.0.0.1", 9), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):  # one side closed: close both, as a dead pod's connections end
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def upgraded_image(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The same project plus one new Alembic revision, built as a second image: (tag, revision)."""
    copy_root = tmp_path_factory.mktemp("kube-play-upgrade") / project.name
    shutil.copytree(project, copy_root)
    versions = next(copy_root.glob("src/*/migrations/versions"))
    heads = [
        re.search(r'^revision: str = "(.+)"', path.read_text(), re.MULTILINE)
        for path in versions.glob("*.py")
    ]
    down = max(match.group(1) for match in heads if match)
    revision = f"{int(down) + 1:04d}" if down.isdigit() else "kube_play_upgrade"
    (versions / f"{revision}_upgrade_probe.py").write_text(NEW_REVISION.format(revision=revision, down=down))
    tag = build_image(copy_root)
    yield tag, revision
    podman("rmi", "--force", tag, check=False)


def migration_lock_id(project: Path) -> int:
    source = next(project.glob("src/*/database/upgrade.py")).read_text()
    return int(re.search(r"^MIGRATION_LOCK_ID = ([\d_]+)", source, re.MULTILINE).group(1))  # type: ignore[union-attr]


def test_upgrade_migrates_once_and_moves_the_session_to_the_new_pod(
    project: Path,
    app_image: str,
    upgraded_image: tuple[str, str],
    network: Network,
    servers: Servers,
    tmp_path: Path,
) -> None:
    new_image, revision = upgraded_image
    docs = kustomize(project, "dev")
    suffix = uuid.uuid4().hex[:8]
    old = prepare(docs, app_image, network, tmp_path, f"st-prod-kube-old-{suffix}")
    new = [prepare(docs, new_image, network, tmp_path, f"st-prod-kube-new{i}-{suffix}") for i in (1, 2)]
    servers.fresh_database(old.login["username"], old.login["password"], old.config["DB_NAME"])
    service = ServiceStandIn()
    holder = servers.connect(network.gateway)
    try:
        play(old, network)
        wait_started(old)
        old_revision = servers.scalar("SELECT version_num FROM alembic_version")
        service.target = (old.ip, old.port("http"))
        with sync_playwright() as playwright:
            chromium = shutil.which("chromium") or "/usr/bin/chromium"
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{service.port}/")
            expect(page.get_by_role("heading", name="Sales")).to_be_visible(timeout=60_000)

            # Two new pods start together while the test holds the migration lock, so both
            # are provably inside the entrypoint's migration at once; then it lets go.
            lock = migration_lock_id(project)
            with holder.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", (lock,))
            for pod in new:
                play(pod, network)
            deadline = time.monotonic() + 120
            while not all("migration lock held by another instance" in pod.logs() for pod in new):
                assert time.monotonic() < deadline, [pod.logs()[-2000:] for pod in new]
                time.sleep(0.5)
            with holder.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (lock,))
            for pod in new:
                report(f"upgrade: {pod.file.stem} startupProbe passed after", f"{wait_started(pod):.1f} s")
            upgraded = [
                pod for pod in new if f"schema upgraded from={old_revision} to={revision}" in pod.logs()
            ]
            assert len(upgraded) == 1, "the new revision must be applied exactly once"
            waited = [pod for pod in new if "migration lock acquired waited=" in pod.logs()]
            assert len(waited) == 2, "both new pods waited for the lock"
            assert servers.scalar("SELECT version_num FROM alembic_version") == revision
            assert servers.scalar("SELECT count(*) FROM alembic_version") == 1
            assert servers.scalar("SELECT to_regclass('upgrade_probe') IS NOT NULL") is True

            # The rollout: the Service sends new connections to a new pod, the old one gets SIGTERM.
            service.target = (new[0].ip, new[0].port("http"))
            taken, code = stop_as_the_kubelet_does(old)
            grace = old.spec["terminationGracePeriodSeconds"]
            report("upgrade: old pod stopped in", f"{taken:.1f} s (grace {grace} s, exit code {code})")
            assert code != 137 and taken < grace
            # The browser reconnects on its own and gets a fresh session on the new pod.
            deadline = time.monotonic() + 60
            while not (metric(http_get(new[0].url("/_stcore/metrics")), "active_sessions") or 0) >= 1:
                assert time.monotonic() < deadline, "the browser never reconnected to the new pod"
                time.sleep(0.5)
            expect(page.get_by_role("heading", name="Sales")).to_be_visible(timeout=30_000)
            expect(page.get_by_test_id("stException")).to_have_count(0)
            browser.close()
    finally:
        holder.close()
        service.close()
        for pod in (old, *new):
            remove(pod)


# --- The cluster workflow (it cannot run here: no cluster, no registry) ----------------------------

WORKFLOW = ".github/workflows/kind.yml"


@pytest.mark.parametrize(
    ("kubernetes", "actions"), [("yes", "yes"), ("no", "yes"), ("yes", "no")], ids=lambda v: v
)
def test_kind_workflow_ships_only_with_kubernetes_and_actions(
    kubernetes: str, actions: str, tmp_path: Path
) -> None:
    project = render_project(tmp_path, include_kubernetes=kubernetes, include_github_actions=actions)
    assert (project / WORKFLOW).exists() == (kubernetes == actions == "yes")


def test_kind_workflow_is_manual_pinned_least_privilege_and_fails_when_not_ready(project: Path) -> None:
    text = (project / WORKFLOW).read_text()
    workflow = yaml.safe_load(text)
    assert workflow[True] == {"workflow_dispatch": None}, (
        "manual dispatch only"
    )  # YAML 1.1 reads `on` as True
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read"} and job["timeout-minutes"] <= 60
    steps = job["steps"]
    for step in steps:
        if "uses" in step:
            line = next(line for line in text.splitlines() if f"uses: {step['uses']}" in line)
            assert re.fullmatch(r"\s*- uses: [\w.-]+/[\w.-]+@[0-9a-f]{40}  # v\d[\w.]*", line), line
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
    script = "\n".join(step.get("run", "") for step in steps if step.get("if") != "failure()")
    assert "|| true" not in script and "set +e" not in script, "a failed wait must fail the run"
    assert "kind load docker-image" in script and "kubectl apply -k deploy/overlays/dev" in script
    assert re.search(r"wait --for=condition=Ready cluster/\S+ --timeout=\d+s", script)
    assert re.search(r"rollout status deployment/\S+ --timeout=\d+s", script)
    assert re.search(r'curl --fail .*\n?.*"http://\$APP/_stcore/health"', script)
    # Workflows are copied unrendered: the step that names things reads pyproject.toml. Run it as
    # the runner would; the image it loads must be the one the dev overlay deploys.
    naming = next(step["run"] for step in steps if "GITHUB_ENV" in step.get("run", ""))
    github_env = project / "github.env"
    subprocess.run(
        ["bash", "-e", "-c", naming],
        cwd=project,
        env={**os.environ, "GITHUB_ENV": str(github_env)},
        check=True,
    )
    names = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
    github_env.unlink()
    deployment = find(kustomize(project, "dev"), "Deployment", names["APP"])
    assert deployment["metadata"]["namespace"] == names["NAMESPACE"]
    assert names["IMAGE"] == app_container(deployment["spec"]["template"]["spec"])["image"]


# --- The prod overlay's Poolers, statically ----------------------------------------------------------

POOLER_MISTAKES = [
    ("spec.pgbouncer.poolMode", "Transaction"),
    ("spec.type", "primary"),
    ("spec.instances", "2"),
    ("spec.pgbouncer.parameters.default_pool_size", 20),
    ("spec.pgbouncer.parameters.listen_port", "6432"),  # the operator owns it
    ("spec.cluster", "streamlit-dashboard-db"),
]


def test_prod_poolers_pool_transactions_within_the_connection_budget(project: Path) -> None:
    docs = kustomize(project, "prod")
    cluster = find(docs, "Cluster")
    poolers = {doc["spec"]["type"]: doc for doc in docs if doc["kind"] == "Pooler"}
    assert set(poolers) == {"rw", "ro"}
    schema = json.loads((Path(__file__).parent / "schemas/postgresql.cnpg.io_v1_Pooler.json").read_text())
    max_connections = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])
    config = find(docs, "ConfigMap")["data"]
    per_pod = int(config["DB_POOL_SIZE"]) + int(config["DB_MAX_OVERFLOW"])  # per engine, so per Pooler
    hpa = find(docs, "HorizontalPodAutoscaler")["spec"]["maxReplicas"]
    for kind, pooler in poolers.items():
        jsonschema.validate(pooler, schema)
        spec = pooler["spec"]
        assert spec["cluster"]["name"] == cluster["metadata"]["name"]
        assert spec["pgbouncer"]["poolMode"] == "transaction"
        parameters = spec["pgbouncer"]["parameters"]
        # rw reaches the primary, ro the replica: each instance serves one Pooler's servers.
        servers = spec["instances"] * int(parameters["default_pool_size"])
        assert servers <= 0.9 * max_connections, kind
        assert hpa * per_pod <= spec["instances"] * int(parameters["max_client_conn"]), kind
    for path, value in POOLER_MISTAKES:
        doc = copy.deepcopy(poolers["rw"])
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[key]
        node[last] = value
        assert not jsonschema.Draft202012Validator(schema).is_valid(doc), f"{path}={value!r}"
