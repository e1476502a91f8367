"""Memory awareness: RSS against the container's limit, and a guard that acts on it.

The seeds' rule of thumb: warn at 70 % of the limit, act at 85 % (clear caches and
collect garbage) before the kernel's OOM killer acts for you.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import streamlit as st
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .metrics import MEMORY_GUARD_ACTIONS
from .settings import Settings

# cgroup v1 reports "no limit" as a page-rounded 2^63; anything this large means none.
UNLIMITED_BYTES = 1 << 60
MIB = 1024 * 1024
log = logging.getLogger(__name__)


def cgroup_memory_limit(root: Path) -> int | None:
    """The container's memory limit in bytes, or None when the cgroup sets none."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):  # v2, then v1
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        if raw == "max":
            return None
        limit = int(raw)
        return None if limit >= UNLIMITED_BYTES else limit
    return None


@dataclass(frozen=True)
class MemoryReading:
    rss_bytes: int
    limit_bytes: int  # from the cgroup, else the host's memory
    budget_bytes: int  # what the guard measures against: the limit, capped by MEMORY_LIMIT_MIB

    @property
    def ratio(self) -> float:
        return self.rss_bytes / self.budget_bytes


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
        limit = cgroup_memory_limit(self._cgroup_root) or psutil.virtual_memory().total
        return MemoryReading(self._rss(), limit, min(limit, self._budget_bytes))


class MemoryCollector(Collector):
    """RSS, limit and ratio gauges, read at scrape time."""

    def __init__(self, probe: MemoryProbe) -> None:
        self._probe = probe

    def collect(self) -> Iterator[GaugeMetricFamily]:
        reading = self._probe.read()
        yield GaugeMetricFamily("app_memory_rss_bytes", "Resident memory of this process.", reading.rss_bytes)
        yield GaugeMetricFamily(
            "app_memory_limit_bytes",
            "Memory limit of the container (cgroup), or the host's memory when there is none.",
            reading.limit_bytes,
        )
        yield GaugeMetricFamily(
            "app_memory_usage_ratio",
            "RSS divided by the memory budget (the limit, capped by MEMORY_LIMIT_MIB).",
            reading.ratio,
        )


@dataclass(frozen=True)
class GuardAction:
    at: datetime
    action: str
    rss_mib: float
    ratio: float


class MemoryGuard:
    """Samples memory every few seconds in its own thread; never inside a rerun."""

    def __init__(
        self,
        probe: MemoryProbe,
        warn_ratio: float,
        act_ratio: float,
        interval_s: float = 5.0,
        clear_caches: Callable[[], None] = st.cache_data.clear,
    ) -> None:
        self._probe = probe
        self._warn_ratio = warn_ratio
        self._act_ratio = act_ratio
        self._interval_s = interval_s
        self._clear_caches = clear_caches
        self._above_warning = False
        self._stop = threading.Event()
        self.recent_actions: deque[GuardAction] = deque(maxlen=20)

    def check(self) -> str | None:
        """One sample; returns the action taken, if any."""
        reading = self._probe.read()
        action = None
        if reading.ratio >= self._act_ratio:
            self._clear_caches()
            gc.collect()
            action = "clear_caches"
        elif reading.ratio >= self._warn_ratio and not self._above_warning:
            action = "warn"  # once per crossing, not on every sample
        self._above_warning = reading.ratio >= self._warn_ratio
        if action:
            MEMORY_GUARD_ACTIONS.labels(action).inc()
            rss_mib = reading.rss_bytes / MIB
            self.recent_actions.appendleft(GuardAction(datetime.now(UTC), action, rss_mib, reading.ratio))
            log.warning(
                "memory_guard action=%s rss_mib=%.0f budget_mib=%.0f ratio=%.2f",
                action,
                rss_mib,
                reading.budget_bytes / MIB,
                reading.ratio,
            )
        return action

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


def start_memory_monitoring(settings: Settings) -> MemoryGuard:
    """Register the gauges and start the guard, once per process."""
    global _guard
    with _start_lock:
        if _guard is None:
            probe = MemoryProbe(settings.cgroup_root, settings.memory_limit_mib)
            REGISTRY.register(MemoryCollector(probe))
            _guard = MemoryGuard(
                probe, settings.memory_warn_ratio, settings.memory_act_ratio, settings.memory_check_interval_s
            )
            _guard.start()
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
