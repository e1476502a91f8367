"""Prometheus metrics of the app, served on its own port at `/metrics`.

Streamlit serves its own families (sessions, cache memory) at `/_stcore/metrics`;
scrape both. One process per container is the supported layout: the default
registry is per process, so no multiprocess mode is configured.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

REPLICA_FALLBACKS = Counter(
    "app_db_replica_fallbacks",
    "Times reads were switched from the replica to the primary because it was down or lagging.",
)
QUERY_DURATION = Histogram(
    "app_db_query_duration_seconds",
    "Time to execute one SQL statement, per engine.",
    ["engine"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CACHE_REQUESTS = Counter(
    "app_cache_requests",
    "Calls of the app's cached loaders, by whether the cache answered (hit) or the database (miss).",
    ["loader", "result"],
)
SCRIPT_ERRORS = Counter("app_script_errors", "Uncaught exceptions in page scripts and widget callbacks.")
SCRIPT_RUN_DURATION = Histogram(
    "app_script_run_duration_seconds",
    "Time to run the page script once (one rerun), per page.",
    ["page"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
MEMORY_GUARD_ACTIONS = Counter(
    "app_memory_guard_actions",
    "Memory guard actions: 'warn' above the warning ratio, 'clear_caches' above the action ratio,"
    " 'shed' when memory stays above it after clearing (new sessions are turned away).",
    ["action"],
)
for _action in ("warn", "clear_caches", "shed"):
    MEMORY_GUARD_ACTIONS.labels(_action)  # exported as 0 before the first action
SESSIONS_REFUSED = Counter(
    "app_sessions_refused",
    "New sessions turned away with the busy page, by reason: 'memory' (shedding) or 'descriptors'.",
    ["reason"],
)
for _reason in ("memory", "descriptors"):
    SESSIONS_REFUSED.labels(_reason)


class PoolCollector(Collector):
    """Connection pool gauges, read from the engines at scrape time."""

    def __init__(self) -> None:
        self._engines: dict[str, tuple[Engine, int]] = {}

    def track(self, role: str, engine: Engine, max_overflow: int) -> None:
        self._engines[role] = (engine, max_overflow)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            "size": GaugeMetricFamily(
                "app_db_pool_size", "Connections the pool keeps open.", labels=["engine"]
            ),
            "checked_out": GaugeMetricFamily(
                "app_db_pool_checked_out", "Connections in use by a rerun right now.", labels=["engine"]
            ),
            "overflow": GaugeMetricFamily(
                "app_db_pool_overflow", "Connections open beyond the pool size.", labels=["engine"]
            ),
            "max": GaugeMetricFamily(
                "app_db_pool_max_connections",
                "Most connections the pool will open: size plus max overflow.",
                labels=["engine"],
            ),
        }
        for role, (engine, max_overflow) in self._engines.items():
            pool = engine.pool
            if not isinstance(pool, QueuePool):
                continue
            families["size"].add_metric([role], pool.size())
            families["checked_out"].add_metric([role], pool.checkedout())
            families["overflow"].add_metric([role], max(pool.overflow(), 0))
            families["max"].add_metric([role], pool.size() + max_overflow)
        yield from families.values()


POOLS = PoolCollector()
REGISTRY.register(POOLS)


async def _metrics(_request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def metrics_route() -> Route:
    return Route("/metrics", _metrics, methods=["GET"])
