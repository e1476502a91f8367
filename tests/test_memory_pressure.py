"""The generated image under a real memory limit and the runtimes' usual file limits (podman).

The stand: the image test_containers.py builds (stand-in Debian base), run as compose
runs it (`--tmpfs /tmp`, no swap: `--memory-swap` equal to `--memory`, restart policy
unless-stopped) with `--ulimit nofile=1024:16384 --ulimit nproc=1024:1024`, the soft
limit Docker 29 and containerd 2 give containers.

Memory: a 448 MiB limit, about 2.5x the idle RSS (~180 MiB), and a data set big enough
that caching it does not fit: the embedded SQLite file gets the demo rows plus 150 more
regions (~59,000 rows), so one cached `daily_sales` frame over a long period is a few
MiB. Ten concurrent sessions each apply twenty distinct periods: every submit is a cache
miss that keeps one more frame. CACHE_MAX_ENTRIES is raised to 1000 so that the count
bound does not cap the caches first (a bound sized for small frames, as users set
it): only the guard stands between the caches and the limit.

1. Guard on (the defaults: warn 70 %, act 85 %). First, shedding made certain: a file
   written to /tmp (tmpfs, charged to the container as an export would be, invisible in
   RSS) pushes the working set over the action line; clearing caches cannot free it, so
   /ready says 503, a new browser gets the busy page and a new websocket is refused,
   while the session already open keeps working and /_stcore/health stays 200; the file
   removed, the app is ready again and serves new sessions. Then the load: the guard
   clears the caches, memory falls back below 85 %, the container is never OOM-killed
   and every session's interactions succeed. Whether the load itself also makes the app
   shed depends on timing (the reruns in flight hold the memory): it is reported.
2. Guard off (MEMORY_ACT_RATIO=1.5) and the same load: the kernel kills it (exit 137),
   the restart policy brings it back, and it serves a new session.

Descriptors: 300 sessions (more than 1024 / 4) connect to one container under the soft
limit of 1024 while /_stcore/health keeps answering.

`pytest -s` prints the figures (peaks, actions, refusals, timings).
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.client import HTTPException
from pathlib import Path

import pytest
import yaml
from websockets.exceptions import InvalidStatus

from . import images
from .conftest import TEMPLATE_DIR, free_port, run
from .test_containers import app_image, base_image, metric, project  # noqa: F401 (fixtures)

sys.path.insert(0, str(TEMPLATE_DIR / "bench"))
import driver
from streamlit.proto.WidgetStates_pb2 import WidgetState

Start = Callable[..., tuple[str, int]]  # starts the app container; returns its name and port
MIB = 1024 * 1024
MEMORY_MIB = 448
ULIMITS = ["--ulimit", "nofile=1024:16384", "--ulimit", "nproc=1024:1024"]
EXTRA_REGIONS = 150
SESSIONS, FILTERS_EACH = 10, 20
LOAD_ENV = {
    "SEED_DEMO_DATA": "true",
    "CACHE_MAX_ENTRIES": "1000",
    "MEMORY_CHECK_INTERVAL_S": "0.25",  # a rerun storm outruns a slower guard at this limit
}
GROW_DATA = f"""
import datetime, random, sqlite3
connection = sqlite3.connect("/app/data/app.sqlite3")
first, rng = datetime.date(2025, 1, 1), random.Random(1)
rows = []
for region in range({EXTRA_REGIONS}):
    for offset in range(365):
        units = rng.randint(1, 40)
        day = (first + datetime.timedelta(days=offset)).isoformat()
        rows.append((day, f"Region {{region:03d}}", "Team", units, units * 199.0))
