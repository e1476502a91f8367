"""Operations page: memory, pools, caches, sessions and the memory guard, for operators."""

from __future__ import annotations

import urllib.request

import pandas as pd
import streamlit as st
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from ..database.engines import get_database
from ..memory import memory_guard
from ..settings import get_settings

MIB = 1024 * 1024


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _active_sessions() -> int | None:
    """Streamlit's own count, from its metrics endpoint on this server."""
    url = f"http://127.0.0.1:{st.get_option('server.port')}/_stcore/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        if family.name == "active_sessions":
            return int(sum(sample.value for sample in family.samples))
    return None


def _memory() -> None:
    st.subheader("Memory")
    settings = get_settings()
    rss, ratio = _sample("app_memory_rss_bytes"), _sample("app_memory_usage_ratio")
    limit = _sample("app_memory_limit_bytes")
    if not rss:
        st.info("Memory monitoring starts with the server (`python -m` the package).")
        return
    st.progress(min(ratio, 1.0), text=f"{rss / MIB:,.0f} MiB resident, {ratio:.0%} of the budget")
    st.caption(
        f"Limit {limit / MIB:,.0f} MiB (cgroup, or host memory). The guard warns at "
        f"{settings.memory_warn_ratio:.0%} and clears caches at {settings.memory_act_ratio:.0%}."
    )


def _pools() -> None:
    st.subheader("Database pools")
    database = get_database()
    engines = {"primary": database.primary, "replica": database.replica}
    for role, engine in engines.items():
        if engine is None:
            continue
        in_use = _sample("app_db_pool_checked_out", {"engine": role})
        capacity = _sample("app_db_pool_max_connections", {"engine": role}) or 1
        st.progress(
            min(in_use / capacity, 1.0), text=f"{role}: {in_use:.0f} of {capacity:.0f} connections in use"
        )
    if database.router is not None and not database.router.healthy:
        st.warning("The replica is unhealthy: reads go to the primary.")


def _caches() -> None:
    st.subheader("Cache hit rates")
    loaders = sorted(
        {
            sample.labels["loader"]
            for family in REGISTRY.collect()
            if family.name == "app_cache_requests"
            for sample in family.samples
            if sample.name.endswith("_total")
        }
    )
    rows = []
    for loader in loaders:
        hits = _sample("app_cache_requests_total", {"loader": loader, "result": "hit"})
        misses = _sample("app_cache_requests_total", {"loader": loader, "result": "miss"})
        calls = hits + misses  # 0 for a loader no page has called yet in this process
        rate = hits / calls if calls else None
        rows.append({"loader": loader, "hits": int(hits), "misses": int(misses), "hit rate": rate})
    if rows:
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            column_config={
                "hit rate": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent")
            },
        )


def _guard_actions() -> None:
    st.subheader("Memory guard")
    guard = memory_guard()
    actions = list(guard.recent_actions) if guard else []
    if not actions:
        st.caption("No actions since the server started.")
        return
    st.dataframe(pd.DataFrame([vars(action) for action in actions]), hide_index=True)


def render() -> None:
    st.title("System")
    sessions = _active_sessions()
    st.metric("Active sessions", "n/a" if sessions is None else sessions)
    _memory()
    _pools()
    _caches()
    _guard_actions()
