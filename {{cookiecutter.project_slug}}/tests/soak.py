"""Leak detection: run the pages many times and compare tracemalloc snapshots.

    python -m tests.soak --windows 10 --runs-per-window 20     # `make soak`

After a warm-up (caches filled, imports done), every window reruns each page in
fresh sessions, collects garbage and takes a snapshot. Source lines whose
allocations grew in every window are reported, biggest first; the run fails when
traced memory or RSS kept growing past its bound.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
from streamlit.testing.v1 import AppTest

MIB = 1024 * 1024
IGNORED = (
    tracemalloc.__file__,
    "<frozen importlib._bootstrap>",
    "<frozen importlib._bootstrap_external>",
    "<unknown>",
)


def dashboard_page() -> None:
    from {{ cookiecutter.package_name }}.pages import dashboard

    dashboard.render()


def activity_page() -> None:
    from {{ cookiecutter.package_name }}.pages import activity

    activity.render()


PAGES: dict[str, Callable[[], None]] = {"dashboard": dashboard_page, "activity": activity_page}


@dataclass
class SoakReport:
    traced_mib: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    growing_lines: list[tuple[str, float]] = field(default_factory=list)  # (line, KiB grown)

    def grew_every_window(self, series: list[float]) -> bool:
        return all(later > earlier for earlier, later in itertools.pairwise(series))

    def traced_growth_mib(self) -> float:
        return self.traced_mib[-1] - self.traced_mib[0]

    def rss_growth_mib(self) -> float:
        return self.rss_mib[-1] - self.rss_mib[0]

    def leaking(self, traced_bound_mib: float, rss_bound_mib: float) -> bool:
        traced_leak = self.traced_growth_mib() > traced_bound_mib and self.grew_every_window(self.traced_mib)
        return traced_leak or self.rss_growth_mib() > rss_bound_mib

    def summary(self) -> str:
        lines = [
            f"traced memory per window (MiB): {', '.join(f'{v:.2f}' for v in self.traced_mib)}",
            f"RSS per window (MiB): {', '.join(f'{v:.1f}' for v in self.rss_mib)}",
            f"growth after warm-up: traced {self.traced_growth_mib():+.2f} MiB,"
            f" RSS {self.rss_growth_mib():+.1f} MiB",
        ]
        if self.growing_lines:
            lines.append("allocations that grew in every window:")
            lines += [f"  {kib:+10.1f} KiB  {line}" for line, kib in self.growing_lines[:10]]
        return "\n".join(lines)


def _run_pages(pages: dict[str, Callable[[], None]], runs: int) -> None:
    for _ in range(runs):
        for page in pages.values():
            app = AppTest.from_function(page, default_timeout=60).run()  # a new session each time
            if app.exception:
                raise RuntimeError(f"page failed during soak: {app.exception[0].value}")


def _snapshot() -> tracemalloc.Snapshot:
    gc.collect()
    ignored = [tracemalloc.Filter(False, pattern) for pattern in IGNORED]
    return tracemalloc.take_snapshot().filter_traces(ignored)


def soak(
    pages: dict[str, Callable[[], None]] = PAGES,
    windows: int = 10,
    runs_per_window: int = 20,
    warmup_runs: int = 3,
) -> SoakReport:
    report = SoakReport()
    process = psutil.Process()
    _run_pages(pages, warmup_runs)  # imports, caches and pools settle before measuring
    tracemalloc.start(1)  # one frame: enough to name the line, cheap enough to run long
    try:
        # Only allocations made while tracing are seen: one more window makes the
        # baseline hold the steady state, not an empty trace.
        _run_pages(pages, runs_per_window)
        previous = _snapshot()
        report.traced_mib.append(sum(stat.size for stat in previous.statistics("filename")) / MIB)
        report.rss_mib.append(process.memory_info().rss / MIB)
        grown: dict[str, list[int]] = {}
        for _ in range(windows):
            _run_pages(pages, runs_per_window)
            current = _snapshot()
            report.traced_mib.append(sum(stat.size for stat in current.statistics("filename")) / MIB)
            report.rss_mib.append(process.memory_info().rss / MIB)
            for stat in current.compare_to(previous, "lineno"):
                grown.setdefault(str(stat.traceback[0]), []).append(stat.size_diff)
            previous = current
    finally:
        tracemalloc.stop()
    report.growing_lines = sorted(
        (
            (line, sum(diffs) / 1024)
            for line, diffs in grown.items()
            if len(diffs) == windows and all(diff > 0 for diff in diffs)
        ),
        key=lambda item: -item[1],
    )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--runs-per-window", type=int, default=20)
    parser.add_argument("--traced-bound-mib", type=float, default=2.0, help="allowed traced growth")
    parser.add_argument("--rss-bound-mib", type=float, default=64.0, help="allowed RSS growth")
    args = parser.parse_args()
    report = soak(windows=args.windows, runs_per_window=args.runs_per_window)
    print(report.summary())
    if report.leaking(args.traced_bound_mib, args.rss_bound_mib):
        print("LEAK: memory kept growing after warm-up", file=sys.stderr)
        return 1
    print("no leak found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
