"""The real server, started as users and the container start it, over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from .conftest import PROJECT_ROOT
from .postgres_cluster import free_port


def start_server(port: int, data_dir: Path, log: IO[str] | None = None, **env: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}", "--server.port", str(port)]
    return subprocess.Popen(
        [*command, "--server.address", "127.0.0.1"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATA_DIR": str(data_dir), **env},
        stdout=log or subprocess.PIPE,
        stderr=log or subprocess.PIPE,
        text=True,
    )


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def wait_healthy(base: str, process: subprocess.Popen[str], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited {process.returncode}:\n{log.read_text()}"
        try:
            if get(f"{base}/_stcore/health") == (200, "ok"):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"server not healthy after {timeout}s")


CGROUP_LIMIT_BYTES = 536_870_912  # what a `--memory 512m` container shows


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-log") / "server.log"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_log: Path) -> Iterator[str]:
    port = free_port()
    cgroup = tmp_path_factory.mktemp("cgroup")
    (cgroup / "memory.max").write_text(f"{CGROUP_LIMIT_BYTES}\n")
    with server_log.open("w") as log:
        process = start_server(port, tmp_path_factory.mktemp("server-data"), log, CGROUP_ROOT=str(cgroup))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, server_log)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def test_serves_the_app_page(server: str) -> None:
    status, body = get(server)
    assert status == 200
    assert '<div id="root">' in body


def test_metrics_on_the_same_port(server: str) -> None:
    status, body = get(f"{server}/metrics")
    assert status == 200
    samples = {
        line.split(" ")[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line and not line.startswith("#")
    }
    assert samples["app_memory_limit_bytes"] == CGROUP_LIMIT_BYTES
    assert 0 < samples["app_memory_rss_bytes"] < CGROUP_LIMIT_BYTES
    assert samples["app_memory_usage_ratio"] == pytest.approx(
        samples["app_memory_rss_bytes"] / min(CGROUP_LIMIT_BYTES, {{ cookiecutter.memory_limit_mib }} * 1024 * 1024)
    )
    for family in (
        'app_db_pool_size{engine="primary"}',
        'app_db_pool_checked_out{engine="primary"}',
        'app_db_pool_max_connections{engine="primary"}',
        "app_db_replica_fallbacks_total",
        "app_script_errors_total",
    ):
        assert family in samples, family


def test_every_metric_the_alerts_and_dashboard_use_is_exported(server: str) -> None:
    _, body = get(f"{server}/metrics")
    exported = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line.startswith("app_")}
    monitoring = PROJECT_ROOT / "monitoring"
    used = set()
    for path in (monitoring / "alerts.yml", monitoring / "grafana" / "dashboards" / "app.json"):
        used |= set(re.findall(r"\bapp_[a-z_]+", path.read_text()))
    assert used, "no app metrics found in the monitoring assets"
    assert used <= exported, f"used but not exported: {sorted(used - exported)}"


def test_start_up_sets_nodelay_on_the_listening_socket(server: str, server_log: Path) -> None:
    # tests/test_tcp.py proves what the setting does; this proves the real server applies it.
    assert "startup tcp_nodelay_listeners=1" in server_log.read_text()


def test_streamlit_metrics_still_served(server: str) -> None:
    status, body = get(f"{server}/_stcore/metrics")
    assert status == 200
    assert "session_events_total" in body


def test_bad_setting_stops_the_start_with_one_line(tmp_path: Path) -> None:
    process = start_server(free_port(), tmp_path, DB_POOL_SIZE="lots")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == [
        "{{ cookiecutter.project_slug }}: invalid configuration: "
        "DB_POOL_SIZE='lots' must be a whole number of at least 1 and at most 100 (default 5)"
    ]
