"""Load shedding on the real server: `/ready`, the busy page, and refused websockets.

Memory: the server reads a cgroup folder the test writes (CGROUP_ROOT), so the working
set can be pushed over the action line and back; the container test in the template
(tests/test_memory_pressure.py) does the same with a real limit. Descriptors: the
server runs under a low hard RLIMIT_NOFILE, so only a few sessions fit beside the reserve.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .conftest import PROJECT_ROOT
from .postgres_cluster import free_port
from .test_server import wait_healthy

MIB = 1024 * 1024


def status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def open_session(port: int) -> ClientConnection:
    """A websocket as the browser opens it for a new session."""
    return connect(
        f"ws://127.0.0.1:{port}/_stcore/stream",
        subprotocols=["streamlit"],  # type: ignore[list-item]
        origin=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
        open_timeout=10,
    )


def refused_total(base: str, reason: str) -> float:
    _, body = status(f"{base}/metrics")
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "app_sessions_refused_total" and sample.labels == {"reason": reason}:
                return sample.value
    raise AssertionError("app_sessions_refused_total is not exported")


def wait_for(url: str, expected: int, timeout: float = 20) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        answer = status(url)
        if answer[0] == expected or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def serve(tmp_path: Path, nofile: int | None = None, **env: str) -> tuple[subprocess.Popen[str], str]:
    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    port, log = free_port(), tmp_path / "server.log"
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}", "--server.port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen(
            [*command, "--server.address", "127.0.0.1"],
            cwd=PROJECT_ROOT,
            env={**os.environ, "DATA_DIR": str(tmp_path), **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=limit_files,
        )
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, process, log)
    return process, base


@pytest.fixture
def stop() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def write_cgroup(root: Path, working_set_mib: int) -> None:
    (root / "memory.max").write_text(f"{1000 * MIB}\n")
    (root / "memory.stat").write_text("inactive_file 0\n")
    (root / "memory.current").write_text(f"{working_set_mib * MIB}\n")


def test_memory_pressure_sheds_new_sessions_until_below_the_warning(
    tmp_path: Path, stop: list[subprocess.Popen[str]]
) -> None:
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    write_cgroup(cgroup, 300)
    process, base = serve(
        tmp_path, CGROUP_ROOT=str(cgroup), MEMORY_LIMIT_MIB="1000", MEMORY_CHECK_INTERVAL_S="0.2"
    )
    stop.append(process)
    port = int(base.rsplit(":", 1)[1])
    assert status(f"{base}/ready") == (200, "ready\n")
    with open_session(port) as existing:  # admitted before the pressure: must stay connected
        write_cgroup(cgroup, 900)  # e.g. exports in /tmp: clearing caches frees none of it
        assert wait_for(f"{base}/ready", 503) == (503, "busy: memory\n")
        page_status, page = status(base)
        assert page_status == 503 and "Busy, please retry" in page
        with pytest.raises(InvalidStatus) as refused, open_session(port):
            pass
        assert refused.value.response.status_code == 503
        assert refused_total(base, "memory") >= 2
        assert status(f"{base}/_stcore/health") == (200, "ok")  # liveness is not readiness
        existing.ping().wait(5)  # the session admitted earlier still answers

        write_cgroup(cgroup, 750)  # below the action line, above the warning: still shedding
        time.sleep(1)
        assert status(f"{base}/ready")[0] == 503
        write_cgroup(cgroup, 600)
        assert wait_for(f"{base}/ready", 200) == (200, "ready\n")
        assert status(base)[0] == 200
        with open_session(port):
            pass


def test_sessions_past_the_descriptor_limit_get_the_busy_answer(
    tmp_path: Path, stop: list[subprocess.Popen[str]]
) -> None:
    process, base = serve(tmp_path, nofile=120)
    stop.append(process)
    port = int(base.rsplit(":", 1)[1])
    admitted = 0
    with contextlib.ExitStack() as sessions:
        with pytest.raises(InvalidStatus) as refused:
            while admitted < 40:  # 40 x 4 descriptors cannot fit in 120
                sessions.enter_context(open_session(port))
                admitted += 1
        assert refused.value.response.status_code == 503
        assert admitted, "not even one session fitted"
        # The reserve keeps the probes answering at the limit.
        assert status(f"{base}/_stcore/health") == (200, "ok")
        assert status(f"{base}/ready") == (503, "busy: descriptors\n")
        assert status(f"{base}/metrics")[0] == 200
        assert refused_total(base, "descriptors") >= 1
    assert wait_for(f"{base}/ready", 200)[0] == 200
