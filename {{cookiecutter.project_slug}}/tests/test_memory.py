"""Memory limit discovery and the memory guard, with fake cgroup files and RSS."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import psutil
import pytest
import streamlit as st
from prometheus_client import REGISTRY

from {{ cookiecutter.package_name }}.memory import (
    MemoryGuard,
    MemoryProbe,
    cgroup_memory_limit,
    freeze_startup_objects,
)

MIB = 1024 * 1024


@pytest.fixture
def cgroup(tmp_path: Path) -> Path:
    return tmp_path


def write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content + "\n")


@pytest.mark.parametrize(
    ("relative", "content", "expected"),
    [
        ("memory.max", "536870912", 512 * MIB),  # cgroup v2
        ("memory.max", "max", None),
        ("memory/memory.limit_in_bytes", "268435456", 256 * MIB),  # cgroup v1
        ("memory/memory.limit_in_bytes", "9223372036854771712", None),  # v1 "unlimited"
    ],
)
def test_limit_comes_from_the_cgroup(cgroup: Path, relative: str, content: str, expected: int | None) -> None:
    write(cgroup / relative, content)
    assert cgroup_memory_limit(cgroup) == expected


def test_no_cgroup_files_means_no_limit(cgroup: Path) -> None:
    assert cgroup_memory_limit(cgroup) is None


def test_without_a_limit_the_host_memory_is_reported(cgroup: Path) -> None:
    reading = MemoryProbe(cgroup, budget_mib=1 << 20, rss=lambda: 100 * MIB).read()
    assert reading.limit_bytes == psutil.virtual_memory().total


def test_budget_is_the_limit_capped_by_the_setting(cgroup: Path) -> None:
    write(cgroup / "memory.max", str(512 * MIB))
    assert MemoryProbe(cgroup, budget_mib=1024, rss=lambda: 0).read().budget_bytes == 512 * MIB
    assert MemoryProbe(cgroup, budget_mib=256, rss=lambda: 0).read().budget_bytes == 256 * MIB


class FakeRss:
    def __init__(self) -> None:
        self.bytes = 0

    def __call__(self) -> int:
        return self.bytes


def guard_with(cgroup: Path, rss: FakeRss, cleared: list[int]) -> MemoryGuard:
    write(cgroup / "memory.max", str(1000 * MIB))
    probe = MemoryProbe(cgroup, budget_mib=1000, rss=rss)
    return MemoryGuard(probe, warn_ratio=0.70, act_ratio=0.85, clear_caches=lambda: cleared.append(1))


def actions_total(action: str) -> float:
    return REGISTRY.get_sample_value("app_memory_guard_actions_total", {"action": action}) or 0.0


def test_guard_warns_at_70_percent_once_per_crossing(cgroup: Path) -> None:
    rss, cleared = FakeRss(), []
    guard = guard_with(cgroup, rss, cleared)
    warned = actions_total("warn")
    rss.bytes = 690 * MIB
    assert guard.check() is None
    rss.bytes = 700 * MIB
    assert guard.check() == "warn"
    assert guard.check() is None  # still above: no repeat
    rss.bytes = 600 * MIB
    guard.check()
    rss.bytes = 750 * MIB
    assert guard.check() == "warn"  # a new crossing
    assert actions_total("warn") == warned + 2
    assert cleared == []


def test_guard_clears_caches_at_85_percent(cgroup: Path) -> None:
    rss, cleared = FakeRss(), []
    guard = guard_with(cgroup, rss, cleared)
    acted = actions_total("clear_caches")
    rss.bytes = 849 * MIB
    assert guard.check() == "warn"
    assert cleared == []
    rss.bytes = 850 * MIB
    assert guard.check() == "clear_caches"
    assert cleared == [1]
    assert actions_total("clear_caches") == acted + 1
    assert guard.recent_actions[0].action == "clear_caches"
    assert guard.recent_actions[0].ratio == pytest.approx(0.85)


def test_guard_action_empties_the_real_data_caches(cgroup: Path) -> None:
    calls = []

    @st.cache_data(max_entries=4)
    def loader(value: int) -> int:
        calls.append(value)
        return value

    loader(1)
    loader(1)
    assert calls == [1]
    write(cgroup / "memory.max", str(100 * MIB))
    guard = MemoryGuard(MemoryProbe(cgroup, budget_mib=100, rss=lambda: 90 * MIB), 0.70, 0.85)
    assert guard.check() == "clear_caches"
    loader(1)
    assert calls == [1, 1]


class _Node:
    def __init__(self) -> None:
        self.partner: _Node | None = None


def test_freezing_start_up_objects_frees_start_up_garbage_first() -> None:
    # A reference cycle still uncollected at start-up would otherwise be frozen, never freed.
    gc.disable()  # only freeze_startup_objects may collect the cycle
    try:
        first, second = _Node(), _Node()
        first.partner, second.partner = second, first
        probe = weakref.ref(first)
        del first, second
        frozen_before = gc.get_freeze_count()
        freeze_startup_objects()
        assert probe() is None
        assert gc.get_freeze_count() > frozen_before
    finally:
        gc.unfreeze()
        gc.enable()
