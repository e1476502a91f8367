"""What the kernel sees of this container's memory: its cgroup's limit and working set.

The OOM killer and the kubelet judge a container by its cgroup's charge, not by a
process's RSS: the charge also holds files written to a tmpfs such as /tmp (uploads,
exports) and the page cache, and misses memory RSS counts twice. The kubelet's
"working set" is the charge minus the page cache the kernel can drop at once
(inactive file pages); it evicts and kills on that figure, so the guard reads it too.
"""

from __future__ import annotations

from pathlib import Path

# cgroup v1 reports "no limit" as a page-rounded 2^63; anything this large means none.
UNLIMITED_BYTES = 1 << 60
# (usage file, memory.stat key of the inactive page cache), cgroup v2 first.
V2 = ("memory.current", "inactive_file")
V1 = ("memory/memory.usage_in_bytes", "total_inactive_file")


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


def _stat(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def cgroup_working_set(root: Path) -> int | None:
    """Usage minus inactive file pages, as the kubelet computes it; None outside a cgroup."""
    for usage_file, inactive_key in (V2, V1):
        usage_path = root / usage_file
        try:
            usage = int(usage_path.read_text().strip())
            inactive = _stat(usage_path.with_name("memory.stat"), inactive_key)
        except (OSError, ValueError):
            continue
        return max(usage - inactive, 0)
    return None
