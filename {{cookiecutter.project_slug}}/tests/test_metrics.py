"""App metrics against the truth they report."""

from __future__ import annotations

import threading
from datetime import date

from prometheus_client import REGISTRY

from {{ cookiecutter.package_name }}.database.engines import get_database
from {{ cookiecutter.package_name }}.queries import daily_sales


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_pool_gauges_equal_the_pool_under_load() -> None:
    database = get_database()
    engines = {"primary": database.primary, "replica": database.replica}
    for role, engine in engines.items():
        if engine is None:
            continue
        holding, release = threading.Barrier(4), threading.Event()

        def hold(engine=engine, holding=holding, release=release) -> None:
            with engine.connect():
                holding.wait()
                release.wait()

        workers = [threading.Thread(target=hold) for _ in range(3)]
        for worker in workers:
            worker.start()
        holding.wait()  # three connections checked out right now
        try:
            assert engine.pool.checkedout() == 3
            assert sample("app_db_pool_checked_out", engine=role) == engine.pool.checkedout()
            assert sample("app_db_pool_size", engine=role) == engine.pool.size()
            expected_max = engine.pool.size() + 5  # DB_MAX_OVERFLOW default
            assert sample("app_db_pool_max_connections", engine=role) == expected_max
        finally:
            release.set()
            for worker in workers:
                worker.join()
        assert sample("app_db_pool_checked_out", engine=role) == 0


def test_cache_hits_and_misses_are_counted() -> None:
    hits = sample("app_cache_requests_total", loader="daily_sales", result="hit")
    misses = sample("app_cache_requests_total", loader="daily_sales", result="miss")
    arguments = (date(2025, 6, 1), date(2025, 6, 30))
    daily_sales(*arguments)
    daily_sales(*arguments)
    daily_sales(*arguments)
    assert sample("app_cache_requests_total", loader="daily_sales", result="miss") == misses + 1
    assert sample("app_cache_requests_total", loader="daily_sales", result="hit") == hits + 2


def test_query_durations_are_observed_per_engine() -> None:
    role = "replica" if get_database().replica is not None else "primary"
    before = sample("app_db_query_duration_seconds_count", engine=role)
    daily_sales(date(2025, 2, 1), date(2025, 2, 2))
    assert sample("app_db_query_duration_seconds_count", engine=role) >= before + 1


def test_script_errors_are_counted() -> None:
    from {{ cookiecutter.package_name }}.serve import count_script_error

    before = sample("app_script_errors_total")
    count_script_error(ZeroDivisionError("boom"))
    assert sample("app_script_errors_total") == before + 1