insert = "insert into sales (day, region, product, units, revenue) values (?, ?, ?, ?, ?)"
connection.executemany(insert, rows)
connection.commit()
print(connection.execute("select count(*) from sales").fetchone()[0])
"""


def report(label: str, value: str) -> None:
    print(f"\n[memory-pressure] {label}: {value}", flush=True)


def http(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def state(name: str) -> dict[str, str]:
    fields = "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}"
    status, exit_code, restarts = images.podman("inspect", "--format", fields, name).stdout.split()
    return {"status": status, "exit_code": exit_code, "restarts": restarts}


def wait_ready(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http(f"http://127.0.0.1:{port}/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the app on port {port} was not ready after {timeout:.0f} s")


@pytest.fixture
def container(app_image: str, tmp_path: Path) -> Iterator[Start]:  # noqa: F811
    names: list[str] = []

    def start(*extra: str, memory_mib: int = MEMORY_MIB, **env: str) -> tuple[str, int]:
        name, port = f"st-prod-pressure-{uuid.uuid4().hex[:8]}", free_port()
        variables = [f"--env={key}={value}" for key, value in env.items()]
        # From a scratch folder: conmon (podman 4.3) drops an `oom` file in its working directory.
        run(
            ["podman", "run", "--detach", "--name", name, "--memory", f"{memory_mib}m",
            "--memory-swap", f"{memory_mib}m", "--tmpfs", "/tmp", "--restart", "unless-stopped",
            *ULIMITS, *variables, *extra, "-p", f"127.0.0.1:{port}:8501", app_image],
            cwd=tmp_path,
        )  # fmt: skip
        names.append(name)
        wait_ready(port)
        return name, port

    yield start
    for name in names:
        subprocess.run(["podman", "rm", "--force", "--time", "0", name], capture_output=True)


@dataclass
class Sample:
    at: float
    rss_mib: float
    working_set_mib: float
    ratio: float
    clear_caches: float
    shedding: float

    def describe(self) -> str:
        return (
            f"ratio {self.ratio:.2f}, RSS {self.rss_mib:.0f} MiB, working set {self.working_set_mib:.0f} MiB"
        )


@dataclass
class Sampler:
    """/metrics, read directly on the container's port every half second."""

    port: int
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def read(self) -> Sample | None:
        try:
            _, text = http(f"http://127.0.0.1:{self.port}/metrics", timeout=3)
        except (OSError, HTTPException):  # restarting, or killed mid-answer
            return None
        value = lambda name: metric(text, name) or 0.0  # noqa: E731
        actions = [line for line in text.splitlines() if line.startswith("app_memory_guard_actions_total")]
        cleared = next(float(line.rsplit(" ", 1)[1]) for line in actions if '"clear_caches"' in line)
        return Sample(
            time.monotonic(),
            value("app_memory_rss_bytes") / MIB,
            value("app_memory_working_set_bytes") / MIB,
            value("app_memory_usage_ratio"),
            cleared,
            value("app_memory_shedding"),
        )

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            sample = self.read()
            if sample is not None:
                self.samples.append(sample)


async def fill_caches(port: int, number: int, results: list[str]) -> None:
    """One user applying FILTERS_EACH periods nobody else picks: each is a cache miss."""
    session = driver.Session(port, number, seed=number)
    rng = random.Random(number)
    try:
        await session.open()
        assert session.bounds is not None
        first, _ = session.bounds
        for _ in range(FILTERS_EACH):
            days = rng.randint(120, 365)
            start = first + timedelta(days=rng.randint(0, 365 - days))
            period = WidgetState()
            period.string_array_value.data.extend(
                [start.isoformat(), (start + timedelta(days=days - 1)).isoformat()]
            )
            await session._change("Period", period)
            await session.act("submit")
            results.append("ok")
    except Exception as error:  # recorded, not raised: the guard-on half asserts there are none
        results.append(f"{type(error).__name__}: {error}")
    finally:
        await session.close()


async def drive(port: int, stop_when: Callable[[], bool] = lambda: False) -> list[str]:
    results: list[str] = []
    tasks = [asyncio.create_task(fill_caches(port, number, results)) for number in range(SESSIONS)]
    while not all(task.done() for task in tasks):
        if stop_when():  # e.g. the container died: the sessions would only time out
            for task in tasks:
                task.cancel()
            break
        await asyncio.sleep(0.5)
    await asyncio.gather(*tasks, return_exceptions=True)
    return results


