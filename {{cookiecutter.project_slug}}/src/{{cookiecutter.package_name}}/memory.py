"""Memory awareness: RSS and the cgroup's working set against the limit, and a guard.

The seeds' rule of thumb: warn at 70 % of the limit, act at 85 % (clear caches and
collect garbage) before the kernel's OOM killer acts for you. When acting frees too
little (the sessions themselves fill the memory), the guard sheds load: new sessions
are turned away (see admission.py) until memory falls below the warning line.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pyarrow
import streamlit as st
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .cgroup import cgroup_memory_limit, cgroup_working_set
from .metrics import MEMORY_GUARD_ACTIONS
from .settings import Settings

MIB = 1024 * 1024
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MemoryReading:
    rss_bytes: int
    working_set_bytes: int | None  # the cgroup's, None outside a cgroup
    limit_bytes: int  # from the cgroup, else the host's memory
    budget_bytes: int  # what the guard measures against: the limit, capped by MEMORY_LIMIT_MIB

    @property
    def used_bytes(self) -> int:
        """Whichever of RSS and the working set is nearer the limit."""
        return max(self.rss_bytes, self.working_set_bytes or 0)

    @property
    def ratio(self) -> float:
        return self.used_bytes / self.budget_bytes


class MemoryProbe:
    def __init__(
        self,
        cgroup_root: Path,
        budget_mib: int,
        rss: Callable[[], int] = lambda: psutil.Process().memory_info().rss,
    ) -> None:
        self._cgroup_root = cgroup_root
        self._budget_bytes = budget_mib * MIB
        self._rss = rss

    def read(self) -> MemoryReading:
        cgroup_limit = cgroup_memory_limit(self._cgroup_root)
        # A cgroup without a limit is not this app's alone (a desktop session, the host's
        # root): its charge says nothing about the app, so RSS is all there is to go on.
        working_set = cgroup_working_set(self._cgroup_root) if cgroup_limit else None
        limit = cgroup_limit or psutil.virtual_memory().total
        return MemoryReading(self._rss(), working_set, limit, min(limit, self._budget_bytes))


class MemoryCollector(Collector):
    """RSS, limit and ratio gauges, read at scrape time."""

    def __init__(self, probe: MemoryProbe, shedding: Callable[[], bool]) -> None:
        self._probe = probe
        self._shedding = shedding

    def collect(self) -> Iterator[GaugeMetricFamily]:
        reading = self._probe.read()
        yield GaugeMetricFamily("app_memory_rss_bytes", "Resident memory of this process.", reading.rss_bytes)
        if reading.working_set_bytes is not None:
            yield GaugeMetricFamily(
                "app_memory_working_set_bytes",
                "The cgroup's usage minus inactive file pages: what the kubelet and OOM killer judge.",
                reading.working_set_bytes,
            )
        yield GaugeMetricFamily(
            "app_memory_limit_bytes",
            "Memory limit of the container (cgroup), or the host's memory when there is none.",
            reading.limit_bytes,
        )
        yield GaugeMetricFamily(
            "app_memory_usage_ratio",
            "The higher of RSS and the working set, over the budget (limit capped by MEMORY_LIMIT_MIB).",
            reading.ratio,
        )
        yield GaugeMetricFamily(
            "app_memory_shedding",
            "1 while the guard turns new sessions away because memory stays above the action ratio.",
            int(self._shedding()),
        )


@dataclass(frozen=True)
class GuardAction:
    at: datetime
    action: str
    used_mib: float
    ratio: float


def release_free_heap() -> None:
    """Hand freed memory back to the kernel: Arrow's pool and glibc's heap keep it otherwise."""
    pyarrow.default_memory_pool().release_unused()  # charts and frames go through Arrow
    libc = ctypes.util.find_library("c")
    if libc:
        with contextlib.suppress(AttributeError):  # not glibc (musl): nothing to trim
            ctypes.CDLL(libc).malloc_trim(0)


class MemoryGuard:
    """Samples memory every few seconds in its own thread; never inside a rerun."""

    def __init__(
        self,
        probe: MemoryProbe,
        warn_ratio: float,
        act_ratio: float,
        interval_s: float = 5.0,
        clear_caches: Callable[[], None] = st.cache_data.clear,
        connected_sessions: Callable[[], int] = lambda: 1,
    ) -> None:
        self._probe = probe
        self._warn_ratio = warn_ratio
        self._act_ratio = act_ratio
        self._interval_s = interval_s
        self._clear_caches = clear_caches
        self._connected_sessions = connected_sessions
        self._above_warning = False
        self._stop = threading.Event()
        self.shedding = False  # new sessions are turned away while this is set
        self.recent_actions: deque[GuardAction] = deque(maxlen=20)

    def check(self) -> str | None:
        """One sample; returns the action taken, if any."""
        reading = self._probe.read()
        action = None
        # While shedding, keep freeing down to the warning line: else an idle pod whose
        # caches refilled just under the action line would stay unready for good.
        if reading.ratio >= self._act_ratio or (self.shedding and reading.ratio >= self._warn_ratio):
            self._clear_caches()
            gc.collect()
            release_free_heap()
            action = "clear_caches"
            reading = self._probe.read()
            if reading.ratio >= self._act_ratio and not self.shedding:
                self.shedding = True  # what is left belongs to the sessions: protect them
                self._record("shed", reading)
        elif reading.ratio >= self._warn_ratio and not self._above_warning:
            action = "warn"  # once per crossing, not on every sample
        # Below the action line with nobody connected, the warning line's hysteresis protects
        # no one: what is left is the heap Python keeps, and the pod would stay unready.
        idle = reading.ratio < self._act_ratio and self._connected_sessions() == 0
        if self.shedding and (reading.ratio < self._warn_ratio or idle):
            self.shedding = False
            log.warning("memory_guard ready again ratio=%.2f", reading.ratio)
        self._above_warning = reading.ratio >= self._warn_ratio
        if action:
            self._record(action, reading)
        return action

    def _record(self, action: str, reading: MemoryReading) -> None:
        MEMORY_GUARD_ACTIONS.labels(action).inc()
        used_mib = reading.used_bytes / MIB
        self.recent_actions.appendleft(GuardAction(datetime.now(UTC), action, used_mib, reading.ratio))
        log.warning(
            "memory_guard action=%s rss_mib=%.0f working_set_mib=%.0f budget_mib=%.0f ratio=%.2f",
            action,
            reading.rss_bytes / MIB,
            (reading.working_set_bytes or 0) / MIB,
            reading.budget_bytes / MIB,
            reading.ratio,
        )

    def start(self) -> None:
        threading.Thread(target=self._run, name="memory-guard", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.check()
            except Exception:  # the guard must outlive a bad sample
                log.exception("memory_guard sample failed")


_guard: MemoryGuard | None = None
_start_lock = threading.Lock()


def start_memory_monitoring(
    settings: Settings, connected_sessions: Callable[[], int] = lambda: 1
) -> MemoryGuard:
    """Register the gauges and start the guard, once per process.

    `connected_sessions` counts the open websockets; without it the guard assumes someone is.
    """
    global _guard
    with _start_lock:
        if _guard is None:
            probe = MemoryProbe(settings.cgroup_root, settings.memory_limit_mib)
            guard = MemoryGuard(
                probe,
                settings.memory_warn_ratio,
                settings.memory_act_ratio,
                settings.memory_check_interval_s,
                connected_sessions=connected_sessions,
            )
            REGISTRY.register(MemoryCollector(probe, lambda: guard.shedding))
            guard.start()
            _guard = guard
        return _guard


def memory_guard() -> MemoryGuard | None:
    return _guard


def freeze_startup_objects() -> None:
    """Take everything allocated at start-up out of the garbage collector's scans.

    Streamlit runs a full `gc.collect()` after every rerun (`runner.postScriptGC`), and a
    full collection walks every tracked object: with pandas, pyarrow and SQLAlchemy
    loaded that is ~100k objects and most of a rerun's time. Modules and engines live as
    long as the process, so scanning them again never frees anything; freezing them
    keeps the per-rerun collection for what reruns allocate.
    """
    gc.collect()  # start-up garbage is freed now, not kept forever
    gc.freeze()
