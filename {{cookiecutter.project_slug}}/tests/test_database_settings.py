"""Database URLs from separate settings (DB_HOST, DB_USER, ...), as Kubernetes passes them."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings

PARTS = {"DB_HOST": "db-rw", "DB_NAME": "app", "DB_USER": "app", "DB_PASSWORD": "p@ss/w:rd%?"}


def test_parts_build_the_primary_replica_and_direct_urls() -> None:
    hosts = {"DB_REPLICA_HOST": "db-ro", "DB_DIRECT_HOST": "db-direct"}
    settings = load_settings({**PARTS, **hosts, "DB_PORT": "6432"})
    urls = {
        "primary": settings.database_url,
        "replica": settings.database_replica_url,
        "direct": settings.database_direct_url,
    }
    hosts = {"primary": "db-rw", "replica": "db-ro", "direct": "db-direct"}
    for role, url in urls.items():
        assert url is not None, role
        parsed = make_url(url)
        assert parsed.drivername == "postgresql+psycopg2"
        assert (parsed.host, parsed.port, parsed.database) == (hosts[role], 6432, "app")
        # A password with URL characters survives: it is quoted, not pasted in.
        assert (parsed.username, parsed.password) == ("app", PARTS["DB_PASSWORD"])


def test_without_replica_or_direct_host_only_the_primary_is_set() -> None:
    settings = load_settings({key: value for key, value in PARTS.items() if key != "DB_PASSWORD"})
    assert make_url(settings.database_url or "").port == 5432
    assert settings.database_replica_url is None and settings.database_direct_url is None


def test_database_url_keeps_working_and_wins_over_parts() -> None:
    url = "postgresql+psycopg2://u:p@elsewhere:5432/db"
    settings = load_settings({**PARTS, "DATABASE_URL": url})
    assert settings.database_url == url
    assert settings.database_replica_url is None and settings.database_direct_url is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"DB_HOST": "db"}, "database settings are partly given (DB_HOST); also set DB_NAME, DB_USER"),
        ({"DB_PASSWORD": "secret", "DB_USER": "app"}, "also set DB_HOST, DB_NAME or set DATABASE_URL"),
        ({**PARTS, "DB_PORT": "99999"}, "DB_PORT='99999' must be a whole number of at least 1 and at most"),
        (
            {**PARTS, "DB_TRANSACTION_POOLING": "true"},
            "DB_TRANSACTION_POOLING=true needs DB_DIRECT_HOST",
        ),
        (
            {"DATABASE_URL": "postgresql://app:pw@pooler/app", "DB_TRANSACTION_POOLING": "true"},
            "(with the DB_* settings: DATABASE_URL has no direct host)",
        ),
    ],
)
def test_half_set_parts_are_one_clear_error(given: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(given)
    message = str(error.value)
    assert expected in message and "\n" not in message
    assert "secret" not in message and PARTS["DB_PASSWORD"] not in message
