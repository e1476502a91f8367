"""Memory limit and working set discovery, and the memory guard: sample cgroup files of
both versions, the machine's own cgroup where it has one, and fake RSS."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import psutil
import pytest
import streamlit as st
from prometheus_client import REGISTRY

from {{ cookiecutter.package_name }}.cgroup import cgroup_working_set
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
    assert cgroup_working_set(cgroup) is None


# Excerpts of real memory.stat files: v2 (a container's own cgroup) and v1 (`total_*` keys
# cover the cgroup's children; the plain `inactive_file` line is its own pages only).
V2_STAT = "anon 104857600\nfile 73400320\nshmem 0\nactive_file 20971520\ninactive_file 52428800\n"
V1_STAT = (
    "cache 73400320\nrss 104857600\ninactive_file 1048576\nactive_file 20971520\n"
    "total_cache 73400320\ntotal_rss 104857600\ntotal_inactive_file 52428800\n"
)


@pytest.mark.parametrize(
    ("usage_file", "stat_file", "stat"),
    [
        ("memory.current", "memory.stat", V2_STAT),
        ("memory/memory.usage_in_bytes", "memory/memory.stat", V1_STAT),
    ],
    ids=["v2", "v1"],
)
def test_working_set_is_usage_minus_inactive_file(
    cgroup: Path, usage_file: str, stat_file: str, stat: str
) -> None:
    write(cgroup / usage_file, str(180 * MIB))
    write(cgroup / stat_file, stat)
    assert cgroup_working_set(cgroup) == 130 * MIB  # 180 MiB charged, 50 MiB droppable page cache


def test_working_set_of_this_machines_own_cgroup() -> None:
    """The real files: v2's memory.current or v1's memory.usage_in_bytes, whichever is here."""
    root = Path("/sys/fs/cgroup")
    usage = next(
        (path for path in (root / "memory.current", root / "memory/memory.usage_in_bytes") if path.is_file()),
        None,
    )
    if usage is None:
        pytest.skip("no cgroup memory controller mounted at /sys/fs/cgroup")
    working_set = cgroup_working_set(root)
    assert working_set is not None
    assert 0 < working_set <= int(usage.read_text())


def test_the_guard_measures_the_working_set_when_it_is_nearer_the_limit(cgroup: Path) -> None:
    # Files in a tmpfs such as /tmp are charged to the cgroup but never show in RSS.
    write(cgroup / "memory.max", str(1000 * MIB))
    write(cgroup / "memory.current", str(900 * MIB))
    write(cgroup / "memory.stat", "inactive_file 0\n")
    reading = MemoryProbe(cgroup, budget_mib=1000, rss=lambda: 300 * MIB).read()
    assert (reading.rss_bytes, reading.working_set_bytes) == (300 * MIB, 900 * MIB)
    assert reading.ratio == pytest.approx(0.90)
    write(cgroup / "memory.current", str(100 * MIB))
    assert MemoryProbe(cgroup, budget_mib=1000, rss=lambda: 300 * MIB).read().ratio == pytest.approx(0.30)


def test_a_cgroup_without_a_limit_is_not_the_apps_alone(cgroup: Path) -> None:
    # The host's root cgroup, or a desktop session's: its charge is everyone's, so only RSS counts.
    write(cgroup / "memory.max", "max")
    write(cgroup / "memory.current", str(1 << 40))
    write(cgroup / "memory.stat", "inactive_file 0\n")
    reading = MemoryProbe(cgroup, budget_mib=1000, rss=lambda: 100 * MIB).read()
    assert reading.working_set_bytes is None
    assert reading.ratio == pytest.approx(0.10)


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


def test_guard_sheds_when_clearing_frees_too_little_until_below_the_warning(cgroup: Path) -> None:
    rss, cleared = FakeRss(), []
    guard = guard_with(cgroup, rss, cleared)
    shed = actions_total("shed")
    rss.bytes = 900 * MIB  # the caches hold nothing: clearing them changes nothing
    assert guard.check() == "clear_caches"
    assert guard.shedding
    assert actions_total("shed") == shed + 1
    assert guard.check() == "clear_caches"  # still acting, but shedding is counted once
    assert actions_total("shed") == shed + 1
    rss.bytes = 750 * MIB  # between the lines: keep freeing, keep protecting the sessions
    assert guard.check() == "clear_caches"
    assert guard.shedding
    rss.bytes = 690 * MIB
    assert guard.check() is None
    assert not guard.shedding
    assert len(cleared) == 3


def test_shedding_ends_when_freeing_gets_below_the_warning(cgroup: Path) -> None:
    rss = FakeRss()
    write(cgroup / "memory.max", str(1000 * MIB))
    probe = MemoryProbe(cgroup, budget_mib=1000, rss=rss)

    def clear_caches() -> None:
        rss.bytes = 600 * MIB  # the sessions left; what remains was cache

    guard = MemoryGuard(probe, warn_ratio=0.70, act_ratio=0.85, clear_caches=clear_caches)
    guard.shedding = True  # shed earlier, then the caches refilled to just under the action line
    rss.bytes = 840 * MIB
    assert guard.check() == "clear_caches"
    assert not guard.shedding


def test_with_nobody_connected_shedding_ends_below_the_action_line(cgroup: Path) -> None:
    rss, sessions = FakeRss(), [1]
    write(cgroup / "memory.max", str(1000 * MIB))
    probe = MemoryProbe(cgroup, budget_mib=1000, rss=rss)
    guard = MemoryGuard(probe, 0.70, 0.85, clear_caches=lambda: None, connected_sessions=lambda: sessions[0])
    rss.bytes = 900 * MIB
    guard.check()
    assert guard.shedding
    rss.bytes = 800 * MIB  # what Python's heap keeps after the load: above the warning line
    guard.check()
    assert guard.shedding  # a session is still connected: protect it
    sessions[0] = 0
    guard.check()
    assert not guard.shedding  # nobody to protect, and below the action line
    rss.bytes = 900 * MIB
    guard.check()
    assert guard.shedding  # above the action line, nobody connected or not: shed


def test_guard_does_not_shed_when_clearing_frees_enough(cgroup: Path) -> None:
    rss = FakeRss()
    write(cgroup / "memory.max", str(1000 * MIB))
    probe = MemoryProbe(cgroup, budget_mib=1000, rss=rss)

    def clear_caches() -> None:
        rss.bytes = 500 * MIB  # the caches held the memory

    guard = MemoryGuard(probe, warn_ratio=0.70, act_ratio=0.85, clear_caches=clear_caches)
    rss.bytes = 900 * MIB
    assert guard.check() == "clear_caches"
    assert not guard.shedding


def test_an_act_ratio_above_one_never_acts(cgroup: Path) -> None:
    rss, cleared = FakeRss(), []
    write(cgroup / "memory.max", str(1000 * MIB))
    guard = MemoryGuard(MemoryProbe(cgroup, 1000, rss), 0.70, 1.5, clear_caches=lambda: cleared.append(1))
    rss.bytes = 990 * MIB
    assert guard.check() == "warn"
    assert guard.check() is None
    assert cleared == [] and not guard.shedding


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
