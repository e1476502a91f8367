"""The generated Dockerfile, .dockerignore and compose stack: linted offline, then run with podman.

The podman tests build the generated image on a stand-in Python base (see
tests/images.py), run it under a 512 MiB limit and bring up the compose stack with
stand-in PostgreSQL and Prometheus images. Without podman they are skipped, visibly;
with CI set, a missing podman fails them. `pytest -s` prints build and start-up figures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.main import cookiecutter

from . import images
from .conftest import BIN_DIR, TEMPLATE_DIR, free_port, run

MIB = 1024 * 1024
RUN_MEMORY_MIB = 512
# What must never reach the build context, as paths relative to the project.
KEPT_OUT = (".env", ".streamlit/secrets.toml", ".git", "data", "tests", "deploy", ".venv", "__pycache__")
# What the Dockerfile needs from the context.
KEPT_IN = ("pyproject.toml", "uv.lock", "README.md", ".streamlit/config.toml", "docker/entrypoint.sh")


def report(label: str, value: str) -> None:
    """A figure for the CI log (`pytest -s` shows it)."""
    print(f"\n[containers] {label}: {value}", flush=True)


def env_file(project: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (project / ".env").read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs if not key.lstrip().startswith("#")}


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{name}(?:\{{[^}}]*\}})?\s+(\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def wait_healthy(container: str, timeout: float = 120) -> float:
    """Run the container's own HEALTHCHECK until it passes (no systemd timers here); seconds taken."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        check = subprocess.run(["podman", "healthcheck", "run", container], capture_output=True, text=True)
        if check.returncode == 0:
            return time.monotonic() - started
        time.sleep(1)
    logs = subprocess.run(["podman", "logs", "--tail", "40", container], capture_output=True, text=True)
    pytest.fail(f"{container} not healthy after {timeout:.0f} s\n{logs.stdout}\n{logs.stderr}")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A render as a developer's working copy: local secrets, state and caches next to the code."""
    output = tmp_path_factory.mktemp("containers")
    path = Path(
        cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            extra_context={"python_version": images.PYTHON_VERSION},
            output_dir=str(output),
        )
    )
    for name in (".git/config", "data/app.sqlite3", ".venv/pyvenv.cfg", "src/__pycache__/x.cpython-311.pyc"):
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(f"POSTGRES_PASSWORD={env_file(path)['POSTGRES_PASSWORD']}\n")
    return path


# --- Offline: linters and static checks -------------------------------------------------------


def test_dockerfile_passes_hadolint(project: Path) -> None:
    run([str(BIN_DIR / "hadolint"), "Dockerfile"], cwd=project)
    dockerfile = (project / "Dockerfile").read_text()
    assert f"ARG PYTHON_IMAGE=python:{images.PYTHON_VERSION}-slim" in dockerfile
    assert re.search(r"^USER \d+", dockerfile, re.MULTILINE), "run as a fixed numeric UID"
    assert re.search(r'^ENTRYPOINT \[".*"\]$', dockerfile, re.MULTILINE), "exec form, so SIGTERM arrives"