async def new_session_runs(port: int) -> bool:
    session = driver.Session(port, 999, seed=999)
    try:
        await session.open()
        return True
    finally:
        await session.close()


class OpenSession:
    """A session admitted before the pressure, kept open on its own event loop meanwhile."""

    def __init__(self, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self._session = driver.Session(port, 998, seed=998)

    def _call(self, coroutine: Coroutine[object, object, object]) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=90)

    def __enter__(self) -> OpenSession:
        self._call(self._session.open())
        return self

    def rerun(self) -> None:
        self._call(self._session.act("submit"))

    def __exit__(self, *_: object) -> None:
        self._call(self._session.close())
        self._loop.call_soon_threadsafe(self._loop.stop)


def grow_data(name: str) -> int:
    return int(images.podman("exec", name, "python", "-c", GROW_DATA).stdout.strip())


def test_compose_turns_swap_off_and_raises_open_files(project: Path) -> None:  # noqa: F811
    app = yaml.safe_load((project / "compose.yaml").read_text())["services"]["app"]
    assert app["memswap_limit"] == app["deploy"]["resources"]["limits"]["memory"]
    nofile = app["ulimits"]["nofile"]
    assert nofile["soft"] == nofile["hard"] == "${APP_NOFILE:-65536}"


def test_guard_sheds_new_sessions_and_keeps_the_container_alive(container: Start) -> None:
    name, port = container(**LOAD_ENV)
    report("rows in sales", str(grow_data(name)))
    sampler = Sampler(port)

    # Shedding, made certain: an export-sized file in /tmp that clearing caches cannot free.
    with OpenSession(port) as existing:
        idle = sampler.read()
        assert idle is not None and idle.working_set_mib, "no working set: is the cgroup limit visible?"
        fill_mib = int(MEMORY_MIB * 0.92 - idle.working_set_mib)
        images.podman("exec", name, "dd", "if=/dev/zero", "of=/tmp/export.bin", "bs=1M", f"count={fill_mib}")
        shed_at = time.monotonic()
        while http(f"http://127.0.0.1:{port}/ready")[0] != 503:
            assert time.monotonic() - shed_at < 20, "/ready never answered 503"
            time.sleep(0.3)
        report(f"a {fill_mib} MiB file in /tmp", f"/ready 503 after {time.monotonic() - shed_at:.1f} s")
        shedding = sampler.read()
        assert shedding is not None and shedding.shedding == 1
        report("while shedding", f"{shedding.describe()} (RSS does not see the file)")
        page_status, page = http(f"http://127.0.0.1:{port}/")
        assert page_status == 503 and "Busy, please retry" in page
        with pytest.raises(InvalidStatus) as refused:
            asyncio.run(new_session_runs(port))
        assert refused.value.response.status_code == 503
        assert http(f"http://127.0.0.1:{port}/_stcore/health") == (200, "ok")
        existing.rerun()  # the session admitted before keeps working
        _, text = http(f"http://127.0.0.1:{port}/metrics")
        assert (metric(text, 'app_sessions_refused_total\\{reason="memory"\\}') or 0) >= 2

        images.podman("exec", name, "rm", "/tmp/export.bin")
        freed_at = time.monotonic()
        while http(f"http://127.0.0.1:{port}/ready")[0] != 200:
            assert time.monotonic() - freed_at < 30, "still not ready after the file was removed"
            time.sleep(0.3)
        report("file removed", f"/ready 200 after {time.monotonic() - freed_at:.1f} s")
        assert asyncio.run(new_session_runs(port))
        existing.rerun()

    # The load: the caches would outgrow the limit; the guard clears them.
    started = time.monotonic()
    with sampler:
        results = asyncio.run(drive(port))
        time.sleep(3)  # a few samples after the load
    samples = sampler.samples
    report("load", f"{len(results)} submits in {time.monotonic() - started:.0f} s")
    report("peak", max(samples, key=lambda sample: sample.ratio).describe())
    report("clear_caches actions", f"{samples[-1].clear_caches - samples[0].clear_caches:.0f}")
    report("shed during the load", str(any(sample.shedding for sample in samples)))
    report("after the load", samples[-1].describe())

    assert results == ["ok"] * SESSIONS * FILTERS_EACH, [result for result in results if result != "ok"][:5]
    assert samples[-1].clear_caches > samples[0].clear_caches, "the guard never acted: make the load heavier"
    first_action = next(sample.at for sample in samples if sample.clear_caches > samples[0].clear_caches)
    assert min(sample.ratio for sample in samples if sample.at >= first_action) < 0.85
    assert samples[-1].ratio < 0.85
    assert state(name) == {"status": "running", "exit_code": "0", "restarts": "0"}, "OOM-killed"
    ended = time.monotonic()
    wait_ready(port, timeout=30)  # the sessions gone, below the action line: ready again
    report("ready again after the load", f"{time.monotonic() - ended:.1f} s")
    assert asyncio.run(new_session_runs(port))


