"""A short soak: it must pass the real pages and catch a deliberately leaking one."""

from __future__ import annotations

from .soak import PAGES, soak

WINDOWS, RUNS = 4, 4
TRACED_BOUND_MIB, RSS_BOUND_MIB = 2.0, 64.0
LEAK: list[bytearray] = []


def remember_run() -> int:
    """The classic leak: module-level state that every rerun appends to."""
    LEAK.append(bytearray(256 * 1024))
    return len(LEAK)


def leaking_page() -> None:
    import streamlit as st

    from tests.test_soak import remember_run

    st.write(f"{remember_run()} runs remembered")


def test_real_pages_do_not_leak() -> None:
    report = soak(PAGES, windows=WINDOWS, runs_per_window=RUNS)
    print("\n" + report.summary())
    assert not report.leaking(TRACED_BOUND_MIB, RSS_BOUND_MIB), report.summary()


def test_a_leaking_page_is_caught_and_pointed_at() -> None:
    try:
        report = soak({"leaky": leaking_page}, windows=WINDOWS, runs_per_window=RUNS)
    finally:
        LEAK.clear()
    print("\n" + report.summary())
    assert report.leaking(TRACED_BOUND_MIB, RSS_BOUND_MIB)
    top_line, kib = report.growing_lines[0]
    assert "test_soak.py" in top_line  # points at the leaking line
    assert kib >= WINDOWS * RUNS * 256 * 0.9