def test_compose_follows_the_spec_and_bounds_every_service(project: Path) -> None:
    run(
        [str(BIN_DIR / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml"],
        project,
    )
    services: dict[str, Any] = yaml.safe_load((project / "compose.yaml").read_text())["services"]
    assert {"app", "db-primary", "db-replica", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        assert service["deploy"]["resources"]["limits"]["memory"], f"{name}: no memory limit"
        assert service["healthcheck"]["test"], f"{name}: no healthcheck"
        assert service["restart"] == "unless-stopped", f"{name}: no restart policy"
        for key, value in service.get("environment", {}).items():
            if "PASSWORD" in key:
                assert re.fullmatch(r"\$\{\w+\?[^}]+\}", value), f"{name}: {key} must come from .env"
    app = services["app"]
    assert app["deploy"]["resources"]["limits"]["memory"] == "${MEMORY_LIMIT_MIB:-1024}m"
    assert app["depends_on"]["db-replica"]["condition"] == "service_healthy"
    assert app["build"]["args"]["PYTHON_IMAGE"] == f"${{PYTHON_IMAGE:-python:{images.PYTHON_VERSION}-slim}}"
    assert services["grafana"]["profiles"] == ["monitoring"]


def test_prometheus_config_passes_promtool(project: Path) -> None:
    if shutil.which("promtool") is None:
        message = "promtool is not installed (Debian package prometheus; scripts/install-system-deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # The alert rules ship with the monitoring files; stand in for them only if they are not there yet.
    alerts = project / "monitoring" / "alerts.yml"
    if not alerts.exists():
        alerts.write_text("groups: []\n")
    result = run(["promtool", "check", "config", "monitoring/prometheus.yml"], cwd=project)
    assert "1 rule files found" in result.stdout + result.stderr


def test_dockerignore_lists_secrets_and_local_state(project: Path) -> None:
    patterns = {line.strip().rstrip("/") for line in (project / ".dockerignore").read_text().splitlines()}
    for required in (".git", ".env", "**/secrets.toml", "tests", "data", "deploy", ".venv", "**/__pycache__"):
        assert required in patterns, f".dockerignore does not list {required}"


# --- podman: the image --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_image() -> str:
    images.require_podman()
    return images.python_base()


@pytest.fixture(scope="module")
def app_image(project: Path, base_image: str) -> Iterator[str]:
    tag = f"localhost/st-prod-test/{project.name}:{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    images.podman(
        "build", *images.BUILD_FLAGS, "--build-arg", f"PYTHON_IMAGE={base_image}",
        "--build-arg", f"UV_IMAGE={images.uv_image()}", "-t", tag, str(project),
    )  # fmt: skip
    report("image build", f"{time.monotonic() - started:.0f} s")
    report("image size", f"{images.image_size_mb(tag):.0f} MB on a Debian stand-in base")
    yield tag
    subprocess.run(["podman", "rmi", "--force", tag], capture_output=True)


@pytest.fixture(scope="module")
def app_container(app_image: str) -> Iterator[tuple[str, int]]:
    name, port = f"st-prod-test-{uuid.uuid4().hex[:8]}", free_port()
    memory = f"{RUN_MEMORY_MIB}m"
    images.podman(
        "run", "--detach", "--name", name, "--memory", memory, "-p", f"127.0.0.1:{port}:8501", app_image
    )
    try:
        report("time to healthy (podman run)", f"{wait_healthy(name, timeout=90):.1f} s")
        yield name, port
    finally:
        subprocess.run(["podman", "rm", "--force", "--time", "0", name], capture_output=True)


def test_build_context_leaves_out_secrets_and_local_state(
    project: Path, base_image: str, tmp_path: Path
) -> None:
    """What the engine sends to a build, through the project's own .dockerignore."""
    probe = tmp_path / "Containerfile"
    probe.write_text(f"FROM {base_image}\nCOPY . /context\n")
    tag = f"localhost/st-prod-test/context:{uuid.uuid4().hex[:8]}"
    images.podman("build", "--format", "docker", "-f", str(probe), "-t", tag, str(project))
    try:
        listing = images.podman(
            "run", "--rm", "--entrypoint", "find", tag, "/context", "-printf", "%P\\n"
        ).stdout
    finally:
        subprocess.run(["podman", "rmi", "--force", tag], capture_output=True)
    paths = set(listing.split())
    for kept_out in KEPT_OUT:
        leaked = [path for path in paths if path == kept_out or kept_out in path.split("/")]
        assert not leaked, f"the build context holds {leaked}"
    for kept_in in KEPT_IN:
        assert kept_in in paths, f"the build context lacks {kept_in}"


def test_image_serves_health_and_metrics_within_512_mib(app_container: tuple[str, int]) -> None:
    name, port = app_container
    limit = images.podman("inspect", "--format", "{{.HostConfig.Memory}}", name).stdout.strip()
    assert int(limit) == RUN_MEMORY_MIB * MIB
    assert http_get(f"http://127.0.0.1:{port}/_stcore/health") == "ok"
    metrics = http_get(f"http://127.0.0.1:{port}/metrics")
    assert metric(metrics, "process_resident_memory_bytes")
    # Reported by the app once it reads the container's cgroup limit.
    limit_metric = metric(metrics, "app_memory_limit_bytes")
    if limit_metric is not None:
        report("app_memory_limit_bytes under --memory 512m", f"{limit_metric:.0f}")
        assert limit_metric == RUN_MEMORY_MIB * MIB
    assert "session" in http_get(f"http://127.0.0.1:{port}/_stcore/metrics")


def test_server_is_pid_1_and_not_root(app_container: tuple[str, int]) -> None:
    name, _ = app_container
    assert images.podman("exec", name, "id", "-u").stdout.strip() != "0"
    script = (
        "import os; print(os.stat('/proc/1').st_uid, open('/proc/1/cmdline').read().replace(chr(0), ' '))"
    )
    uid, cmdline = images.podman("exec", name, "python", "-c", script).stdout.strip().split(" ", 1)
    assert uid != "0"
    # The entrypoint exec'd the server: it is PID 1 and gets SIGTERM itself.
    assert cmdline.startswith("python") and "-m" in cmdline, cmdline


def test_image_holds_no_secrets(project: Path, app_image: str, tmp_path: Path) -> None:
    found = images.podman(
        "run", "--rm", "--user", "0", "--entrypoint", "find", app_image, "/", "-xdev",
        "(", "-name", "secrets.toml", "-o", "-name", ".env", "-o", "-name", "secrets.env", ")", "-print",
    ).stdout  # fmt: skip
    assert not found.strip(), f"secret files in the image: {found}"
    secrets = env_file(project)
    passwords = [secrets["POSTGRES_PASSWORD"], secrets["REPLICATION_PASSWORD"]]
    history = images.podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", app_image).stdout
    archive = tmp_path / "image.tar"
    images.podman("save", "--format", "docker-archive", "-o", str(archive), app_image)
    for password in passwords:
        assert password not in history
        # Layers in a docker-archive are plain tar: a copied file would show its bytes here.
        grep = subprocess.run(["grep", "-a", "-F", "-q", "--", password, str(archive)], check=False)
        assert grep.returncode == 1, "a generated password is in the image's layers"


def test_invalid_setting_stops_the_container_with_one_line(app_image: str) -> None:
    result = subprocess.run(
        ["podman", "run", "--rm", "-e", "DB_POOL_SIZE=lots", app_image],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "invalid configuration: DB_POOL_SIZE='lots'" in result.stdout + result.stderr


def test_sigterm_stops_the_server_within_10_s(app_container: tuple[str, int]) -> None:
    name, _ = app_container
    started = time.monotonic()
    images.podman("stop", "--time", "10", name)
    elapsed = time.monotonic() - started
    report("stop on SIGTERM", f"{elapsed:.1f} s")
    exit_code = images.podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert elapsed < 10, f"podman stop took {elapsed:.1f} s: SIGTERM did not stop the server"
    assert exit_code != "137", "the server was killed, not stopped"


# --- podman-compose: the stack -----------------------------------------------------------------

REPLICATION_PROBE = """
import json, os, time, uuid
import sqlalchemy as sa
token = uuid.uuid4().hex
primary = sa.create_engine(os.environ["DATABASE_URL"])
replica = sa.create_engine(os.environ["DATABASE_REPLICA_URL"])
with primary.begin() as connection:
    connection.execute(sa.text("create table if not exists replication_probe (token text primary key)"))
    connection.execute(sa.text("insert into replication_probe values (:token)"), {"token": token})
result = {"replicated_after_s": None}
started = time.monotonic()
while result["replicated_after_s"] is None and time.monotonic() - started < 15:
    try:
        with replica.connect() as connection:
            query = "select count(*) from replication_probe where token = :token"
            if connection.execute(sa.text(query), {"token": token}).scalar():
                result["replicated_after_s"] = round(time.monotonic() - started, 2)
    except sa.exc.ProgrammingError:
        pass
    time.sleep(0.1)
with replica.connect() as connection:
    result["in_recovery"] = connection.execute(sa.text("select pg_is_in_recovery()")).scalar()
    result["sales_rows"] = connection.execute(sa.text("select count(*) from sales")).scalar()
    try:
        connection.execute(sa.text("insert into replication_probe values ('x')"))
        result["replica_writable"] = True
    except sa.exc.DBAPIError as error:
        result["replica_writable"] = "read-only" not in str(error)
print(json.dumps(result))
"""


def compose_containers(project_name: str) -> dict[str, dict[str, Any]]:
    listing = images.podman(
        "ps", "--all", "--filter", f"label=io.podman.compose.project={project_name}", "--format", "json"
    ).stdout
    return {item["Labels"]["com.docker.compose.service"]: item for item in json.loads(listing or "[]")}


def container_ip(container: str) -> str:
    """The container's address on its compose network; rootful podman routes it from the host."""
    template = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    return images.podman("inspect", "--format", template, container).stdout.split()[0]


def test_compose_stack_replicates_and_bounds_memory(project: Path, app_image: str, base_image: str) -> None:
    podman_compose = shutil.which("podman-compose", path=f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}")
    assert podman_compose, "podman-compose is missing (tests/requirements.txt)"
    postgres_image, prometheus_image = images.stand_in("postgres"), images.stand_in("prometheus")
    name = f"stprod{uuid.uuid4().hex[:8]}"
    prometheus_port = free_port()
    env = {
        "PYTHON_IMAGE": base_image,
        "APP_IMAGE": app_image,  # built above: compose finds it and does not build again
        "POSTGRES_IMAGE": postgres_image,
        # The primary's image with pgBackRest (docker/postgres/Dockerfile), built below.
        "DB_IMAGE": f"localhost/st-prod-test/db:{uuid.uuid4().hex[:8]}",
        "PROMETHEUS_IMAGE": prometheus_image,
        "APP_NOFILE": images.compose_nofile(),
        "POSTGRES_PRIMARY_PORT": str(free_port()),
        "POSTGRES_REPLICA_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(prometheus_port),
    }
    compose = [podman_compose, "-p", name]
    memory_mib = int(env_file(project)["MEMORY_LIMIT_MIB"])

    def container(service: str) -> str:
        return compose_containers(name)[service]["Names"][0]

    try:
        images.podman(
            "build", *images.BUILD_FLAGS, "--build-arg", f"POSTGRES_IMAGE={postgres_image}",
            "-t", env["DB_IMAGE"], "-f", str(project / "docker/postgres/Dockerfile"), str(project / "docker"),
        )  # fmt: skip
        started = time.monotonic()
        # One tier at a time, each healthy before the next: podman before 4.6 ignores
        # `condition: service_healthy`, and no systemd runs healthchecks on their own here.
        for tier in (["db-primary"], ["db-replica", "db-backup"], ["app", "prometheus"]):
            run([*compose, "up", "--detach", "--no-deps", *tier], cwd=project, timeout=300, **env)
            for service in tier:
                wait_healthy(container(service), timeout=120)
        report(
            "compose stack healthy (primary, replica, app, prometheus)", f"{time.monotonic() - started:.1f} s"
        )

        probe = images.podman("exec", container("app"), "python", "-c", REPLICATION_PROBE).stdout
        result = json.loads(probe.strip().splitlines()[-1])
        report("replication probe", json.dumps(result))
        assert result["replicated_after_s"] is not None, (
            "a row written to the primary never reached the replica"
        )
        assert result["in_recovery"] is True
        assert result["replica_writable"] is False
        assert result["sales_rows"] > 0, "the entrypoint's migration did not seed the primary"
        streaming = images.podman(
            "exec", container("db-primary"), "psql", "-U", "app", "-d", "app", "-tAc",
            "select count(*) from pg_stat_replication where state = 'streaming'",
        ).stdout  # fmt: skip
        assert streaming.strip() == "1"

        limits = {
            service: int(images.podman("inspect", "--format", "{{.HostConfig.Memory}}", item["Id"]).stdout)
            for service, item in compose_containers(name).items()
        }
        assert set(limits) == {"app", "db-primary", "db-replica", "db-backup", "prometheus"}
        assert all(limits.values()), f"a container without a memory limit: {limits}"
        assert limits["app"] == memory_mib * MIB
        # The app publishes no port (the proxy does): scrape it directly, as Prometheus does.
        metrics = http_get(f"http://{container_ip(container('app'))}:8501/metrics")
        if "app_memory_limit_bytes" in metrics:
            assert metric(metrics, "app_memory_limit_bytes") == memory_mib * MIB

        # Prometheus scrapes both of the app's endpoints and the backup service's metrics.
        # DNS discovery finds the app a refresh after Prometheus starts: wait for every job.
        expected = {"app": "up", "streamlit": "up", "backups": "up", "prometheus": "up"}
        deadline, health = time.monotonic() + 60, {}
        while time.monotonic() < deadline and health != expected:
            targets = json.loads(http_get(f"http://127.0.0.1:{prometheus_port}/api/v1/targets"))
            health = {
                target["labels"]["job"]: target["health"] for target in targets["data"]["activeTargets"]
            }
            time.sleep(1)
        assert health == expected, health
        report("prometheus targets up", f"{time.monotonic() - started:.1f} s after the first `up`")
    finally:
        stopped = time.monotonic()
        subprocess.run(
            [*compose, "down", "--volumes"], cwd=project, env={**os.environ, **env}, capture_output=True
        )
        report("compose down -v", f"{time.monotonic() - stopped:.1f} s")
        leftovers = compose_containers(name)
        for item in leftovers.values():
            subprocess.run(["podman", "rm", "--force", item["Id"]], capture_output=True)
        subprocess.run(["podman", "rmi", "--force", env["DB_IMAGE"]], capture_output=True)
    assert not leftovers, f"`down` left containers behind: {list(leftovers)}"