def test_without_the_guard_the_same_load_is_oom_killed_and_restarts(
    container: Start,
) -> None:
    name, port = container(MEMORY_ACT_RATIO="1.5", **LOAD_ENV)
    grow_data(name)
    started = time.monotonic()
    killed = threading.Event()

    def died() -> bool:
        if not killed.is_set():
            now = state(name)
            if now["status"] != "running" or now["restarts"] != "0":
                killed.set()
        return killed.is_set()

    with Sampler(port) as sampler:
        asyncio.run(drive(port, stop_when=died))
    peak = max(sampler.samples, key=lambda sample: sample.ratio)
    report("guard off: peak before the kill", peak.describe())
    assert killed.is_set(), "not OOM-killed: the load is too light to prove anything"
    report("guard off: killed after", f"{time.monotonic() - started:.0f} s")
    assert sampler.samples[-1].clear_caches == 0

    wait_ready(port)
    report("guard off: ready again after", f"{time.monotonic() - started:.0f} s")
    after = state(name)
    assert after["status"] == "running" and int(after["restarts"]) >= 1
    events = images.podman(
        "events", "--stream=false", "--filter", f"container={name}", "--filter", "event=died",
        "--format", "{{.ContainerExitCode}}",
    ).stdout.split()  # fmt: skip
    assert "137" in events, f"exit codes of {name}: {events}"
    assert asyncio.run(new_session_runs(port))


def test_more_sessions_than_the_soft_file_limit_allows(container: Start) -> None:
    name, port = container()
    sessions = 300  # 4 descriptors each: 1200, past the soft limit of 1024
    healthy: list[bool] = []

    async def connect_all() -> int:
        opened = [driver.Session(port, number, seed=number) for number in range(sessions)]
        try:
            for batch in range(0, sessions, 25):
                await asyncio.gather(*(session.open() for session in opened[batch : batch + 25]))
                status, body = await asyncio.to_thread(http, f"http://127.0.0.1:{port}/_stcore/health")
                healthy.append((status, body) == (200, "ok"))
            _, text = await asyncio.to_thread(http, f"http://127.0.0.1:{port}/metrics")
            return int(metric(text, "process_open_fds") or 0)
        finally:
            await asyncio.gather(*(session.close() for session in opened), return_exceptions=True)

    started = time.monotonic()
    open_fds = asyncio.run(connect_all())
    report("300 sessions", f"{open_fds} descriptors open, connected in {time.monotonic() - started:.0f} s")
    assert open_fds > 1024, "the sessions did not need more than the soft limit"
    assert all(healthy) and len(healthy) == sessions // 25
    log = images.podman("logs", name).stderr + images.podman("logs", name).stdout
    assert "startup nofile_soft=1024->16384" in log
