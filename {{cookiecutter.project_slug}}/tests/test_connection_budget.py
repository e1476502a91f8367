"""The start-up connection budget check, against the real servers' max_connections."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from sqlalchemy import create_engine

from {{ cookiecutter.package_name }}.database.budget import HEADROOM, check_connection_budget
from {{ cookiecutter.package_name }}.database.engines import Database, get_database
from {{ cookiecutter.package_name }}.settings import get_settings, load_settings

from .postgres_cluster import Cluster


def test_the_embedded_database_has_no_budget_to_check() -> None:
    sqlite = Database(primary=create_engine("sqlite://"))
    assert check_connection_budget(sqlite, get_settings()) == []


def test_app_instances_is_validated() -> None:
    assert load_settings({}).app_instances == 1
    with pytest.raises(ValueError, match="APP_INSTANCES='none' must be a whole number of at least 1"):
        load_settings({"APP_INSTANCES": "none"})


def test_defaults_fit_each_server(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    settings = replace(get_settings(), app_instances=2, db_pool_size=5, db_max_overflow=5)
    with caplog.at_level(logging.INFO):
        budgets = check_connection_budget(get_database(), settings)
    # Primary and replica are separate servers: each carries one engine of every instance.
    assert [budget.server for budget in budgets] == ["primary", "replica"]
    assert all(budget.fits and budget.needed == 2 * 10 + HEADROOM for budget in budgets)
    assert caplog.text.count("connection budget fits server=") == 2


def test_too_many_instances_warn_with_the_numbers_and_the_fix(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace(get_settings(), app_instances=40, db_pool_size=5, db_max_overflow=5)
    with caplog.at_level(logging.WARNING):
        budgets = check_connection_budget(get_database(), settings)
    assert budgets and not any(budget.fits for budget in budgets)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "connection budget exceeded server=primary needed=410" in warnings[0]
    assert "APP_INSTANCES=40" in warnings[0] and "raise max_connections" in warnings[0]


def test_behind_pgbouncer_the_pools_are_not_held_against_max_connections(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    # 40 instances would not fit the server directly (above); through PgBouncer they need not.
    settings = replace(get_settings(), app_instances=40, db_transaction_pooling=True)
    with caplog.at_level(logging.INFO):
        assert check_connection_budget(get_database(), settings) == []
    assert "DB_TRANSACTION_POOLING=true" in caplog.text and "exceeded" not in caplog.text
